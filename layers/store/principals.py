"""API keys and the audit trail, kept in the store's own database (``twin_key``, ``twin_audit``).

A key is shown once, when it is made; the store keeps only its SHA-256 (a key is 256 random
bits, so a fast hash is as safe as a slow one and costs nothing per request) and its first
characters, to tell keys apart in a listing. The audit trail is append-only: rows are added in
the transaction of the change they describe, so a change and its audit row land together.
These functions run inside the caller's transaction.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from layers.errors import ConflictError, InvalidInputError, NotFoundError
from layers.store.tables import UTCDateTime

KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
KEY_PREFIX = "twin_"
#: The characters of a key kept in clear to tell keys apart (the prefix and 6 random ones).
SHOWN_CHARACTERS = len(KEY_PREFIX) + 6

_metadata = sa.MetaData()
keys_table = sa.Table(
    "twin_key",
    _metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("areas", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)
audit_table = sa.Table(
    "twin_audit",
    _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("layer_id", sa.String(64)),
    sa.Column("feature_id", sa.BigInteger),
    sa.Column("version_before", sa.BigInteger),
    sa.Column("version_after", sa.BigInteger),
    sa.Column("request_id", sa.String(64)),
    sa.Column("client", sa.String(64)),
    sa.Column("detail", sa.Text),
)


@dataclass(frozen=True)
class ApiKey:
    """What the store knows of a key: everything but the key."""

    name: str
    prefix: str
    roles: tuple[str, ...]
    areas: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "active"

    def as_json(self) -> dict[str, Any]:
        def instant(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat().replace("+00:00", "Z")

        return {
            "name": self.name,
            "prefix": self.prefix,
            "roles": list(self.roles),
            "areas": list(self.areas),
            "created_at": instant(self.created_at),
            "expires_at": instant(self.expires_at),
            "revoked_at": instant(self.revoked_at),
            "state": self.state(),
        }


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _key(row: Any) -> ApiKey:
    return ApiKey(
        row.name,
        row.prefix,
        tuple(row.roles),
        tuple(row.areas),
        row.created_at,
        row.expires_at,
        row.revoked_at,
    )


def add_key(
    conn: Connection, name: str, roles: Sequence[str], areas: Sequence[str], expires_at: datetime | None
) -> tuple[ApiKey, str]:
    """Make a key; returns it and its secret, which is not kept."""
    if not KEY_NAME.fullmatch(name):
        raise InvalidInputError(
            f"{name[:80]!r} is not a valid key name: a letter or digit, then up to 63 letters, digits and _ . @ -"
        )
    if conn.execute(sa.select(keys_table.c.name).where(keys_table.c.name == name)).first() is not None:
        raise ConflictError(f"a key named '{name}' exists; revoke it or choose another name", key=name)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    conn.execute(
        sa.insert(keys_table).values(
            name=name,
            key_hash=key_hash(secret),
            prefix=secret[:SHOWN_CHARACTERS],
            roles=list(roles),
            areas=list(areas),
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
        )
    )
    return ApiKey(name, secret[:SHOWN_CHARACTERS], tuple(roles), tuple(areas), now, expires_at, None), secret


def list_keys(conn: Connection) -> list[ApiKey]:
    return [_key(row) for row in conn.execute(sa.select(keys_table).order_by(keys_table.c.name))]


def revoke_key(conn: Connection, name: str) -> ApiKey:
    row = conn.execute(sa.select(keys_table).where(keys_table.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"no key is named '{name}'", key=name)
    key = _key(row)
    if key.revoked_at is None:
        now = datetime.now(UTC)
        conn.execute(sa.update(keys_table).where(keys_table.c.name == name).values(revoked_at=now))
        key = ApiKey(key.name, key.prefix, key.roles, key.areas, key.created_at, key.expires_at, now)
    return key


def find_key(conn: Connection, secret: str) -> ApiKey | None:
    """The key whose secret this is (active, expired or revoked), or None."""
    row = conn.execute(sa.select(keys_table).where(keys_table.c.key_hash == key_hash(secret))).first()
    return None if row is None else _key(row)


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit trail."""

    principal: str
    action: str
    outcome: str = "ok"  # ok, refused
    layer_id: str | None = None
    feature_id: int | None = None
    version_before: int | None = None
    version_after: int | None = None
    request_id: str | None = None
    client: str | None = None
    detail: str | None = None
    at: datetime | None = None
    id: int | None = None

    def as_json(self) -> dict[str, Any]:
        document = {k: getattr(self, k) for k in AUDIT_COLUMNS}
        document["at"] = self.at.isoformat().replace("+00:00", "Z") if self.at else None
        return document


AUDIT_COLUMNS = (
    "id",
    "at",
    "principal",
    "action",
    "outcome",
    "layer_id",
    "feature_id",
    "version_before",
    "version_after",
    "request_id",
    "client",
    "detail",
)


def record(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    if not entries:
        return
    now = datetime.now(UTC)
    rows = [
        {
            **{k: getattr(e, k) for k in AUDIT_COLUMNS if k not in ("id", "at")},
            "at": e.at or now,
            "principal": e.principal[:200],
            "detail": None if e.detail is None else e.detail[:2000],
        }
        for e in entries
    ]
    conn.execute(sa.insert(audit_table), rows)


@dataclass(frozen=True)
class AuditQuery:
    principal: str | None = None
    action: str | None = None
    outcome: str | None = None
    layer_id: str | None = None
    feature_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_id: int | None = None  # keyset paging: entries after this one
    limit: int | None = 100


def read_audit(conn: Connection, query: AuditQuery) -> list[AuditEntry]:
    """Entries matching ``query``, oldest first."""
    t = audit_table
    stmt = sa.select(t).order_by(t.c.id)
    for column, value in (
        (t.c.principal, query.principal),
        (t.c.action, query.action),
        (t.c.outcome, query.outcome),
        (t.c.layer_id, query.layer_id),
        (t.c.feature_id, query.feature_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if query.since is not None:
        stmt = stmt.where(t.c.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(t.c.at < query.until)
    if query.after_id is not None:
        stmt = stmt.where(t.c.id > query.after_id)
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    return [AuditEntry(**{k: getattr(row, k) for k in AUDIT_COLUMNS}) for row in conn.execute(stmt)]


def write_audit_csv(entries: Sequence[AuditEntry], out: TextIO) -> None:
    """The entries as CSV, one column per field of the trail (empty for none)."""
    writer = csv.DictWriter(out, fieldnames=list(AUDIT_COLUMNS))
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in e.as_json().items()} for e in entries)


def detail(**values: Any) -> str:
    """A compact JSON detail for an audit row."""
    return json.dumps({k: v for k, v in values.items() if v is not None}, ensure_ascii=False, default=str)
