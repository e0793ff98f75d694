"""OGC API – Features, Part 1 (core, GeoJSON): landing page, collections and items.

``FeaturesAPI`` is a small factory: it receives how to reach the store and
registers thin handlers that parse parameters, ask the store and encode the
answer. Items are paged with keyset cursors (``cursor`` in the ``next``
link), so the thousandth page costs what the first does.
"""

# No "from __future__ import annotations" here: the handlers' annotations name
# dependencies built per instance, which FastAPI must see as objects, not strings.
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from layers.errors import InvalidInputError, NotFoundError
from layers.features import Condition, FeaturePage, FeatureQuery, Op, SortKey
from layers.filter_limits import FilterLimits
from layers.model import LayerDefinition
from layers.store import Reader
from ogc import html
from ogc.crs import CONFORMANCE as CRS_CONFORMANCE
from ogc.crs import CRS84, SUPPORTED, parse_crs
from ogc.flatgeobuf import FLATGEOBUF, flatgeobuf
from ogc.geojson import (
    CSV,
    GEOJSON,
    SCHEMA_JSON,
    csv_rows,
    dumps,
    encode_features,
    feature_collection,
    geometry_schema,
    property_schemas,
)
from ogc.html import HTML
from ogc.links import link
from ogc.openapi import ITEMS_QUERY_PARAMETERS
from ogc.params import (
    DEFAULT_FILTER_LIMITS,
    encode_cursor,
    parse_bbox,
    parse_cursor,
    parse_datetime,
    parse_feature_id,
    parse_filter,
    parse_limit,
    parse_properties,
    parse_sortby,
)

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    *CRS_CONFORMANCE,
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    # Tested with every predicate of the standard's test suite (tests/test_cql2_ats.py); not array-functions
    # (Twin has no array properties) nor functions (no custom functions are offered).
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    # sortby (+/- prefixes) and /sortables, as OGC API – Records defines them (Features Part 8 is a draft).
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/sorting",
]
JSON = "application/json"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
#: Up to this many matches, the first page says exactly how many there are (numberMatched).
COUNT_CAP = 2_000
OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"
#: Every query parameter /items understands; anything else is a 400, as OGC API – Features requires.
ITEMS_PARAMETERS = frozenset(
    {
        "limit",
        "bbox",
        "datetime",
        "properties",
        "sortby",
        "cursor",
        "crs",
        "bbox-crs",
        "filter",
        "filter-lang",
        "filter-crs",
        "f",
    }
)
SORTABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/sortables"


class SchemaResponse(JSONResponse):
    media_type = SCHEMA_JSON


def _link_header(links: list[dict[str, str]]) -> str:
    """The links again as an RFC 8288 ``Link`` header, for clients that read headers only."""
    return ", ".join(f'<{item["href"]}>; rel="{item["rel"]}"; type="{item["type"]}"' for item in links)


def _negotiate(request: Request, f: str | None, offered: tuple[str, ...] = ("json", "html")) -> str:
    """The answer's format: ``f`` if given, else HTML for browsers (Accept starts with text/html), else JSON."""
    if f is not None:
        if f == "geojson":
            return "json"
        if f not in offered:
            raise InvalidInputError(f"f: unsupported format {f!r}; this resource offers {', '.join(offered)}")
        return f
    return "html" if request.headers.get("accept", "").startswith("text/html") else "json"


