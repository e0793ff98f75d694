"""A pygeoapi feature provider over Twin's store: a province that publishes through pygeoapi serves Twin's layers.

In pygeoapi's configuration, one collection per Twin layer::

    providers:
      - type: feature
        name: twin.pygeoapi.TwinProvider
        data: sqlite:////srv/twin/var/twin.sqlite     # or postgresql://… (TWIN_DATABASE_URL)
        layer: parcels                                 # the Twin layer id
        as_key: qgis-public-portal                     # optional: read as this key's holder (twin keys add)
        id_field: id
        crs: [http://www.opengis.net/def/crs/OGC/1.3/CRS84, http://www.opengis.net/def/crs/EPSG/0/9217, …]

(``examples/pygeoapi-config.yml`` is a whole one.) Everything is read by Twin's
own store, as Twin's ``/items`` reads it: ``bbox``, ``datetime``, ``properties``
and queryables as parameters, ``sortby`` and ``filter`` become one
``FeatureQuery``; the filter tree pygeoapi parsed is written back as CQL2 JSON
(``twin.pygeoapi.cql``) and checked by ``ogc.params.parse_filter`` with the
same limits as Twin's ``/items``, then compiled in SQL by the store — nothing
is filtered in Python. Features are encoded as Twin encodes them (in CRS84 by
the database itself), so an item from pygeoapi is the item from Twin.

``crs``: pygeoapi hands the provider the CRS asked for; Twin reprojects with
its own transformations (``ogc.crs``: CRS84, EPSG:4326 latitude first, 3857,
VN-2000 4756/9217/3405/3406), which pygeoapi's own decorator would redo with
the same pyproj but a different axis convention for some CRSs. Other CRSs are
refused with 400.

``offset``: Twin pages with keyset cursors, pygeoapi with offsets. An offset is
walked by keyset pages of at most 10,000 rows read without their properties,
so a deep offset costs what it skips, as in any database; pygeoapi's ``next``
links carry offsets.

Access: the provider reads as the public does — the layers Twin publishes, in full, without
their sensitive fields — unless ``as_key`` names a Twin API key, whose roles, areas and fields
it then reads with (the key is looked up on every request, so a revoked key stops at once).

The provider is read-only. pygeoapi builds a provider per request; the store
behind a URL is opened once per process and kept (``_store``), as pygeoapi's
SQL providers keep their engines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from typing import Any

from pygeoapi.provider.base import (
    BaseProvider,
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    ProviderQueryError,
    SchemaType,
)

from layers.access import PUBLIC
from layers.errors import (
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    TwinError,
    UnauthorizedError,
    UnavailableError,
)
from layers.features import BBox, Condition, FeaturePage, FeatureQuery, Op, SortKey
from layers.model import LayerDefinition
from layers.store import LayerStore, ScopedReader
from ogc.crs import CRS84, parse_crs
from ogc.geojson import GEOJSON, encode_features, geometry_schema, property_schemas
from ogc.params import MAX_LIMIT, parse_datetime, parse_feature_id, parse_filter, parse_properties
from twin.auth import scope_of_key_named
from twin.pygeoapi.cql import UnsupportedFilter, to_cql2

log = logging.getLogger(__name__)

#: Up to this many matches, a first page says how many there are (numberMatched), as Twin's /items does.
COUNT_CAP = 2_000


@lru_cache(maxsize=8)
def _store(url: str) -> LayerStore:
    """One store per database URL and process: pygeoapi makes a provider for every request."""
    return LayerStore.open(url)


@contextmanager
def _pygeoapi_errors() -> Iterator[None]:
    """Twin's errors as pygeoapi's, with Twin's message (written for the requester, no internals) shown."""
    try:
        yield
    except (InvalidInputError, UnsupportedFilter) as error:
        raise ProviderInvalidQueryError(user_msg=getattr(error, "detail", str(error))) from error
    except (NotFoundError, UnauthorizedError, ForbiddenError) as error:  # a layer it may not read is not there
        raise ProviderItemNotFoundError(user_msg=error.detail) from error
    except UnavailableError as error:
        raise ProviderConnectionError(user_msg=error.detail) from error
    except TwinError as error:
        raise ProviderQueryError(user_msg=error.detail) from error


