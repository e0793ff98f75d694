"""OGC API – Tiles for the layers (vector tiles), TileJSON 3.0 and MapLibre styles.

Routes:

* ``/tileMatrixSets`` and ``/tileMatrixSets/{id}`` — the grids (morecantile);
* ``/collections/{id}/tiles[/{tms}[/tilejson.json | /{z}/{x}/{y}]]`` — one layer;
* ``/tiles[/{tms}[/tilejson.json | /{z}/{x}/{y}]]?collections=a,b`` — several layers in one tile;
* ``/styles`` and ``/styles/{styleId}`` — MapLibre style documents.

Tiles answer 200 with MVT bytes (gzip when the client accepts it), 204 when
the tile holds nothing, 304 when the client's ``If-None-Match`` still holds.
"""

# No ``from __future__ import annotations``: FastAPI reads these handlers' annotations at runtime.

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from layers.errors import InvalidInputError, NotFoundError
from layers.model import LayerDefinition
from layers.store import Reader
from ogc.links import link
from tiles.grid import SUPPORTED, TileAddress, parse_address, tile_matrix_set
from tiles.service import TileRequest, TileService, check_properties, layers_extent, property_list
from tiles.styles import MVT, style_document, tilejson

JSON = "application/json"
STYLE_JSON = "application/vnd.mapbox.style+json"
TILESETS_VECTOR_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
TILING_SCHEME_REL = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
WEB_MERCATOR_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]


class TileResponse(Response):
    media_type = MVT


