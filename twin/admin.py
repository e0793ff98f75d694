"""The admin API: create, alter and drop layers at runtime, and import files into them.

Changes go to the catalog in the database, so every worker process serves the
new definition on its next request, with no restart. Imports run as jobs
(``twin.jobs``), whose status any worker serves at ``/admin/jobs/{id}``.
"""

from __future__ import annotations

import io
import re
import shutil
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from layers.access import Role, Scope
from layers.errors import InvalidInputError, NotFoundError
from layers.io.importer import ImportReport, import_file
from layers.io.sources import ReadOptions
from layers.model import IDENTIFIER, LayerDefinition, LayerPatch
from layers.store import LayerStore, LoadMode, ScopedReader
from layers.store.principals import AuditQuery, write_audit_csv
from twin.auth import get_reader, require_admin, require_signed_in
from twin.jobs import ImportJobs, Job, JobProgress
from twin.problems import PROBLEM_SCHEMA, UNAVAILABLE_SCHEMA
from twin.settings import TwinSettings
from twin.uploads import Upload

IDENTIFIER_PATTERN = re.compile(IDENTIFIER)


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


class LayerSummary(BaseModel):
    """A layer's definition with what it holds now."""

    definition: LayerDefinition
    feature_count: int


StoreDep = Annotated[ScopedReader, Depends(get_reader)]
#: The longest an import request waits for its job, whatever ``Prefer: wait`` asks.
MAX_WAIT_S = 60.0
ERRORS = {**{code: PROBLEM_SCHEMA for code in (400, 401, 403, 404, 409)}, 503: UNAVAILABLE_SCHEMA}


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/admin/layers", tags=["admin"], responses=ERRORS)  # type: ignore[arg-type]
    writer = [Depends(require_signed_in)]

    @router.get("", summary="List layers (those the principal may read)")
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
        "a bad file changes nothing and the problem names the feature and field at fault. The import runs as a "
        "job: an import done within TWIN_IMPORT_WAIT_S (or the `wait` the `Prefer` header asks for) answers 200 "
        "with its report (or its problem); a longer one, or one sent with `Prefer: respond-async`, answers 202 "
        "with `Location:` its status document (OGC API – Processes: accepted, running, successful, failed).",
        response_model=ImportReport,
        responses={
            202: {
                "description": "The import runs: its status document is at the Location",
                "headers": {"Location": {"description": "The job's status document", "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    def import_upload(
        request: Request,
        layer_id: str,
        store: StoreDep,
        settings: Annotated[TwinSettings, Depends(get_settings)],
        file: Annotated[UploadFile, File(description="The file; its name's extension tells its format.")],
        mode: Annotated[LoadMode, Form()] = LoadMode.APPEND,
        crs: Annotated[str | None, Form(description="Source CRS if the file has none, e.g. EPSG:9217.")] = None,
        encoding: Annotated[str | None, Form(description="Text encoding if not UTF-8, e.g. cp1258.")] = None,
        repair: Annotated[bool, Form(description="Repair invalid geometries instead of refusing.")] = False,
        skip_invalid: Annotated[
            bool,
            Form(
                description="Leave out features whose geometry cannot be stored (missing, of another type, "
                "unreadable, invalid and not repaired); the report counts them and lists the first 100."
            ),
        ] = False,
        prefer: Annotated[str | None, Header(description="respond-async, wait=N (RFC 7240)")] = None,
    ) -> Any:
        if not IDENTIFIER_PATTERN.fullmatch(layer_id):  # match() would let "abc\n" through "$"
            raise InvalidInputError(
                f"{layer_id[:60]!r} is not a valid layer id (a lowercase letter, then up to 40 lowercase letters, "
                "digits and _)"
            )
        jobs = jobs_of(request)
        job_id, upload = _received(jobs, file)

        def work(progress: JobProgress) -> ImportReport:
            options = ReadOptions(crs=crs, encoding=encoding)
            return import_file(
                store,
                upload.path,
                layer_id,
                mode=mode,
                options=options,
                repair=repair,
                skip_invalid=skip_invalid,
                on_inspected=progress.inspected,
                progress=progress.advance,
            )

        job = jobs.start(job_id, upload, layer_id, work, store.scope.principal)
        return _answer(request, job, prefer, settings.import_wait_s)

    @router.delete("/{layer_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=writer, summary="Drop a layer")
    def drop_layer(layer_id: str, store: StoreDep) -> Response:
        store.drop_layer(layer_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


def jobs_of(request: Request) -> ImportJobs:
    jobs: ImportJobs = request.app.state.jobs
    return jobs


def jobs_router() -> APIRouter:
    """Status documents of import jobs, served by every worker (see ``twin.jobs``)."""
    router = APIRouter(prefix="/admin/jobs", tags=["admin"], responses=ERRORS)  # type: ignore[arg-type]

    @router.get("/{job_id}", summary="The status of an import job (for whoever started it, and admins)")
    def import_job(request: Request, job_id: str, scope: Annotated[Scope, Depends(require_signed_in)]) -> JSONResponse:
        document = jobs_of(request).board.read(job_id)
        if not scope.is_admin and document.get("principal") != scope.principal:
            raise NotFoundError(f"there is no job '{job_id}'")  # another's job: as if there were none
        return JSONResponse(_status_view(document, str(request.url_for("import_job", job_id=job_id))))

    return router


def _received(jobs: ImportJobs, file: UploadFile) -> tuple[str, Upload]:
    """The upload, on disk before the request is answered: the job outlives the request."""
    job_id, upload = jobs.new_upload(file.filename or "upload")
    try:
        with upload.path.open("wb") as out:
            shutil.copyfileobj(file.file, out, length=1 << 20)
    except BaseException:
        upload.close()
        jobs.forget(job_id)
        raise
    return job_id, upload


def _answer(request: Request, job: Job, prefer: str | None, default_wait_s: float) -> Any:
    """The job's result if it ends within the wait (its error raised, as a plain request would), else 202."""
    asked_async, wait_s = _preference(prefer, default_wait_s)
    if job.done.wait(wait_s):
        if job.error is not None:
            raise job.error
        return job.result
    url = str(request.url_for("import_job", job_id=job.id))
    headers = {"Location": url, **({"Preference-Applied": "respond-async"} if asked_async else {})}
    return JSONResponse(_status_view(job.document, url), status_code=status.HTTP_202_ACCEPTED, headers=headers)


def _preference(prefer: str | None, default_wait_s: float) -> tuple[bool, float]:
    """Whether the client asked to be answered at once (``respond-async``), and how long to wait for the job."""
    asked_async, wait_s = False, None
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";")[0].strip().partition("=")
        if name.lower() == "respond-async":
            asked_async = True
        elif name.lower() == "wait" and value.strip().isdigit():
            wait_s = min(float(value), MAX_WAIT_S)
    if wait_s is None:
        wait_s = 0.0 if asked_async else default_wait_s
    return asked_async, wait_s


def _status_view(document: dict[str, Any], url: str) -> dict[str, Any]:
    return {**document, "links": [{"href": url, "rel": "self", "type": "application/json", "title": "This job"}]}


class NewKey(BaseModel):
    """A key to make: its name, roles, areas (ids or names of admin_area features) and expiry."""

    name: str = Field(description="Unique; letters, digits and _ . @ -", examples=["ghenh-rang-officer"])
    roles: list[str] = Field(min_length=1, examples=[["ward_officer"]])
    areas: list[str] = Field(default_factory=list, examples=[["Ghềnh Ráng"]])
    expires_at: AwareDatetime | None = Field(default=None, description="When it stops working (with a time zone).")


async def _admin_reader(request: Request, scope: Annotated[Scope, Depends(require_admin)]) -> ScopedReader:
    return ScopedReader(store_of(request), scope)


#: The store as an admin request's principal sees it (anyone else: 401/403 before the route runs).
AdminReader = Annotated[ScopedReader, Depends(_admin_reader)]


def keys_router() -> APIRouter:
    """API keys over HTTP, for admins: the same as ``twin keys``."""
    router = APIRouter(prefix="/admin/keys", tags=["admin"], responses=ERRORS)  # type: ignore[arg-type]

    @router.get("", summary="List the API keys (never the keys themselves)")
    def list_keys(store: AdminReader) -> list[dict[str, Any]]:
        return [key.as_json() for key in store.list_keys()]

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        summary="Make an API key",
        description="The answer holds the key in `key`, shown this once: the store keeps only its hash.",
    )
    def add_key(new: NewKey, store: AdminReader) -> dict[str, Any]:
        key, secret = store.add_key(new.name, new.roles, new.areas, new.expires_at)
        return {**key.as_json(), "key": secret}

    @router.delete("/{name}", summary="Revoke an API key (it stays listed, revoked)")
    def revoke_key(name: str, store: AdminReader) -> dict[str, Any]:
        return store.revoke_key(name).as_json()

    return router


#: Most audit entries one request answers.
MAX_AUDIT_PAGE = 10_000


def audit_router() -> APIRouter:
    """The audit trail, for admins: filters, keyset paging, JSON or CSV."""
    router = APIRouter(prefix="/admin/audit", tags=["admin"], responses=ERRORS)  # type: ignore[arg-type]

    @router.get(
        "",
        summary="The audit trail: who changed what, when, from where; refused sign-ins and writes",
        response_class=JSONResponse,
        responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
    )
    def audit(
        request: Request,
        store: AdminReader,
        principal: Annotated[str | None, Query(max_length=200)] = None,
        action: Annotated[str | None, Query(max_length=40, examples=["feature.update"])] = None,
        outcome: Annotated[str | None, Query(pattern="^(ok|refused)$")] = None,
        layer: Annotated[str | None, Query(max_length=64)] = None,
        feature: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
        since: Annotated[AwareDatetime | None, Query()] = None,
        until: Annotated[AwareDatetime | None, Query()] = None,
        after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="Entries after this id")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
        f: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
    ) -> Response:
        query = AuditQuery(principal, action, outcome, layer, feature, since, until, after, limit)
        entries = store.audit(query)
        if f == "csv":
            table = io.StringIO()
            write_audit_csv(entries, table)
            return Response(table.getvalue(), media_type="text/csv; charset=utf-8")
        document: dict[str, Any] = {"entries": [e.as_json() for e in entries]}
        if len(entries) == limit and entries[-1].id is not None:
            following = {**request.query_params, "after": str(entries[-1].id)}
            document["next"] = str(request.url.include_query_params(**following))
        return JSONResponse(document)

    return router


def auth_router() -> APIRouter:
    """What the client needs to sign in and to show who is signed in."""
    router = APIRouter(prefix="/auth", tags=["access"], responses=ERRORS)  # type: ignore[arg-type]

    @router.get("/me", summary="Who this request is: the principal, its roles and areas, the layers it may read")
    def me(store: StoreDep) -> dict[str, Any]:
        scope = store.scope
        layers = store.list_layers()
        return {
            "principal": scope.principal,
            "roles": sorted(scope.roles),
            "areas": list(scope.areas),
            "signed_in": scope.signed_in,
            "admin": scope.is_admin,
            "layers": [layer.id for layer in layers],
        }

    @router.get("/config", summary="How the planner signs in: by API key, and by the OIDC provider if configured")
    def config(request: Request) -> dict[str, Any]:
        settings = settings_of(request)
        oidc = None
        if (
            settings.oidc_enabled
            and settings.oidc_authorize_url
            and settings.oidc_token_url
            and settings.oidc_client_id
        ):
            oidc = {
                "issuer": settings.oidc_issuer,
                "authorization_endpoint": settings.oidc_authorize_url,
                "token_endpoint": settings.oidc_token_url,
                "client_id": settings.oidc_client_id,
            }
        return {"api_key": True, "oidc": oidc, "roles": [r.value for r in Role]}

    return router
