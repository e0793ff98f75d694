"""The map client (``frontend/dist``, built by Vite) served by the same app as the APIs.

``/`` is shared with the OGC API landing page: a browser asking for HTML without ``f=`` gets the planner
view, while ``Accept: application/json`` and any ``?f=`` (``f=json`` for GDAL/OWSLib, ``f=html`` for the
OGC HTML landing page) still reach the OGC router untouched. That choice is made by a small ASGI
middleware rather than a second ``/`` route, so ``ogc/`` keeps its own negotiation and knows nothing of
the client. Static files carry explicit media types: MapLibre's worker is an ``.mjs`` module that
browsers refuse unless it is ``text/javascript``, whatever the host's ``mimetypes`` table says.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent
#: Where the built client is looked for: in the installed package (a wheel carries it there, see
#: pyproject.toml), then in the checkout around the package (``make client`` builds it there).
CLIENT_DIST_CANDIDATES = (_PACKAGE / "client", _PACKAGE.parent / "frontend" / "dist")

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".pbf": "application/x-protobuf",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".map": "application/json",
}
# Vite names built files `name-<8+ char hash>.ext`: those never change and may be cached for good.
HASHED = re.compile(r"-[A-Za-z0-9_-]{8,}\.(?:m?js|css|png|svg|wasm)$")
NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Twin</title>
<p>The map client is not built. Run <code>make run</code>, or <code>npm ci &amp;&amp; npm run build</code>
in <code>frontend/</code>.</p><p><a href="/?f=html">OGC API landing page</a></p>"""


class ClientAssets(StaticFiles):
    """Static files with the media types and cache lifetimes the client needs."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        path = str(full_path)
        suffix = Path(path).suffix.lower()
        if suffix in MEDIA_TYPES:
            response.headers["content-type"] = MEDIA_TYPES[suffix]
        if HASHED.search(path):
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["cache-control"] = "public, max-age=3600"
        return response


class PlannerAtRoot:
    """Answers ``GET /`` with the planner's index.html for browsers; everything else passes through."""

    def __init__(self, app: ASGIApp, index: Path) -> None:
        self.app = app
        self.index = index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/"
            and scope["method"] in ("GET", "HEAD")
            and _wants_page(scope)
        ):
            response = FileResponse(
                self.index, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _wants_page(scope: Scope) -> bool:
    """The same test as the OGC router's (Accept starts with text/html), and no explicit ``f``."""
    query = scope.get("query_string", b"").decode("latin-1")
    if any(part.split("=", 1)[0] == "f" for part in query.split("&") if part):
        return False
    accept = next((value for name, value in scope.get("headers", []) if name == b"accept"), b"")
    return accept.decode("latin-1").lstrip().startswith("text/html")


def find_client_dist() -> Path:
    """The first candidate folder that holds a built client (the checkout's, to name in a message, if none)."""
    return next((p for p in CLIENT_DIST_CANDIDATES if (p / "index.html").is_file()), CLIENT_DIST_CANDIDATES[-1])


def mount_client(app: FastAPI, dist_dir: Path | None = None) -> None:
    """Serve the built client: ``/`` (browsers), ``/wall``, ``/assets/…`` (bundles, glyphs, wall scenes)."""
    dist = dist_dir or find_client_dist()
    index, wall = dist / "index.html", dist / "wall.html"
    if not index.is_file():
        log.info("map client not built (%s missing); / stays the OGC landing page", index)

        @app.api_route("/wall", methods=["GET", "HEAD"], include_in_schema=False)
        def wall_not_built() -> HTMLResponse:
            return HTMLResponse(NOT_BUILT, status_code=503)

        return

    @app.api_route("/wall", methods=["GET", "HEAD"], include_in_schema=False)
    def wall_page() -> FileResponse:
        return FileResponse(wall, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    app.mount("/assets", ClientAssets(directory=dist / "assets"), name="client-assets")
    app.add_middleware(PlannerAtRoot, index=index)