class TilesAPI:
    """The tile routes over a layer store, with a ``TileService`` that caches."""

    def __init__(
        self,
        get_store: Callable[..., Reader | Awaitable[Reader]],
        service: TileService,
        elevation: Callable[[Request], str | None] = lambda request: None,
    ) -> None:
        """``elevation`` names the raster layer (a DEM) that styles use as terrain, if there is one."""
        self.get_store = get_store
        self.service = service
        self.elevation = elevation
        self.router = APIRouter(tags=["OGC API – Tiles"])
        self._register()

    # --- documents -------------------------------------------------------------

    def _register(self) -> None:
        store_dep = Annotated[Reader, Depends(self.get_store)]
        tile_responses: dict[int | str, dict[str, Any]] = {
            200: {"content": {MVT: {"schema": {"type": "string", "format": "binary"}}}, "description": "The tile"},
            204: {"description": "The tile holds no feature"},
            304: {"description": "The tile has not changed since the ETag given in If-None-Match"},
        }
        properties_q = Annotated[
            str | None,
            Query(description="Comma-separated properties to put in the tile (default: all of the layer's fields)."),
        ]
        collections_q = Annotated[
            str | None, Query(description="Comma-separated collection ids to put in the tile (default: all).")
        ]

        @self.router.get("/tileMatrixSets", summary="The tile matrix sets served")
        def matrix_sets(request: Request) -> dict[str, Any]:
            base = _base(request)
            return {
                "tileMatrixSets": [
                    {
                        "id": tms,
                        "title": tile_matrix_set(tms).title,
                        "uri": WEB_MERCATOR_URI,
                        "links": [link(f"{base}/tileMatrixSets/{tms}", "self", JSON)],
                    }
                    for tms in SUPPORTED
                ]
            }

        @self.router.get("/tileMatrixSets/{tileMatrixSetId}", summary="One tile matrix set (OGC TMS 2.0 JSON)")
        def matrix_set(tileMatrixSetId: str) -> dict[str, Any]:
            document: dict[str, Any] = tile_matrix_set(tileMatrixSetId).model_dump(
                mode="json", exclude_none=True, by_alias=True
            )
            return document

        @self.router.get("/collections/{collectionId}/tiles", summary="The vector tilesets of a collection")
        def layer_tilesets(request: Request, collectionId: str, store: store_dep) -> dict[str, Any]:
            layer = store.get_layer(collectionId)
            url = f"{_base(request)}/collections/{layer.id}/tiles"
            return {
                "links": [link(url, "self", JSON)],
                "tilesets": [self._tileset_summary(request, url, tms, layer.title) for tms in SUPPORTED],
            }

        @self.router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}", summary="A collection's tileset")
        def layer_tileset(
            request: Request, collectionId: str, tileMatrixSetId: str, store: store_dep
        ) -> dict[str, Any]:
            layer = store.get_layer(collectionId)
            tile_matrix_set(tileMatrixSetId)
            url = f"{_base(request)}/collections/{layer.id}/tiles/{tileMatrixSetId}"
            bounds = store.spatial_extent(layer.id)
            return self._tileset(request, url, tileMatrixSetId, [layer], bounds, layer.title)

        @self.router.get(
            "/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json",
            summary="A collection's vector tiles as TileJSON 3.0",
        )
        def layer_tilejson(
            request: Request, collectionId: str, tileMatrixSetId: str, store: store_dep, properties: properties_q = None
        ) -> dict[str, Any]:
            layer = store.get_layer(collectionId)
            tile_matrix_set(tileMatrixSetId)
            url = f"{_base(request)}/collections/{layer.id}/tiles/{tileMatrixSetId}/{{z}}/{{y}}/{{x}}"
            url += _properties_query("?", [layer], properties)
            return tilejson(layer.id, url, [layer], store.spatial_extent(layer.id), layer.title)

        @self.router.get(
            "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
            summary="A vector tile of one collection",
            response_class=TileResponse,
            responses=tile_responses,
        )
        async def layer_tile(
            request: Request,
            collectionId: str,
            tileMatrixSetId: str,
            tileMatrix: str,
            tileRow: str,
            tileCol: str,
            store: store_dep,
            properties: properties_q = None,
        ) -> Response:
            _only(request, {"properties", "f"})
            address = parse_address(tileMatrixSetId, tileMatrix, tileCol, tileRow)
            return await self._serve(request, store, address, (collectionId,), properties)

        @self.router.get("/tiles", summary="The dataset's vector tilesets (several collections in one tile)")
        def dataset_tilesets(request: Request) -> dict[str, Any]:
            url = f"{_base(request)}/tiles"
            return {
                "links": [link(url, "self", JSON)],
                "tilesets": [self._tileset_summary(request, url, tms, "Twin") for tms in SUPPORTED],
            }

        @self.router.get("/tiles/{tileMatrixSetId}", summary="The dataset's tileset")
        def dataset_tileset(
            request: Request, tileMatrixSetId: str, store: store_dep, collections: collections_q = None
        ) -> dict[str, Any]:
            tile_matrix_set(tileMatrixSetId)
            layers = _chosen(store, collections)
            url = f"{_base(request)}/tiles/{tileMatrixSetId}"
            return self._tileset(request, url, tileMatrixSetId, layers, layers_extent(store, layers), "Twin")

        @self.router.get("/tiles/{tileMatrixSetId}/tilejson.json", summary="Dataset tiles as TileJSON 3.0")
        def dataset_tilejson(
            request: Request,
            tileMatrixSetId: str,
            store: store_dep,
            collections: collections_q = None,
            properties: properties_q = None,
        ) -> dict[str, Any]:
            tile_matrix_set(tileMatrixSetId)
            layers = _chosen(store, collections)
            query = f"?collections={','.join(layer.id for layer in layers)}"
            query += _properties_query("&", layers, properties)
            url = f"{_base(request)}/tiles/{tileMatrixSetId}/{{z}}/{{y}}/{{x}}{query}"
            return tilejson("twin", url, layers, layers_extent(store, layers))

        @self.router.get(
            "/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
            summary="A vector tile with several collections, one MVT layer each",
            response_class=TileResponse,
            responses=tile_responses,
        )
        async def dataset_tile(
            request: Request,
            tileMatrixSetId: str,
            tileMatrix: str,
            tileRow: str,
            tileCol: str,
            store: store_dep,
            collections: collections_q = None,
            properties: properties_q = None,
        ) -> Response:
            _only(request, {"collections", "properties", "f"})
            address = parse_address(tileMatrixSetId, tileMatrix, tileCol, tileRow)
            ids = _ids(collections)
            if ids is None:
                ids = tuple(layer.id for layer in await run_in_threadpool(_chosen, store, None))
            return await self._serve(request, store, address, ids, properties)

        @self.router.get("/styles", summary="The map styles")
        def styles(request: Request) -> dict[str, Any]:
            url = f"{_base(request)}/styles/default"
            return {
                "styles": [
                    {
                        "id": "default",
                        "title": "Mọi lớp (all layers)",
                        "links": [link(url, "stylesheet", STYLE_JSON), link(url, "describedby", JSON)],
                    }
                ]
            }

        @self.router.get("/styles/{styleId}", summary="A MapLibre style (version 8) drawing the layers")
        def style(request: Request, styleId: str, store: store_dep) -> Response:
            if styleId != "default":
                raise NotFoundError(f"style '{styleId}' does not exist; the styles are: default")
            layers = store.list_layers()
            bounds = layers_extent(store, layers) if layers else None
            centre = ((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2) if bounds else None
            document = style_document(_base(request), "Twin", layers, centre, self.elevation(request))
            return _json(document, STYLE_JSON)

    # --- helpers --------------------------------------------------------------------

    def _tileset_summary(self, request: Request, url: str, tms: str, title: str) -> dict[str, Any]:
        return {
            "title": title,
            "dataType": "vector",
            "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
            "tileMatrixSetURI": WEB_MERCATOR_URI,
            "links": [
                link(f"{url}/{tms}", "self", JSON),
                link(f"{_base(request)}/tileMatrixSets/{tms}", TILING_SCHEME_REL, JSON),
            ],
        }

    def _tileset(
        self,
        request: Request,
        url: str,
        tms: str,
        layers: list[LayerDefinition],
        bounds: tuple[float, float, float, float] | None,
        title: str,
    ) -> dict[str, Any]:
        minzoom = min(layer.style.min_zoom for layer in layers)
        maxzoom = max(layer.style.max_zoom for layer in layers)
        suffix = (
            ""
            if url.startswith(f"{_base(request)}/collections/")
            else "?collections=" + ",".join(layer.id for layer in layers)
        )
        document: dict[str, Any] = {
            "title": title,
            "dataType": "vector",
            "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
            "tileMatrixSetURI": WEB_MERCATOR_URI,
            "tileMatrixSetLimits": [{"tileMatrix": str(z)} for z in range(minzoom, maxzoom + 1)],
            "layers": [
                {
                    "id": layer.id,
                    "title": layer.title,
                    "dataType": "vector",
                    "geometryType": _ogc_geometry(layer),
                    "minTileMatrix": str(layer.style.min_zoom),
                    "maxTileMatrix": str(layer.style.max_zoom),
                }
                for layer in layers
            ],
            "links": [
                link(url, "self", JSON),
                link(f"{_base(request)}/tileMatrixSets/{tms}", TILING_SCHEME_REL, JSON),
                link(f"{url}/tilejson.json{suffix}", "alternate", JSON, "TileJSON"),
                {
                    "href": f"{url}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}{suffix}",
                    "rel": "item",
                    "type": MVT,
                    "templated": True,
                },
            ],
        }
        if bounds is not None:
            document["boundingBox"] = {
                "lowerLeft": [bounds[0], bounds[1]],
                "upperRight": [bounds[2], bounds[3]],
                "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
            }
        return document

    async def _serve(
        self,
        request: Request,
        store: Reader,
        address: TileAddress,
        layer_ids: tuple[str, ...],
        properties: str | None,
    ) -> Response:
        """A cached tile straight from the event loop when no write can have changed it; else built in a thread."""
        wanted = property_list(properties)
        tile_request = TileRequest(address, layer_ids, wanted, store.scope.key)
        tile = self.service.cached(store, tile_request)
        if tile is None:
            tile = await run_in_threadpool(self.service.tile, store, tile_request)
        headers = tile.headers()
        if tile.matches(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        if not tile.raw:
            return Response(status_code=204, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = tile.gzip or await run_in_threadpool(self.service.gzipped, tile_request, tile)
            return TileResponse(body, headers=headers)
        return TileResponse(tile.raw, headers=headers)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _json(document: dict[str, Any], media_type: str) -> Response:
    return Response(json.dumps(document, ensure_ascii=False), media_type=media_type)


def _only(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise InvalidInputError(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"this resource takes {', '.join(sorted(allowed))}"
        )


def _properties_query(sep: str, layers: list[LayerDefinition], properties: str | None) -> str:
    """The ``properties`` parameter a TileJSON's tile URLs carry: checked, and spelt as the tiles' cache key
    is (sorted, each once), so that every client of the TileJSON asks for the same cached tiles."""
    wanted = property_list(properties)
    check_properties(layers, wanted)
    return "" if wanted is None else f"{sep}properties={quote(','.join(wanted), safe=',')}"


def _ids(collections: str | None) -> tuple[str, ...] | None:
    """The collection ids of a ``collections`` parameter; None (every layer) when absent."""
    if collections is None:
        return None
    ids = tuple(c.strip() for c in collections.split(",") if c.strip())
    if not ids:
        raise InvalidInputError("collections: give at least one collection id")
    if len(set(ids)) != len(ids):
        raise InvalidInputError("collections: an id is repeated")
    return ids


def _chosen(store: Reader, collections: str | None) -> list[LayerDefinition]:
    """The layers named in ``collections`` (all when absent), each checked to exist."""
    ids = _ids(collections)
    if ids is None:
        layers = store.list_layers()
        if not layers:
            raise NotFoundError("there are no collections to draw")
        return layers
    return [store.get_layer(layer_id) for layer_id in ids]


def _ogc_geometry(layer: LayerDefinition) -> str:
    kind = layer.geometry_type.value.lower().removeprefix("multi")
    return {"point": "points", "linestring": "lines", "polygon": "polygons"}.get(kind, "geometry")
