"""The layer registry: the catalog in the database is the source of truth.

Every worker process keeps a cache of layer definitions and their SQLAlchemy
tables, tagged with the catalog version it was read at. Each lookup first reads
that one-integer version in the caller's own transaction; when another process
has created, altered or dropped a layer, the numbers differ and the cache is
rebuilt. A lookup therefore never acts on a stale definition, at the price of
one primary-key read per request.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from layers.errors import ConflictError, InvalidInputError, NotFoundError
from layers.model import LayerDefinition, LayerPatch
from layers.store.backend import SpatialBackend
from layers.store.tables import CatalogVersion, LayerRecord, LayerTables, build_layer_tables

_records = LayerRecord.__table__  # type: ignore[attr-defined]
_version = CatalogVersion.__table__  # type: ignore[attr-defined]
#: Read on every request: built once (building the select costs more than running it).
_VERSION_QUERY = sa.select(_version.c.version).where(_version.c.id == 1)


class LayerRegistry:
    """Layer definitions by id, kept in step with the catalog across processes."""

    def __init__(self, backend: SpatialBackend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._seen_version: int | None = None
        self._tables: dict[str, LayerTables] = {}

    # --- reads ---------------------------------------------------------------

    def tables(self, conn: Connection, layer_id: str) -> LayerTables:
        """The tables of a layer as the catalog describes it now."""
        found = self._current(conn).get(layer_id)
        if found is None:
            raise NotFoundError(f"layer '{layer_id}' does not exist", layer=layer_id)
        return found

    def tables_of(self, conn: Connection, layer: LayerDefinition) -> LayerTables:
        """The tables of a definition this registry handed out: without reading the catalog again while
        it is still the one cached (the caller read the catalog when it looked the layer up, in the
        same request), else as ``tables`` finds them."""
        with self._lock:
            found = self._tables.get(layer.id)
        if found is not None and found.definition is layer:
            return found
        return self.tables(conn, layer.id)

    def known(self, layer_id: str, version: int) -> LayerDefinition | None:
        """The layer's definition in catalog ``version``, if that is the version at hand (None otherwise,
        or if the layer is not in it)."""
        with self._lock:
            found = self._tables.get(layer_id) if self._seen_version == version else None
        return None if found is None else found.definition

    def definitions(self, conn: Connection) -> list[LayerDefinition]:
        return [t.definition for t in sorted(self._current(conn).values(), key=lambda t: t.definition.id)]

    def version(self, conn: Connection) -> int:
        return conn.execute(_VERSION_QUERY).scalar_one_or_none() or 0

    def _current(self, conn: Connection) -> dict[str, LayerTables]:
        version = self.version(conn)
        with self._lock:
            if version != self._seen_version:
                rows = conn.execute(sa.select(_records.c.definition)).scalars()
                self._tables = {d.id: build_layer_tables(d) for d in (LayerDefinition.model_validate(r) for r in rows)}
                self._seen_version = version
            return self._tables

    # --- changes (inside the caller's write transaction) ---------------------

    def create(self, conn: Connection, layer: LayerDefinition) -> LayerTables:
        if layer.id in self._current(conn):
            raise ConflictError(f"layer '{layer.id}' already exists", layer=layer.id)
        tables = build_layer_tables(layer)
        now = datetime.now(UTC)
        conn.execute(
            sa.insert(_records).values(
                id=layer.id, definition=layer.model_dump(mode="json"), created_at=now, updated_at=now
            )
        )
        self._backend.create_tables(conn, tables)
        self._bump(conn)
        return tables

    def alter(self, conn: Connection, layer_id: str, patch: LayerPatch) -> LayerTables:
        old = self.tables(conn, layer_id)
        try:
            new_definition = patch.apply(old.definition)
        except ValueError as exc:
            raise InvalidInputError(f"cannot alter layer '{layer_id}': {_first_error(exc)}", layer=layer_id) from exc
        new = build_layer_tables(new_definition)
        for table, new_table in ((old.current, new.current), (old.history, new.history)):
            for name in patch.drop_fields:
                self._backend.alter_drop_column(conn, table, name)
            for old_name, new_name in patch.rename_fields.items():
                self._backend.alter_rename_column(conn, table, old_name, new_name)
            for added in patch.add_fields:
                self._backend.alter_add_column(conn, table, new_table.c[added.name])
        conn.execute(
            sa.update(_records)
            .where(_records.c.id == layer_id)
            .values(definition=new_definition.model_dump(mode="json"), updated_at=datetime.now(UTC))
        )
        self._bump(conn)
        return new

    def drop(self, conn: Connection, layer_id: str) -> None:
        tables = self.tables(conn, layer_id)
        self._backend.drop_tables(conn, tables)
        conn.execute(sa.delete(_records).where(_records.c.id == layer_id))
        self._bump(conn)

    def _bump(self, conn: Connection) -> None:
        updated = conn.execute(sa.update(_version).where(_version.c.id == 1).values(version=_version.c.version + 1))
        if updated.rowcount == 0:
            conn.execute(sa.insert(_version).values(id=1, version=1))


def _first_error(exc: ValueError) -> str:
    """pydantic wraps validator messages; show the person only the message itself."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return str(first.get("ctx", {}).get("error", first.get("msg")))
    return str(exc)
