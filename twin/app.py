"""The application factory: ``create_app(settings)`` wires the store into the routers."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from layers.errors import TwinError, UnavailableError
from layers.mvtpoints import compile_encoder
from layers.rasters import RasterCatalog, RasterKind
from layers.signal import SharedCounter
from layers.store import LayerStore, ScopedReader
from layers.store.postgis_tiles import compile_readers
from ogc.features import OPENAPI_30, FeaturesAPI
from ogc.openapi import with_collections
from ogc.transactions import CONFORMANCE as TRANSACTIONS
from ogc.transactions import FeatureTransactionsAPI
from tiles.api import CONFORMANCE as TILES
from tiles.api import TilesAPI
from tiles.cache import TileCache
from tiles.front import TileFront
from tiles.raster import RasterTilesAPI
from tiles.service import TileService
from twin import __version__
from twin.admin import (
    admin_router,
    audit_router,
    auth_router,
    jobs_router,
    keys_router,
    settings_of,
    store_of,
)
from twin.auth import Authenticator, get_reader, reader_for, require_signed_in, resolve_scope
from twin.gate import AccessGate, RateLimit, SecurityHeaders, content_security_policy, origin_of
from twin.jobs import ImportJobs, JobBoard
from twin.openapi30 import downgrade
from twin.problems import PROBLEM_SCHEMA, UNAVAILABLE_SCHEMA, install_problem_handlers
from twin.settings import TwinSettings
from twin.statistics import StatisticsAPI
from twin.uploads import remove_leftover_uploads
from twin.web import mount_client

log = logging.getLogger(__name__)

DESCRIPTION = """\
Twin serves every dataset of a provincial operations centre — administrative
areas, address points, land parcels, infrastructure, cameras, sensors, vessels
and citizen reports — as spatial layers.

Twin phục vụ mọi lớp dữ liệu không gian của Trung tâm giám sát, điều hành thông minh.
"""


def _compile_loops() -> None:
    """numba's loops for point tiles, compiled (or loaded from its cache) before the first tile needs them."""
    compile_encoder()
    compile_readers()


