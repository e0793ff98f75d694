"""The door: what is checked before a request is routed, so its body is never read for nothing.

FastAPI reads a request's body before it resolves the route's dependencies, so a 200 MB upload
sent without a key would be received in full before the route refused it. ``AccessGate`` runs
first: on a write to features (any method but GET, HEAD and OPTIONS on ``/collections/{id}/items``)
and on every ``/admin`` path it
resolves the credential — a request with none, or with one that does not check out, is answered
401 at once — and it refuses a declared ``Content-Length`` over the route's limit (413) before a
byte of the body is read. The scope it resolved is left in the request's state for the route.

``SecurityHeaders`` adds ``X-Content-Type-Options: nosniff`` to every answer, and to HTML pages
(the planner, the wall, the OGC HTML views) a Content-Security-Policy that lets a page load only
from the server itself, and never be framed by another site.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layers.access import Scope as AccessScope
from layers.errors import PayloadTooLargeError, RateLimitedError, TwinError, UnauthorizedError
from twin.problems import problem_response

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_IMPORT_PATH = re.compile(r"^/admin/layers/[^/]+/import$")
#: Where writes are routed: a write elsewhere is answered by the router (404, 405) as before.
_WRITE_PATH = re.compile(r"^/collections/[^/]+/items(/[^/]*)?$")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; child-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class AccessGate:
    """Authenticates writes and admin requests, and bounds their bodies, before anything reads them."""

    def __init__(
        self,
        app: ASGIApp,
        resolve: Callable[[Request], Awaitable[AccessScope]],
        max_body_bytes: int,
        max_upload_bytes: int,
    ) -> None:
        self.app = app
        self.resolve = resolve
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guarded(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            resolved = await self.resolve(request)
            if not resolved.signed_in:
                raise UnauthorizedError(
                    "this needs a sign-in: an API key (X-API-Key or Authorization: Bearer) or an OIDC token"
                )
            limit = self.max_upload_bytes if _IMPORT_PATH.match(scope["path"]) else self.max_body_bytes
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise PayloadTooLargeError(
                    f"the body is {int(declared):,} bytes; this route takes at most {limit:,}", limit=limit
                )
        except TwinError as exc:
            await problem_response(request, exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["twin_scope"] = resolved
        await self.app(scope, _bounded(receive, self.max_upload_bytes), send)

    @staticmethod
    def _guarded(scope: Scope) -> bool:
        path = scope["path"]
        return path.startswith("/admin") or (scope["method"] not in READ_METHODS and bool(_WRITE_PATH.match(path)))


def _bounded(receive: Receive, limit: int) -> Receive:
    """The body stream, cut off past ``limit`` bytes (a body sent without a length, chunked)."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLargeError(f"the body is longer than the {limit:,} bytes this server takes")
        return message

    return bounded


class RateLimit:
    """At most ``per_minute`` requests a minute per key (per credential), and per address for requests
    with none; the next ones get ``429`` with ``Retry-After``. The count is kept by each worker process
    (``limits``' moving window in memory): with N workers a client may send up to N times as many."""

    EXEMPT = frozenset({"/healthz", "/readyz"})

    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app = app
        self.item = RateLimitItemPerMinute(per_minute)
        self.window = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        credential = request.headers.get("x-api-key") or request.headers.get("authorization")
        if credential:
            who = "key:" + hashlib.sha256(credential.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        else:
            who = "address:" + (request.client.host if request.client else "?")
        if not self.window.hit(self.item, who):
            reset = self.window.get_window_stats(self.item, who).reset_time
            wait = max(1, math.ceil(reset - time.time()))
            error = RateLimitedError(
                f"more than {self.item.amount} requests a minute (TWIN_RATE_LIMIT_PER_MINUTE): try again in {wait} s",
                retry_after=wait,
            )
            await problem_response(request, error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def content_security_policy(connect_to: list[str]) -> str:
    """The pages' policy; ``connect_to`` adds origins the planner must reach (the OIDC token endpoint's)."""
    if not connect_to:
        return CONTENT_SECURITY_POLICY
    origins = " ".join(dict.fromkeys(connect_to))
    return CONTENT_SECURITY_POLICY.replace("connect-src 'self'", f"connect-src 'self' {origins}")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class SecurityHeaders:
    """``nosniff`` on every answer; the CSP and frame-ancestors on HTML pages."""

    def __init__(self, app: ASGIApp, policy: str = CONTENT_SECURITY_POLICY) -> None:
        self.app = app
        self.policy = policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.policy))
                    headers.append((b"x-frame-options", b"DENY"))
                    headers.append((b"referrer-policy", b"same-origin"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
