"""One flat error hierarchy for the domain.

The web layer (``twin.problems``) maps each class to an HTTP status and an RFC 9457
problem document; the CLI prints the message. The messages are written for the
person who made the request, so they name the layer, field or row at fault and
never carry SQL or file-system internals.
"""

from __future__ import annotations


class TwinError(Exception):
    """Base of every error the domain raises on purpose."""

    title = "Twin error"

    def __init__(self, detail: str, **context: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = {k: v for k, v in context.items() if v is not None}


class NotFoundError(TwinError):
    """A layer, feature or version does not exist."""

    title = "Not found"


class InvalidInputError(TwinError):
    """The request or file is malformed: a bad value, field, geometry or CRS."""

    title = "Invalid input"


class PayloadTooLargeError(InvalidInputError):
    """A request body larger than the endpoint takes."""

    title = "Payload too large"


class ConflictError(TwinError):
    """The request contradicts the current state, e.g. a layer id already taken."""

    title = "Conflict"


class PreconditionFailedError(TwinError):
    """An optimistic-locking check failed: the feature changed since it was read."""

    title = "Precondition failed"


class UnauthorizedError(TwinError):
    """No valid credential, where one is needed: a missing, unknown, expired or revoked key, a bad token."""

    title = "Unauthorized"


class ForbiddenError(TwinError):
    """The principal may not do this."""

    title = "Forbidden"


class RateLimitedError(TwinError):
    """More requests than the rate limit allows; the context's ``retry_after`` says when to try again."""

    title = "Too many requests"


class UnavailableError(TwinError):
    """A collaborator the request needs (the database) does not answer."""

    title = "Service unavailable"


class QueryTimeoutError(UnavailableError):
    """A read ran longer than a read may (``TWIN_STATEMENT_TIMEOUT_S``) and the database stopped it."""

    title = "Query took too long"