def create_app(settings: TwinSettings, store: LayerStore | None = None) -> FastAPI:
    """Build the app. The store is opened at startup unless one is given (tests share one)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        threading.Thread(target=_compile_loops, name="compile-point-tile-loops", daemon=True).start()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.state.jobs.board.settle()  # jobs a crash interrupted end as failed, before their uploads go
        remove_leftover_uploads(settings.data_dir)
        if owned:
            writes = SharedCounter(settings.write_counter_path)
            app.state.store = await run_in_threadpool(
                LayerStore.open, settings.store_url, writes, settings.write_limits, settings.statement_timeout_s
            )
        log.info("Twin %s serving %s store", __version__, settings.backend_label)
        try:
            yield
        finally:
            await run_in_threadpool(app.state.jobs.shutdown)
            if owned:
                app.state.store.close()

    app = FastAPI(
        title="Twin",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={500: PROBLEM_SCHEMA},  # type: ignore[dict-item]
    )
    app.state.settings = settings
    app.state.authenticator = Authenticator(settings)
    app.state.jobs = ImportJobs(JobBoard(settings.data_dir), settings.import_jobs)
    if store is not None:
        app.state.store = store
    # Tiles first: the map asks for hundreds of them a minute. Layer tiles are answered before routing
    # (inside the request-id middleware that install_problem_handlers adds around everything).
    tile_cache = TileCache(settings.tile_cache_mb * 2**20, settings.tile_cache_dir)
    app.state.tiles = TileService(tile_cache)
    app.add_middleware(TileFront, service=app.state.tiles, reader_of=reader_for)
    # The door: writes and admin requests are authenticated, and their bodies bounded, before routing.
    app.add_middleware(
        AccessGate,
        resolve=resolve_scope,
        max_body_bytes=settings.max_body_mb * 2**20,
        max_upload_bytes=settings.max_upload_mb * 2**20,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "If-Match", "If-None-Match", "Prefer"],
            expose_headers=["ETag", "Location", "Link", "Content-Crs", "X-Request-ID", "Retry-After"],
            max_age=600,
        )
    if settings.rate_limit_per_minute:
        app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    install_problem_handlers(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    tiles_api = TilesAPI(get_reader, app.state.tiles, elevation=_elevation)
    app.include_router(tiles_api.router, responses=ERRORS)  # type: ignore[arg-type]
    features = FeaturesAPI(
        get_reader,
        title="Twin",
        description=DESCRIPTION,
        extra_conformance=[*TRANSACTIONS, *TILES],
        filter_limits=settings.filter_limits,
    )
    app.include_router(features.router, responses=ERRORS)  # type: ignore[arg-type]
    app.include_router(FeatureTransactionsAPI(get_reader, writer=require_signed_in).router, responses=WRITE_ERRORS)  # type: ignore[arg-type]
    app.include_router(StatisticsAPI(get_reader, settings.filter_limits).router, responses=ERRORS)  # type: ignore[arg-type]
    app.include_router(admin_router())
    app.include_router(jobs_router())
    app.include_router(keys_router())
    app.include_router(audit_router())
    app.include_router(auth_router())
    rasters = RasterTilesAPI(raster_catalog, cache_bytes=settings.tile_cache_mb * 2**20 // 4)
    app.include_router(rasters.router, responses=ERRORS)  # type: ignore[arg-type]
    _add_health(app)
    _add_api_document(app)
    mount_client(app)
    # Outside the client's own middleware, so "/" carries the policy too; the planner may reach the OIDC token endpoint.
    token_origins = [origin_of(settings.oidc_token_url)] if settings.oidc_token_url else []
    app.add_middleware(SecurityHeaders, policy=content_security_policy(token_origins))
    return app


ERRORS = {code: PROBLEM_SCHEMA for code in (400, 401, 403, 404)}
WRITE_ERRORS = {**{code: PROBLEM_SCHEMA for code in (400, 401, 403, 404, 412, 413)}, 503: UNAVAILABLE_SCHEMA}


def raster_catalog(request: Request) -> RasterCatalog:
    """The raster layers of the app's store; converted COGs go to TWIN_DATA_DIR/rasters."""
    return RasterCatalog(store_of(request).engine, settings_of(request).data_dir / "rasters")


def _elevation(request: Request) -> str | None:
    """The first DEM raster layer, which map styles use as terrain."""
    dems = [r.id for r in raster_catalog(request).list_rasters() if r.kind is RasterKind.DEM]
    return dems[0] if dems else None


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, saying what the server really does: bad input is a 400 problem, not a 422."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", PROBLEM_SCHEMA)
    for unused in ("HTTPValidationError", "ValidationError"):
        document.get("components", {}).get("schemas", {}).pop(unused, None)
    app.openapi_schema = document
    return document


def _add_api_document(app: FastAPI) -> None:
    @app.get(
        "/api",
        tags=["OGC API – Features"],
        summary="This API's definition, as OpenAPI 3.0",
        response_class=OpenAPI30Response,
        responses={200: {"content": {OPENAPI_30: {"schema": {"type": "object"}}}}},
    )
    def api(request: Request, reader: Annotated[ScopedReader, Depends(get_reader)]) -> OpenAPI30Response:
        layers = reader.list_layers()
        return OpenAPI30Response(with_collections(downgrade(app.openapi()), layers))


class OpenAPI30Response(JSONResponse):
    media_type = OPENAPI_30


def _add_health(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"], summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The store answers",
        responses={503: PROBLEM_SCHEMA},  # type: ignore[dict-item]
    )
    def readyz(request: Request) -> dict[str, Any]:
        store = store_of(request)
        try:
            version = store.ping()
        except TwinError:
            raise
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            raise UnavailableError("the layer store does not answer") from exc
        return {"status": "ready", "backend": store.backend.name, "catalog_version": version}
