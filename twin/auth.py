"""Who is asking: the credential of a request resolved to a ``Scope``, once per request.

A request carries an API key (``X-API-Key: …`` or ``Authorization: Bearer …``), an OIDC token
(``Authorization: Bearer <JWT>``), or nothing (the ``public`` role). Keys are Twin's own
(``twin keys add``, stored hashed) or, for setups made before keys had roles, one of
``TWIN_API_KEYS`` (admin). A token's signature is checked against the provider's JWKS
(``TWIN_OIDC_JWKS_URL``), with its issuer, audience and expiry; its roles and areas come from
the claims the settings name. A credential that does not check out is a 401, noted in the audit
trail — never a silent fall back to ``public``.

A worker trusts what it resolved for ``TWIN_AUTH_CACHE_S`` seconds (5): a revoked key stops
working on every worker within that time, and a page of 100 tile requests costs one lookup.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from layers.access import PUBLIC, Role, Scope
from layers.errors import ForbiddenError, InvalidInputError, NotFoundError, UnauthorizedError, UnavailableError
from layers.store import LayerStore
from layers.store.principals import ApiKey
from layers.store.scoped import ScopedReader
from twin.logconfig import request_id_var
from twin.settings import TwinSettings

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
#: Signature algorithms a token may use: asymmetric only (a shared secret would let Twin mint tokens).
TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"]
#: A credential longer than this is refused before it is hashed or parsed.
MAX_CREDENTIAL_CHARS = 8_192

_api_key = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="An API key (`twin keys add`, or one of TWIN_API_KEYS)."
)
_bearer = HTTPBearer(auto_error=False, description="An API key, or an OIDC access token (JWT).")


@dataclass(frozen=True)
class _Resolved:
    """What a credential resolved to: a scope, or the refusal to give (the same for TWIN_AUTH_CACHE_S)."""

    scope: Scope | None
    refusal: str | None = None


class Authenticator:
    """Resolves credentials for one app (its settings and its store)."""

    def __init__(self, settings: TwinSettings) -> None:
        self.settings = settings
        self._admin_keys = [k.get_secret_value().encode() for k in settings.api_keys]
        self._jwks = (
            jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=300, timeout=10)
            if settings.oidc_jwks_url
            else None
        )
        self._lookup = functools.lru_cache(maxsize=4096)(self._resolve)

    def scope(self, store: LayerStore, credential: str | None, client: str | None) -> Scope:
        """The scope of a request with this credential (blocking: it may read the store or the JWKS)."""
        request_id = request_id_var.get() or None
        if credential is None:
            return PUBLIC.at(request_id, client)
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise UnauthorizedError(f"the credential is longer than {MAX_CREDENTIAL_CHARS:,} characters")
        ttl = self.settings.auth_cache_s
        bucket = int(time.monotonic() // ttl) if ttl > 0 else time.monotonic_ns()
        resolved = self._lookup(store, credential, client, bucket)
        if resolved.refusal is not None:  # noted in the audit trail once per bucket, not on every retry
            raise UnauthorizedError(resolved.refusal)
        assert resolved.scope is not None
        return resolved.scope.at(request_id, client)

    def _resolve(self, store: LayerStore, credential: str, client: str | None, _bucket: int) -> _Resolved:
        """What a credential is (``client`` is part of the cache key so that a refusal from each address
        is noted with that address)."""
        try:
            if _looks_like_jwt(credential):
                return _Resolved(self._token_scope(store, credential))
            return _Resolved(self._key_scope(store, credential))
        except UnauthorizedError as exc:
            refused = Scope(_who(credential), frozenset({Role.PUBLIC.value}))
            store.record_refusal(refused.at(request_id_var.get() or None, client), "signin", exc.detail)
            return _Resolved(None, exc.detail)

    def _key_scope(self, store: LayerStore, secret: str) -> Scope:
        for number, known in enumerate(self._admin_keys, start=1):
            if secrets.compare_digest(secret.encode("utf-8", "surrogatepass"), known):
                return Scope(f"api-key-{number}", frozenset({Role.ADMIN.value}))
        key = store.find_key(secret)
        if key is None:
            raise UnauthorizedError("the API key is not valid")
        return key_scope(store, key)

    def _token_scope(self, store: LayerStore, token: str) -> Scope:
        settings = self.settings
        if self._jwks is None or not settings.oidc_issuer:
            raise UnauthorizedError("bearer tokens are not accepted here: no OIDC provider is configured")
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=TOKEN_ALGORITHMS,
                audience=settings.oidc_audience,
                issuer=settings.oidc_issuer,
                options={"require": ["exp", "iss", "sub"], "verify_aud": settings.oidc_audience is not None},
                leeway=30,
            )
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("the OIDC provider's keys could not be read: %s", exc)
            raise UnavailableError("the token cannot be checked now: the provider's keys are unreachable") from None
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"the token is not valid: {exc}") from None
        roles = _strings(_claim(claims, settings.oidc_roles_claim))
        areas = _strings(_claim(claims, settings.oidc_areas_claim))
        try:
            names, mask = store.area_mask(areas) if areas else ((), None)
        except InvalidInputError as exc:
            raise UnauthorizedError(f"the token names an area Twin does not know: {exc.detail}") from None
        return Scope(f"oidc:{claims['sub']}", frozenset(roles), names, mask)


def key_scope(store: LayerStore, key: ApiKey) -> Scope:
    """What a key may see: its roles, and the union of its areas as they are in the store now."""
    state = key.state()
    if state != "active":
        raise UnauthorizedError(f"the API key '{key.name}' is {state}")
    mask = store.area_mask(key.areas)[1] if key.areas else None
    return Scope(f"key:{key.name}", frozenset(key.roles), key.areas, mask)


def scope_of_key_named(store: LayerStore, name: str) -> Scope:
    """The scope of the key called ``name`` (``twin export --as NAME``): what its holder would get."""
    key = next((k for k in store.list_keys() if k.name == name), None)
    if key is None:
        raise NotFoundError(f"no key is named '{name}' (twin keys list)", key=name)
    return key_scope(store, key)


def _looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("ey")


def _who(credential: str) -> str:
    """How a refused credential is named in the audit trail: never the credential itself."""
    if _looks_like_jwt(credential):
        try:
            subject = jwt.decode(credential, options={"verify_signature": False}).get("sub")
        except jwt.PyJWTError:
            subject = None
        return f"oidc:{str(subject)[:100]}" if subject else "oidc:?"
    return f"key:{credential[:9]}…" if credential.startswith("twin_") else "key:?"


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, Sequence):
        return [v for v in value if isinstance(v, str) and v]
    return []


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def credential_of(request: Request) -> str | None:
    """The request's credential: ``X-API-Key``, else ``Authorization: Bearer``; None when it has neither."""
    key = request.headers.get(API_KEY_HEADER)
    if key:
        return key
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def authenticator_of(request: Request) -> Authenticator:
    found: Authenticator = request.app.state.authenticator
    return found