class TwinProvider(BaseProvider):  # type: ignore[misc]
    """One Twin layer as a pygeoapi feature collection."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        self.layer_id: str = provider_def.get("layer") or provider_def.get("table") or ""
        if not self.layer_id:
            raise ProviderConnectionError(user_msg="the Twin provider needs the layer id (layer: …)")
        with _pygeoapi_errors():
            store = _store(self.data)
            as_key = provider_def.get("as_key")
            scope = PUBLIC if not as_key else scope_of_key_named(store, str(as_key))
            self.store = ScopedReader(store, scope)
            self.layer: LayerDefinition = self.store.get_layer(self.layer_id)
        self.id_field: str = provider_def.get("id_field") or "id"
        self.time_field: str | None = provider_def.get("time_field") or self.layer.time_field
        self._fields = self.get_fields()

    def get_fields(self) -> dict[str, dict[str, Any]]:
        """The layer's declared fields as pygeoapi's queryables: JSON Schema types, formats and choices."""
        fields: dict[str, dict[str, Any]] = {}
        for name, schema in property_schemas(self.layer).items():
            entry = {k: v for k, v in schema.items() if k in ("type", "format", "title")}
            if "enum" in schema:
                entry["values"] = schema["enum"]
            fields[name] = entry
        return fields

    def get_schema(self, schema_type: SchemaType = SchemaType.item) -> tuple[str, dict[str, Any]]:
        properties = {"geometry": geometry_schema(self.layer), **property_schemas(self.layer)}
        return GEOJSON, {"type": "object", "title": self.layer.title, "properties": properties}

    def query(
        self,
        offset: int = 0,
        limit: int = 10,
        resulttype: str = "results",
        bbox: list[float] | None = None,
        datetime_: str | None = None,
        properties: list[tuple[str, str]] | None = None,
        sortby: list[dict[str, str]] | None = None,
        select_properties: list[str] | None = None,
        skip_geometry: bool = False,
        q: str | None = None,
        filterq: Any = None,
        crs_transform_spec: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """A page of features, ``offset`` rows in, in the CRS asked for, read in one statement."""
        with _pygeoapi_errors():
            if q:
                raise InvalidInputError("q: free-text search is not offered by Twin's layers; use filter")
            target = self._target_crs(crs_transform_spec)
            tree = self._filter(filterq)

            def make(layer: LayerDefinition) -> FeatureQuery:
                return FeatureQuery(
                    bbox=_bbox(bbox),
                    time=parse_datetime(datetime_, layer),
                    where=[Condition(name, Op.EQ, value) for name, value in properties or []],
                    properties=parse_properties(",".join(select_properties), layer) if select_properties else None,
                    sort=[SortKey(key["property"], key.get("order") == "-") for key in sortby or []],
                    filter=tree,
                    limit=min(max(limit, 0), MAX_LIMIT),
                )

            if resulttype == "hits":
                matched = self.store.count(self.layer_id, replace(make(self.layer), limit=None))
                return {"type": "FeatureCollection", "features": [], "numberMatched": matched, "numberReturned": 0}
            start = self._skip(make, offset)
            if start is None or limit <= 0:
                return {"type": "FeatureCollection", "features": [], "numberReturned": 0}
            page = self.store.page(
                self.layer_id,
                lambda layer: replace(make(layer), after_id=start[0], after_values=start[1]),
                geojson=target == CRS84,
                count_cap=COUNT_CAP if offset == 0 else None,
            )
            features = _features(page, target, skip_geometry)
        collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
        collection["numberReturned"] = len(features)
        if page.matched is not None:
            collection["numberMatched"] = page.matched
        return collection

    def get(self, identifier: Any, crs_transform_spec: Any = None, **kwargs: Any) -> dict[str, Any]:
        """One feature by its Twin id, in the CRS asked for."""
        fid = parse_feature_id(str(identifier))
        if fid is None:
            raise ProviderItemNotFoundError(user_msg=f"collection '{self.layer_id}' has no feature {identifier!r}")
        with _pygeoapi_errors():
            target = self._target_crs(crs_transform_spec)
            feature = self.store.get_feature(self.layer_id, fid)
        document: dict[str, Any] = json.loads(encode_features([feature], target)[0])
        return document

    # --- internals -----------------------------------------------------------

    def _filter(self, filterq: Any) -> dict[str, Any] | None:
        """pygeoapi's parsed filter as CQL2 JSON, checked as Twin's /items checks a filter."""
        if filterq is None:
            return None
        return parse_filter(json.dumps(to_cql2(filterq)), "cql2-json", None)

    def _target_crs(self, spec: Any) -> str:
        if spec is None:
            return CRS84
        return parse_crs(spec.target_crs_uri)

    def _skip(
        self, make: Callable[[LayerDefinition], FeatureQuery], offset: int
    ) -> tuple[int | None, list[Any] | None] | None:
        """The keyset after the first ``offset`` rows (None, None: the start), or None when fewer rows match."""
        after_id: int | None = None
        after_values: list[Any] | None = None
        remaining = max(offset, 0)
        while remaining > 0:
            step = min(remaining, MAX_LIMIT)

            def ids_after(
                layer: LayerDefinition, a: int | None = after_id, v: list[Any] | None = after_values, n: int = step
            ) -> FeatureQuery:
                return replace(make(layer), limit=n, properties=[], after_id=a, after_values=v)

            ids_only = self.store.page(self.layer_id, ids_after)
            if ids_only.next_after is None:
                return None
            *values, after_id = ids_only.next_after
            after_values = values if values else None
            remaining -= step
        return after_id, after_values


def _bbox(numbers: list[float] | None) -> BBox | None:
    """pygeoapi's bbox (already in the storage CRS, CRS84); a 6-number 3D box drops its heights."""
    if not numbers:
        return None
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4:
        raise InvalidInputError(f"bbox: expected 4 (or 6) numbers, got {len(numbers)}")
    return BBox(*(float(n) for n in numbers))


def _features(page: FeaturePage, target: str, skip_geometry: bool) -> list[dict[str, Any]]:
    """The page's features as GeoJSON dicts, encoded exactly as Twin's /items encodes them."""
    encoded = page.encoded if page.encoded is not None else encode_features(page.features or [], target)
    features = [json.loads(text) for text in encoded]
    if skip_geometry:
        for feature in features:
            feature["geometry"] = None
    return features
