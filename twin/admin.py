"""The admin API: create, alter and drop layers at runtime.

Changes go to the catalog in the database, so every worker process serves the
new definition on its next request, with no restart.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, Response, Security, UploadFile, status
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from layers.errors import ForbiddenError, InvalidInputError
from layers.io.importer import ImportReport, import_file
from layers.io.sources import ReadOptions
from layers.model import IDENTIFIER, LayerDefinition, LayerPatch
from layers.store import LayerStore, LoadMode
from twin.problems import PROBLEM_SCHEMA
from twin.settings import TwinSettings

API_KEY_HEADER = "X-API-Key"
IDENTIFIER_PATTERN = re.compile(IDENTIFIER)
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="An API key from TWIN_API_KEYS.")


def store_of(request: Request) -> LayerStore:
    store: LayerStore = request.app.state.store
    return store


def settings_of(request: Request) -> TwinSettings:
    settings: TwinSettings = request.app.state.settings
    return settings


# The dependencies are ``async`` because they do no I/O: FastAPI runs a plain ``def`` dependency in
# its thread pool, a hand-off that costs more than serving a cached tile.
async def get_store(request: Request) -> LayerStore:
    return store_of(request)


async def get_settings(request: Request) -> TwinSettings:
    return settings_of(request)


def require_api_key(
    settings: Annotated[TwinSettings, Depends(get_settings)],
    key: Annotated[str | None, Security(_api_key)] = None,
) -> str:
    """The principal making a change. Full roles and areas come with access control."""
    if not settings.api_keys:
        raise ForbiddenError("changes over HTTP are disabled: no API key is configured (set TWIN_API_KEYS)")
    if key is None:
        raise ForbiddenError(f"this change needs an API key in the {API_KEY_HEADER} header")
    for number, known in enumerate(settings.api_keys, start=1):
        if secrets.compare_digest(key.encode(), known.get_secret_value().encode()):
            return f"api-key-{number}"
    raise ForbiddenError("the API key is not valid")


class LayerSummary(BaseModel):
    """A layer's definition with what it holds now."""

    definition: LayerDefinition
    feature_count: int


StoreDep = Annotated[LayerStore, Depends(get_store)]
ERRORS = {code: PROBLEM_SCHEMA for code in (400, 403, 404, 409)}


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/admin/layers", tags=["admin"], responses=ERRORS)  # type: ignore[arg-type]
    writer = [Depends(require_api_key)]

    @router.get("", summary="List layers")
    def list_layers(store: StoreDep) -> list[LayerDefinition]:
        return store.list_layers()

    @router.get("/{layer_id}", summary="Describe a layer")
    def get_layer(layer_id: str, store: StoreDep) -> LayerSummary:
        return LayerSummary(definition=store.get_layer(layer_id), feature_count=store.count(layer_id))

    @router.post("", status_code=status.HTTP_201_CREATED, dependencies=writer, summary="Create a layer")
    def create_layer(layer: LayerDefinition, store: StoreDep, response: Response) -> LayerDefinition:
        created = store.create_layer(layer)
        response.headers["Location"] = f"/admin/layers/{created.id}"
        return created

    @router.patch("/{layer_id}", dependencies=writer, summary="Change a layer's metadata or fields")
    def alter_layer(layer_id: str, patch: LayerPatch, store: StoreDep) -> LayerDefinition:
        return store.alter_layer(layer_id, patch)

    @router.post(
        "/{layer_id}/import",
        dependencies=writer,
        summary="Import a file into a layer",
        description="GeoJSON, GeoPackage, zipped Shapefile, CSV (lon/lat) or KML, in any CRS. One transaction: "
        "a bad file changes nothing and the problem names the feature and field at fault.",
    )
    def import_upload(
        layer_id: str,
        store: StoreDep,
        settings: Annotated[TwinSettings, Depends(get_settings)],
        file: Annotated[UploadFile, File(description="The file; its name's extension tells its format.")],
        mode: Annotated[LoadMode, Form()] = LoadMode.APPEND,
        crs: Annotated[str | None, Form(description="Source CRS if the file has none, e.g. EPSG:9217.")] = None,
        encoding: Annotated[str | None, Form(description="Text encoding if not UTF-8, e.g. cp1258.")] = None,
        repair: Annotated[bool, Form(description="Repair invalid geometries instead of refusing.")] = False,
    ) -> ImportReport:
        if not IDENTIFIER_PATTERN.match(layer_id):
            raise InvalidInputError(f"'{layer_id}' is not a valid layer id (lowercase letters, digits, _)")
        name = Path(file.filename or "upload").name
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="twin-upload-", dir=settings.data_dir) as folder:
            path = Path(folder) / name
            with path.open("wb") as out:
                shutil.copyfileobj(file.file, out, length=1 << 20)
            return import_file(
                store, path, layer_id, mode=mode, options=ReadOptions(crs=crs, encoding=encoding), repair=repair
            )

    @router.delete("/{layer_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=writer, summary="Drop a layer")
    def drop_layer(layer_id: str, store: StoreDep) -> Response:
        store.drop_layer(layer_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