async def resolve_scope(request: Request) -> Scope:
    """The scope of a request (one the door already resolved is reused). A credential that does not
    check out raises ``UnauthorizedError``; none at all is the public."""
    state = request.scope.get("state") or {}
    if "twin_scope" in state:
        resolved: Scope = state["twin_scope"]
        return resolved
    credential = credential_of(request)
    client = client_address(request)
    authenticator = authenticator_of(request)
    if credential is None:
        return authenticator.scope(request.app.state.store, None, client)
    return await run_in_threadpool(authenticator.scope, request.app.state.store, credential, client)


async def get_scope(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Scope:
    """The request's scope, resolved once (FastAPI caches a dependency within a request). The two
    security parameters only describe the credentials in the OpenAPI document."""
    return await resolve_scope(request)


async def reader_for(request: Request) -> ScopedReader | None:
    """The store as the request's principal sees it; None before the store is open (the tile front)."""
    store = getattr(request.app.state, "store", None)
    if store is None:
        return None
    return ScopedReader(store, await resolve_scope(request))


async def get_reader(request: Request, scope: Annotated[Scope, Depends(get_scope)]) -> ScopedReader:
    """The store as the request's principal sees it: what every router reads and writes through."""
    return ScopedReader(request.app.state.store, scope)


async def require_signed_in(scope: Annotated[Scope, Depends(get_scope)]) -> Scope:
    """Refuse anonymous requests before their body is read (the write and admin routes)."""
    if not scope.signed_in:
        raise UnauthorizedError("this needs a sign-in: an API key (X-API-Key) or a bearer token")
    return scope


async def require_admin(scope: Annotated[Scope, Depends(require_signed_in)]) -> Scope:
    if not scope.is_admin:
        raise ForbiddenError(f"this needs the admin role; {scope.principal} has {', '.join(sorted(scope.roles))}")
    return scope