class FeaturesAPI:
    """The routes of OGC API – Features over a layer store."""

    def __init__(
        self,
        get_store: Callable[..., Reader | Awaitable[Reader]],
        title: str,
        description: str,
        extra_conformance: list[str] | None = None,
        filter_limits: FilterLimits = DEFAULT_FILTER_LIMITS,
    ) -> None:
        self.get_store = get_store
        self.filter_limits = filter_limits
        self.conformance = [*CONFORMANCE, *(extra_conformance or [])]
        self.title = title
        self.description = description
        self.router = APIRouter(tags=["OGC API – Features"])
        self._register()

    def _register(self) -> None:
        store_dep = Annotated[Reader, Depends(self.get_store)]
        fmt = Annotated[str | None, Query(description="Output format: json or html (default: by Accept).")]
        as_html: dict[int | str, dict[str, Any]] = {200: {"content": {HTML: {}}}}

        @self.router.get("/", summary="Landing page", responses=as_html)
        def landing(request: Request, f: fmt = None) -> Any:
            answer = _negotiate(request, f)
            base = str(request.base_url).rstrip("/")
            document = {
                "title": self.title,
                "description": self.description,
                "links": [
                    link(f"{base}/", "self", JSON, "This document"),
                    link(f"{base}/api", "service-desc", OPENAPI_30, "The API definition (OpenAPI 3.0)"),
                    link(f"{base}/docs", "service-doc", "text/html", "The API documentation"),
                    link(f"{base}/conformance", "conformance", JSON, "Conformance classes"),
                    link(f"{base}/collections", "data", JSON, "The layers"),
                ],
            }
            return HTMLResponse(html.landing(document)) if answer == "html" else document

        @self.router.get(
            "/conformance",
            summary="Conformance classes this server implements",
            responses=as_html,  # type: ignore[arg-type]
        )
        def conformance(request: Request, f: fmt = None) -> Any:
            if _negotiate(request, f) == "html":
                return HTMLResponse(html.conformance(self.conformance))
            return {"conformsTo": self.conformance}

        @self.router.get("/collections", summary="The layers", responses=as_html)
        def collections(request: Request, store: store_dep, f: fmt = None) -> Any:
            answer = _negotiate(request, f)
            base = str(request.base_url).rstrip("/")
            document = {
                "links": [link(f"{base}/collections", "self", JSON)],
                "collections": [self._collection(base, store, layer) for layer in store.list_layers()],
            }
            return HTMLResponse(html.collections(document)) if answer == "html" else document

        @self.router.get("/collections/{collection_id}", summary="One layer", responses=as_html)
        def collection(request: Request, collection_id: str, store: store_dep, f: fmt = None) -> Any:
            answer = _negotiate(request, f)
            document = self._collection(str(request.base_url).rstrip("/"), store, store.get_layer(collection_id))
            return HTMLResponse(html.collection(document)) if answer == "html" else document

        @self.router.get(
            "/collections/{collection_id}/queryables",
            summary="Properties that filters can use",
            response_class=SchemaResponse,
            responses={200: {"content": {SCHEMA_JSON: {"schema": {"type": "object"}}}}},
        )
        def queryables(request: Request, collection_id: str, store: store_dep) -> JSONResponse:
            layer = store.get_layer(collection_id)
            base = str(request.base_url).rstrip("/")
            document = self._schema(base, layer, "queryables")
            return SchemaResponse(document)

        @self.router.get(
            "/collections/{collection_id}/schema",
            summary="The schema of the layer's features",
            response_class=SchemaResponse,
            responses={200: {"content": {SCHEMA_JSON: {"schema": {"type": "object"}}}}},
        )
        def schema(request: Request, collection_id: str, store: store_dep) -> JSONResponse:
            layer = store.get_layer(collection_id)
            document = self._schema(str(request.base_url).rstrip("/"), layer, "schema")
            return SchemaResponse(document)

        @self.router.get(
            "/collections/{collection_id}/sortables",
            summary="Properties that sortby can use",
            response_class=SchemaResponse,
            responses={200: {"content": {SCHEMA_JSON: {"schema": {"type": "object"}}}}},
        )
        def sortables(request: Request, collection_id: str, store: store_dep) -> JSONResponse:
            layer = store.get_layer(collection_id)
            document = self._schema(str(request.base_url).rstrip("/"), layer, "sortables")
            return SchemaResponse(document)

        @self.router.get(
            "/collections/{collection_id}/items",
            summary="Features of a layer, a page at a time",
            response_class=Response,
            responses={200: {"content": {GEOJSON: {}, CSV: {}, FLATGEOBUF: {}, HTML: {}}}},
            openapi_extra={"parameters": ITEMS_QUERY_PARAMETERS},
        )
        def items(request: Request, collection_id: str, store: store_dep) -> Response:
            # Parameters are read from the query string here, not declared one by one: FastAPI's
            # validation of fifteen of them cost more than PostgreSQL takes to answer a page.
            params = request.query_params
            get = params.get
            answer = _negotiate(request, get("f"), ("json", "csv", "html", "fgb"))
            page_size = parse_limit(get("limit"))
            output_crs = parse_crs(get("crs"))
            box = parse_bbox(get("bbox"), get("bbox-crs"))
            cql2_tree = parse_filter(get("filter"), get("filter-lang"), get("filter-crs"), self.filter_limits)
            sortby, cursor, datetime_, properties = get("sortby"), get("cursor"), get("datetime"), get("properties")

            def query_for(layer: LayerDefinition) -> FeatureQuery:
                """Checked against the definition read in the page's own transaction."""
                queryable = {f.name for f in layer.fields}
                unknown = sorted(set(params) - ITEMS_PARAMETERS - queryable)
                if unknown:
                    raise InvalidInputError(
                        f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                        f"items take {', '.join(sorted(ITEMS_PARAMETERS))} and the queryables of '{layer.id}'"
                    )
                # Part 3 "queryables as query parameters": ?road=Ngô Mây means road = 'Ngô Mây'.
                equalities = [Condition(name, Op.EQ, params[name]) for name in sorted(queryable) if name in params]
                sort = parse_sortby(sortby, layer)
                after_id, after_values = parse_cursor(cursor, sort, layer)
                return FeatureQuery(
                    bbox=box,
                    time=parse_datetime(datetime_, layer),
                    properties=parse_properties(properties, layer),
                    sort=sort,
                    after_id=after_id,
                    after_values=after_values,
                    filter=cql2_tree,
                    where=equalities,
                    limit=page_size,
                )

            page = store.page(
                collection_id,
                query_for,
                geojson=answer == "json" and output_crs == CRS84,
                count_cap=None if cursor is not None else COUNT_CAP,
            )
            return self._page(request, page, parse_sortby(sortby, page.layer), output_crs, properties, answer)

        @self.router.get(
            "/collections/{collection_id}/items/{feature_id}",
            summary="One feature",
            response_class=Response,
            responses={200: {"content": {GEOJSON: {}, HTML: {}}}},
        )
        def item(
            request: Request,
            collection_id: str,
            feature_id: str,
            store: store_dep,
            crs: Annotated[str | None, Query(description="CRS of the answer's coordinates (a URI).")] = None,
            f: fmt = None,
        ) -> Response:
            answer = _negotiate(request, f)
            output_crs = parse_crs(crs)
            layer = store.get_layer(collection_id)
            fid = parse_feature_id(feature_id)
            if fid is None:
                raise NotFoundError(f"collection '{collection_id}' has no feature {feature_id!r}")
            feature = store.get_feature(collection_id, fid)
            base = f"{str(request.base_url).rstrip('/')}/collections/{collection_id}"
            links = [
                link(f"{base}/items/{feature.id}", "self", GEOJSON),
                link(base, "collection", JSON, "The layer"),
            ]
            headers = {"ETag": f'"{feature.id}-{feature.version}"', "Content-Crs": f"<{output_crs}>"}
            if answer == "html":
                names = [field.name for field in layer.fields]
                title = f"{layer.title} — {feature.id}"
                return HTMLResponse(html.features(title, [feature], names, links), headers=headers)
            body = encode_features([feature], output_crs)[0][:-1] + f',"links":{dumps(links)}}}'
            return Response(body, media_type=GEOJSON, headers=headers)

    def _page(
        self,
        request: Request,
        page: FeaturePage,
        sort: list[SortKey],
        output_crs: str,
        properties: str | None,
        f: str,
    ) -> Response:
        """One page of items with its links, as GeoJSON, CSV or HTML."""
        layer = page.layer
        url = f"{str(request.base_url).rstrip('/')}/collections/{layer.id}/items"
        collection_url = url.removesuffix("/items")
        params = request.query_params
        links = [
            link(f"{url}?{urlencode(params)}" if params else url, "self", GEOJSON),
            link(f"{url}?{urlencode({**params, 'f': 'csv'})}", "alternate", CSV, "This page as CSV"),
            link(f"{url}?{urlencode({**params, 'f': 'fgb'})}", "alternate", FLATGEOBUF, "This page as FlatGeobuf"),
            link(collection_url, "collection", JSON, "The layer"),
            link(f"{collection_url}/queryables", QUERYABLES_REL, SCHEMA_JSON, "Properties that filters can use"),
            link(f"{collection_url}/sortables", SORTABLES_REL, SCHEMA_JSON, "Properties that sortby can use"),
        ]
        if page.next_after is not None:
            following = {k: v for k, v in params.items() if k != "cursor"}
            following["cursor"] = encode_cursor(sort, page.next_after)
            links.append(link(f"{url}?{urlencode(following)}", "next", GEOJSON, "Next page"))
        members: dict[str, Any] = {
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "numberReturned": len(page.ids),
            "links": links,
        }
        if page.matched is not None:
            members["numberMatched"] = page.matched
        headers = {"Content-Crs": f"<{output_crs}>", "Link": _link_header(links)}
        encoded = page.encoded
        if page.features is not None:
            names = parse_properties(properties, layer) or [field.name for field in layer.fields]
            if f == "csv":
                return Response("".join(csv_rows(page.features, names, output_crs)), media_type=CSV, headers=headers)
            if f == "fgb":
                body = flatgeobuf(layer, page.features, names, output_crs)
                return Response(body, media_type=FLATGEOBUF, headers=headers)
            if f == "html":
                return HTMLResponse(html.features(layer.title, page.features, names, links), headers=headers)
            encoded = encode_features(page.features, output_crs)
        assert encoded is not None
        return Response(feature_collection(encoded, members), media_type=GEOJSON, headers=headers)

    def _collection(self, base: str, store: Reader, layer: LayerDefinition) -> dict[str, Any]:
        url = f"{base}/collections/{layer.id}"
        extent = store.extent(layer.id)
        document: dict[str, Any] = {
            "id": layer.id,
            "title": layer.title,
            "itemType": "feature",
            "crs": SUPPORTED,
            "storageCrs": CRS84,
            "links": [
                link(url, "self", JSON),
                link(f"{url}/items", "items", GEOJSON, "The features"),
                link(f"{url}/schema", "describedby", SCHEMA_JSON, "The schema of the features"),
                link(f"{url}/queryables", QUERYABLES_REL, SCHEMA_JSON, "Properties that filters can use"),
                link(f"{url}/sortables", SORTABLES_REL, SCHEMA_JSON, "Properties that sortby can use"),
            ],
            "twin:kind": layer.kind.value,
        }
        if layer.description:
            document["description"] = layer.description
        spatial = {"bbox": [list(extent.bbox)], "crs": CRS84} if extent.bbox else None
        temporal = {"interval": [[_instant(v) for v in extent.interval]]} if extent.interval else None
        if spatial or temporal:
            document["extent"] = {k: v for k, v in (("spatial", spatial), ("temporal", temporal)) if v}
        return document

    def _schema(self, base: str, layer: LayerDefinition, kind: str) -> dict[str, Any]:
        properties: dict[str, Any] = property_schemas(layer)
        if kind != "sortables":  # a geometry has no order
            properties = {"geometry": geometry_schema(layer), **properties}
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{base}/collections/{layer.id}/{kind}",
            "type": "object",
            "title": layer.title,
            "properties": properties,
            "additionalProperties": kind == "schema",
        }


def _instant(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else str(value)
