"""OGC API – Features, Part 4: create, replace, update (JSON Merge Patch) and delete features.

Every feature carries an ``ETag`` (its id and version); a write with
``If-Match`` is refused with 412 when the feature changed since it was read.
Writes go through the store, so they are validated against the layer's fields
and geometry type and kept in history. The ``writer`` dependency the application
passes in refuses anonymous requests; what a principal may change (the layer's
``write`` grant, its areas, the fields it sees) is decided by the store, through
the scoped reader the routes receive.
"""

# No "from __future__ import annotations": the handlers' annotations name per-instance dependencies.
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response, status
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from starlette.concurrency import run_in_threadpool

from layers.errors import InvalidInputError, PayloadTooLargeError, PreconditionFailedError
from layers.features import Feature, FeatureInput
from layers.store import Reader
from ogc.geojson import GEOJSON
from ogc.params import parse_feature_id

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
]
_MERGE_PATCH = {"content": {"application/merge-patch+json": {"schema": {"type": "object"}}}}
_BODY = {"content": {GEOJSON: {"schema": {"type": "object"}}, "application/json": {"schema": {"type": "object"}}}}


def etag(feature: Feature) -> str:
    return f'"{feature.id}-{feature.version}"'


def expected_version(if_match: str | None, fid: int) -> int | None:
    """The version an ``If-Match`` header names; ``*`` or no header means any."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    feature_id, _, version = tag.partition("-")
    if feature_id != str(fid) or parse_feature_id(version) is None:
        raise PreconditionFailedError(f"If-Match {if_match!r} is not an ETag of feature {fid}")
    return int(version)


GEOJSON_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)
#: Bytes of one written feature (or merge patch): a parcel of 100,000 vertices is about 4 MB of GeoJSON.
MAX_BODY_BYTES = 16 * 2**20


async def json_body(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON, read no further than ``limit`` bytes (413 beyond), nested as deep as
    Python's parser goes (400 deeper, not a RecursionError)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the body is {int(declared):,} bytes; a feature may take {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the body is more than {limit:,} bytes; a feature may take {limit:,}")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"the body is not JSON ({exc})") from None
    except RecursionError:
        raise InvalidInputError("the body is JSON nested too deep") from None


async def _feature_body(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict) or body.get("type") != "Feature":
        raise InvalidInputError('the body must be a GeoJSON Feature ({"type": "Feature", ...})')
    return body


def _geometry(body: dict[str, Any], required: bool) -> BaseGeometry | None:
    if body.get("geometry") is None:
        if required:
            raise InvalidInputError("the feature has no geometry")
        return None
    geometry = body["geometry"]
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in GEOJSON_TYPES:
        raise InvalidInputError(
            f"geometry: {str(kind)[:40]!r} is not a GeoJSON geometry type (RFC 7946: {', '.join(GEOJSON_TYPES)})"
        )
    try:
        return shape(geometry)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, ShapelyError, RecursionError) as exc:
        raise InvalidInputError(f"geometry: not a GeoJSON {kind} ({str(exc)[:200]})") from None


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise InvalidInputError("properties: must be a JSON object")
    return properties


def _parse_id(feature_id: str) -> int:
    fid = parse_feature_id(feature_id)
    if fid is None:
        raise InvalidInputError(f"{feature_id!r} is not a feature id")
    return fid


class FeatureTransactionsAPI:
    """Write routes for the items of every collection."""

    def __init__(self, get_store: Callable[..., Reader | Awaitable[Reader]], writer: Callable[..., Any]) -> None:
        self.get_store = get_store
        self.router = APIRouter(tags=["OGC API – Features (transactions)"], dependencies=[Depends(writer)])
        self._register()

    def _register(self) -> None:
        store_dep = Annotated[Reader, Depends(self.get_store)]
        if_match = Annotated[str | None, Header(description="The ETag the change is based on.")]

        @self.router.post(
            "/collections/{collection_id}/items",
            status_code=status.HTTP_201_CREATED,
            summary="Create a feature",
            openapi_extra={"requestBody": _BODY},
        )
        async def create(request: Request, collection_id: str, store: store_dep) -> Response:
            body = await _feature_body(request)
            geometry = _geometry(body, required=True)
            new = [FeatureInput(geometry, _properties(body))]  # type: ignore[arg-type]
            [fid] = await run_in_threadpool(store.insert_features, collection_id, new)
            location = f"{str(request.base_url).rstrip('/')}/collections/{collection_id}/items/{fid}"
            return Response(status_code=201, headers={"Location": location, "ETag": f'"{fid}-1"'})

        @self.router.put(
            "/collections/{collection_id}/items/{feature_id}",
            summary="Replace a feature",
            openapi_extra={"requestBody": _BODY},
        )
        async def replace(
            request: Request, collection_id: str, feature_id: str, store: store_dep, if_match: if_match = None
        ) -> Response:
            fid = _parse_id(feature_id)
            body = await _feature_body(request)
            feature = await run_in_threadpool(
                store.update_feature,
                collection_id,
                fid,
                geometry=_geometry(body, required=True),
                properties=_properties(body),
                replace=True,
                expected_version=expected_version(if_match, fid),
            )
            return Response(status_code=204, headers={"ETag": etag(feature)})

        @self.router.patch(
            "/collections/{collection_id}/items/{feature_id}",
            summary="Update a feature (JSON Merge Patch)",
            openapi_extra={
                "requestBody": {"content": {"application/merge-patch+json": {"schema": {"type": "object"}}}}
            },
        )
        async def update(
            request: Request, collection_id: str, feature_id: str, store: store_dep, if_match: if_match = None
        ) -> Response:
            fid = _parse_id(feature_id)
            patch = await json_body(request)
            if not isinstance(patch, dict):
                raise InvalidInputError("a merge patch must be a JSON object")
            feature = await run_in_threadpool(
                store.update_feature,
                collection_id,
                fid,
                geometry=_geometry(patch, required=False),
                properties=_properties(patch),  # null removes a value: the field becomes null
                expected_version=expected_version(if_match, fid),
            )
            return Response(status_code=204, headers={"ETag": etag(feature)})

        @self.router.delete(
            "/collections/{collection_id}/items/{feature_id}",
            status_code=status.HTTP_204_NO_CONTENT,
            summary="Delete a feature (it stays in history)",
        )
        def delete(collection_id: str, feature_id: str, store: store_dep, if_match: if_match = None) -> Response:
            fid = _parse_id(feature_id)
            store.delete_feature(collection_id, fid, expected_version=expected_version(if_match, fid))
            return Response(status_code=204)
