"""HTTP errors as RFC 9457 problem documents, and the request id that ties them to the log.

Every error response is ``application/problem+json``. Domain errors map to
their status by class; a 5xx never shows internal text (SQL, paths, stack
traces) — only a request id, which the log line for the failure also carries.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layers.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionFailedError,
    RateLimitedError,
    TwinError,
    UnauthorizedError,
    UnavailableError,
)
from twin.logconfig import request_id_var

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

STATUS_BY_ERROR: dict[type[TwinError], int] = {  # the first class an error is an instance of decides
    PayloadTooLargeError: 413,
    InvalidInputError: 400,
    UnauthorizedError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    PreconditionFailedError: 412,
    RateLimitedError: 429,
    UnavailableError: 503,
}

#: Seconds a 503 tells the client to wait (``Retry-After``) unless the error says (``retry_after`` in its context).
RETRY_AFTER_S = 5

#: A problem document, described for the OpenAPI document of every route.
PROBLEM_SCHEMA: dict[str, Any] = {
    "description": "An RFC 9457 problem document",
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "request_id": {"type": "string"},
                },
                "required": ["title", "status"],
            }
        }
    },
}


#: A 503 problem: the store is busy or does not answer; ``Retry-After`` says when to try again.
UNAVAILABLE_SCHEMA: dict[str, Any] = {
    **PROBLEM_SCHEMA,
    "description": "The store is busy (another write holds it) or does not answer: try again later",
    "headers": {"Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}},
}


class RequestIdMiddleware:
    """Give each request an id (or keep a safe one the caller sent) and echo it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _SAFE_REQUEST_ID.match(sent) else uuid.uuid4().hex
        request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                name = REQUEST_ID_HEADER.lower().encode()
                if all(key.lower() != name for key, _ in headers):  # problem() may have set it already
                    headers.append((name, request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def problem(
    status: int, title: str, detail: str | None = None, request: Request | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return JSONResponse(
        _printable(jsonable_encoder(body)), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _printable(value: Any) -> Any:
    """The document with any lone surrogate (from a JSON body's "\ud800") written as its escape: the
    answer is encoded as UTF-8, which has no surrogates, and must not fail on the text it quotes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def problem_response(request: Request, exc: TwinError) -> JSONResponse:
    """The problem document a domain error is answered with (its status from ``STATUS_BY_ERROR``)."""
    status = next((s for cls, s in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 500)
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.detail)
    context = dict(exc.context)
    retry_after = context.pop("retry_after", RETRY_AFTER_S)
    response = problem(status, exc.title, exc.detail, request, **context)
    if status == 401:  # RFC 9110: a 401 names the schemes that may succeed
        response.headers["WWW-Authenticate"] = 'Bearer realm="twin", ApiKey realm="twin"'
    if status in (429, 503):  # RFC 9110 / 6585: how long the client should wait before it tries again
        response.headers["Retry-After"] = str(max(1, math.ceil(float(retry_after))))  # type: ignore[arg-type]
    return response


async def _twin_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TwinError)
    return problem_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden"}
    title = titles.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    response = problem(exc.status_code, title, detail, request)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "invalid")}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:3])
    return problem(400, "Invalid input", summary, request, errors=errors)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"request_id": request_id_var.get()},
    )
    return problem(
        500,
        "Internal server error",
        "The server failed to answer this request. Quote the request id when reporting it.",
        request,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(TwinError, _twin_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
