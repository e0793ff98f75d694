"""The layer store: one implementation of the store contract over either backend.

Every public method is one transaction. Writes keep history (see
``layers.store.tables``), so any layer can be read as of a past time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection, Engine

from layers.access import EVERYTHING, ROLE_PATTERN, Action, AreaMask, Scope
from layers.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    QueryTimeoutError,
    UnauthorizedError,
    UnavailableError,
)
from layers.features import MAX_DISTANCE_M, Condition, Feature, FeatureInput, FeaturePage, FeatureQuery, Near
from layers.geodesy import search_window
from layers.model import LayerDefinition, LayerKind, LayerPatch
from layers.registry import LayerRegistry
from layers.signal import SharedCounter
from layers.store import changes, principals
from layers.store.backend import WRITE_OPTION, SpatialBackend
from layers.store.changes import DataVersions
from layers.store.extents import ExtentCache, LayerExtent, data_version, measure_extent
from layers.store.paging import MatchCounts, read_page
from layers.store.statements import (
    count_select,
    feature_select,
    features_from_rows,
    geojson_select,
    history_select,
    selected_names,
    where_clauses,
)
from layers.store.tables import LayerTables, UTCDateTime
from layers.store.writer_queue import OPEN_WAIT_S, WriteLimits, WriterQueue
from layers.validation import RowBatch, batch_from_features
from layers.vectortiles import TileSpec, VectorTile

log = logging.getLogger(__name__)

_NEAREST_START_M = 250.0


class LoadMode(StrEnum):
    APPEND = "append"
    REPLACE = "replace"


@dataclass(frozen=True)
class LoadResult:
    layer_id: str
    inserted: int
    archived: int
    created: bool


def backend_for(url: str) -> SpatialBackend:
    """Pick the backend from the URL scheme."""
    from layers.store.postgis import PostGISBackend
    from layers.store.spatialite import SpatiaLiteBackend

    if url.startswith("sqlite"):
        return SpatiaLiteBackend()
    if url.startswith("postgres"):
        return PostGISBackend()
    raise UnavailableError("the database URL must start with sqlite:/// or postgresql://")


class LayerStore:
    """Layers and their features in one database."""

    def __init__(
        self,
        engine: Engine,
        backend: SpatialBackend,
        writes: SharedCounter | None = None,
        write_limits: WriteLimits | None = None,
        read_timeout_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.read_timeout_s = read_timeout_s
        self.backend = backend
        self.registry = LayerRegistry(backend)
        self.writes = writes
        # SQLite has one writer at a time, so its writers take turns; PostgreSQL's write side by side.
        self.writer_queue = WriterQueue(engine, write_limits or WriteLimits()) if backend.name == "spatialite" else None
        self.extents = ExtentCache()
        self.match_counts = MatchCounts()

    @classmethod
    def open(
        cls,
        url: str,
        writes: SharedCounter | None = None,
        write_limits: WriteLimits | None = None,
        read_timeout_s: float | None = None,
    ) -> LayerStore:
        """Connect, and create the catalog and spatial metadata if the database is new.

        ``writes`` is a counter shared with the other processes using this
        store on this machine; every committed write moves it (see ``layers.signal``).
        ``write_limits``: how long and how many writers wait where they take turns (SQLite).
        ``read_timeout_s``: the longest one read statement may run (a streaming read: between two
        batches) before the database stops it and the read raises ``QueryTimeoutError``; None: no limit.
        """
        backend = backend_for(url)
        engine = backend.create_engine(url, read_timeout_s)
        store = cls(engine, backend, writes, write_limits, read_timeout_s)
        try:
            with store._write(wait_s=OPEN_WAIT_S) as conn:
                backend.initialize(conn)
        except sa.exc.OperationalError as exc:
            store.close()
            raise UnavailableError(f"cannot open the {backend.name} database: {_reason(exc)}") from exc
        return store

    def close(self) -> None:
        self.engine.dispose()
        if self.writes is not None:
            self.writes.close()

    @property
    def scope(self) -> Scope:
        """Who reads through the store itself: the system, which sees everything (``ScopedReader``: one principal)."""
        return EVERYTHING

    def write_generation(self) -> int | None:
        """The shared write counter, or None when this store has none (then only the database knows)."""
        return None if self.writes is None else self.writes.read()

    @contextmanager
    def _read(self, *, streaming: bool = False) -> Iterator[Connection]:
        """A read. Where the backend allows (``SpatialBackend.AUTOCOMMIT_READS``), without BEGIN and
        COMMIT, two round trips; a streaming read keeps its transaction (a server-side cursor needs one)."""
        conn = self.engine.connect()
        if self.backend.AUTOCOMMIT_READS and not streaming:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            with conn, conn.begin():
                yield conn
        except sa.exc.DBAPIError as exc:
            if self.backend.is_cancelled(exc):
                raise QueryTimeoutError(
                    f"the query ran longer than the {self.read_timeout_s:g} s a read may take "
                    "(TWIN_STATEMENT_TIMEOUT_S): ask for less, with a smaller bbox, a narrower filter or a lower limit"
                ) from None
            if isinstance(exc, sa.exc.DataError):  # a value the database cannot take, e.g. out of its range
                raise InvalidInputError(f"the database refused a value of the request: {_reason(exc)}") from None
            raise

    @contextmanager
    def _write(self, wait_s: float | None = None) -> Iterator[Connection]:
        turn = nullcontext({WRITE_OPTION: True}) if self.writer_queue is None else self.writer_queue.turn(wait_s)
        with turn as options, self.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn
        if self.writes is not None:  # after the commit: readers who see the new count see the new data
            self.writes.bump()

    def ping(self) -> int:
        """Check the database answers; return the catalog version."""
        with self._read() as conn:
            return self.registry.version(conn)

    # --- catalog -------------------------------------------------------------

    def list_layers(self, scope: Scope = EVERYTHING) -> list[LayerDefinition]:
        """The layers ``scope`` may read, each as it sees it (``Scope.view``)."""
        with self._read() as conn:
            layers = self.registry.definitions(conn)
        return [scope.view(layer) for layer in layers if scope.may(layer, Action.READ)]

    def get_layer(self, layer_id: str, *, catalog: int | None = None, scope: Scope = EVERYTHING) -> LayerDefinition:
        """The layer's definition as the catalog holds it now, as ``scope`` sees it (or its refusal).
        A caller that knows the catalog's current version passes it as ``catalog``: when the
        definitions of that version are at hand, the database is not read."""
        if catalog is not None:
            known = self.registry.known(layer_id, catalog)
            if known is not None:
                return scope.readable(known)
        with self._read() as conn:
            return scope.readable(self.registry.tables(conn, layer_id).definition)

    def _seen(
        self, conn: Connection, layer: str | LayerDefinition, scope: Scope
    ) -> tuple[LayerTables, AreaMask | None]:
        """The layer's tables as ``scope`` reads them (its definition without the fields it may not
        see) and the area its reads are narrowed to; the refusal if it may not read the layer.
        ``layer`` is an id, or a definition this store handed out in the same request."""
        tables = (
            self.registry.tables_of(conn, layer)
            if isinstance(layer, LayerDefinition)
            else self.registry.tables(conn, layer)
        )
        if scope is EVERYTHING:
            return tables, None
        visible = scope.readable(tables.definition)
        if visible is not tables.definition:
            tables = replace(tables, definition=visible)
        return tables, scope.mask_for(visible, Action.READ)

    def _scoped(
        self, conn: Connection, layer_id: str, query: FeatureQuery, scope: Scope
    ) -> tuple[LayerTables, FeatureQuery]:
        tables, mask = self._seen(conn, layer_id, scope)
        return tables, query if mask is None else replace(query, mask=mask)

    def create_layer(self, layer: LayerDefinition, scope: Scope = EVERYTHING) -> LayerDefinition:
        with self._refusals_audited(scope, "layer.create", layer.id):
            _require_admin(scope, f"create layer '{layer.id}'")
        with self._write() as conn:
            created = self.registry.create(conn, layer).definition
            changes.record_change(conn, layer.id, None)
            self._audit(conn, scope, "layer.create", layer_id=layer.id)
            return created

    def alter_layer(self, layer_id: str, patch: LayerPatch, scope: Scope = EVERYTHING) -> LayerDefinition:
        """Change a layer: its administrators may; who may read and write it (``access``) only ``admin`` changes."""
        with self._refusals_audited(scope, "layer.alter", layer_id), self._write() as conn:
            if patch.access is not None:
                _require_admin(scope, f"change who may use layer '{layer_id}'")
            scope.require(self.registry.tables(conn, layer_id).definition, Action.ADMIN)
            altered = self.registry.alter(conn, layer_id, patch).definition
            changes.record_change(conn, layer_id, None)
            change = patch.model_dump(mode="json", exclude_defaults=True)
            self._audit(conn, scope, "layer.alter", layer_id=layer_id, detail=principals.detail(**change))
            return altered

    def drop_layer(self, layer_id: str, scope: Scope = EVERYTHING) -> None:
        with self._refusals_audited(scope, "layer.drop", layer_id), self._write() as conn:
            scope.require(self.registry.tables(conn, layer_id).definition, Action.ADMIN)
            self.registry.drop(conn, layer_id)
            changes.record_change(conn, layer_id, None)
            self._audit(conn, scope, "layer.drop", layer_id=layer_id)

    # --- reads ---------------------------------------------------------------

    def query(self, layer_id: str, query: FeatureQuery = FeatureQuery(), scope: Scope = EVERYTHING) -> list[Feature]:
        with self._read() as conn:
            tables, query = self._scoped(conn, layer_id, query, scope)
            rows = conn.execute(feature_select(self.backend, tables, query)).all()
            return features_from_rows(rows, selected_names(tables.definition, query))

    def query_geojson(
        self, layer_id: str, query: FeatureQuery, scope: Scope = EVERYTHING
    ) -> list[tuple[int, str]] | None:
        """(id, GeoJSON Feature text) for a page, encoded by the database; None where it cannot."""
        with self._read() as conn:
            tables, query = self._scoped(conn, layer_id, query, scope)
            stmt = geojson_select(self.backend, tables, query)
            if stmt is None:
                return None
            return [(row[0], row[1]) for row in conn.execute(stmt)]

    def page(
        self,
        layer_id: str,
        make_query: Callable[[LayerDefinition], FeatureQuery],
        *,
        geojson: bool = False,
        count_cap: int | None = None,
        scope: Scope = EVERYTHING,
    ) -> FeaturePage:
        """One keyset page (see ``read_page``) and the definition it was read with, in one transaction.

        ``make_query`` builds the query from the layer's definition as of this
        transaction, so parameters are checked against exactly the fields read.
        """
        with self._read() as conn:
            tables, mask = self._seen(conn, layer_id, scope)
            query = make_query(tables.definition)
            if mask is not None:
                query = replace(query, mask=mask)
            cached = (
                None if count_cap is None or query.after_id is not None else MatchCounts.key(layer_id, query, count_cap)
            )
            if cached is None:
                return read_page(conn, self.backend, tables, query, geojson=geojson, count_cap=count_cap)
            version = data_version(conn, layer_id)  # read first: a write committed meanwhile moves it past the count
            known = self.match_counts.get(cached, version)
            page = read_page(conn, self.backend, tables, query, geojson=geojson, count_cap=count_cap, known_count=known)
            if known is None:
                self.match_counts.put(cached, version, page.matched)
            return page

    def iter_batches(
        self,
        layer_id: str,
        query: FeatureQuery = FeatureQuery(),
        batch_size: int = 10_000,
        scope: Scope = EVERYTHING,
    ) -> Iterator[list[Feature]]:
        """Stream a large result in batches from one statement (one consistent snapshot)."""
        with self._read(streaming=True) as conn:
            tables, query = self._scoped(conn, layer_id, query, scope)
            names = selected_names(tables.definition, query)
            result = conn.execution_options(yield_per=batch_size).execute(feature_select(self.backend, tables, query))
            for rows in result.partitions():
                yield features_from_rows(rows, names)
                self.backend.renew_read_timeout(conn)

    def count(self, layer_id: str, query: FeatureQuery = FeatureQuery(), scope: Scope = EVERYTHING) -> int:
        with self._read() as conn:
            tables, query = self._scoped(conn, layer_id, query, scope)
            return int(conn.execute(count_select(self.backend, tables, query)).scalar_one())

    def count_by(
        self, layer_id: str, field: str, query: FeatureQuery = FeatureQuery(), scope: Scope = EVERYTHING
    ) -> dict[Any, int]:
        """How many matching features hold each value of ``field`` (None for no value): one GROUP BY."""
        with self._read() as conn:
            tables, query = self._scoped(conn, layer_id, query, scope)
            found = tables.definition.field(field)
            if found is None:
                raise InvalidInputError(f"layer '{layer_id}' has no field '{field}'", layer=layer_id, field=field)
            column = tables.current.c[found.name]
            stmt = (
                sa.select(column, sa.func.count()).where(*where_clauses(self.backend, tables, query)).group_by(column)
            )
            return {value: int(n) for value, n in conn.execute(stmt)}

    def count_up_to(self, layer_id: str, query: FeatureQuery, cap: int, scope: Scope = EVERYTHING) -> int | None:
        """The exact count if it is at most ``cap``, else None: a count that stays cheap on big layers."""
        with self._read() as conn:
            tables, query = self._scoped(conn, layer_id, query, scope)
            found = int(conn.execute(count_select(self.backend, tables, query, cap)).scalar_one())
        return found if found <= cap else None

    def extent(self, layer_id: str, scope: Scope = EVERYTHING) -> LayerExtent:
        """Where and when the layer's features are: a bounding box and the span of its time field.
        For a scope narrowed to an area, the box is cut to the area's bounds.

        Measured once per data version (see ``layers.store.extents``): the version is read first, so
        a write committed meanwhile is in the extent or moves the version past it."""
        with self._read() as conn:
            _, mask = self._seen(conn, layer_id, scope)
            version = data_version(conn, layer_id)
            found = self.extents.get(layer_id, version)
            if found is None:
                found = measure_extent(conn, self.backend, self.registry.tables(conn, layer_id))
                self.extents.put(layer_id, version, found)
        if mask is not None:
            return replace(found, bbox=_cut(found.bbox, mask.bounds))
        return found

    def spatial_extent(self, layer_id: str, scope: Scope = EVERYTHING) -> tuple[float, float, float, float] | None:
        """The layer's (west, south, east, north), cheaply (an index or statistics estimate), cut to the
        scope's area."""
        with self._read() as conn:
            tables, mask = self._seen(conn, layer_id, scope)
            box = self.backend.spatial_extent(conn, tables.current)
        return box if mask is None else _cut(box, mask.bounds)

    def vector_tile(
        self,
        layer: str | LayerDefinition,
        spec: TileSpec,
        properties: Sequence[str] | None = None,
        where: Sequence[Condition] = (),
        scope: Scope = EVERYTHING,
    ) -> VectorTile:
        """The layer's features in one Web Mercator tile, encoded as one MVT layer named after it.

        ``layer`` is its id, or the definition ``get_layer`` gave earlier in the same
        request (the catalog is then not read a second time). ``where`` narrows the
        features (the reader's access rules, a client's filter); more than
        ``layers.vectortiles.MAX_FEATURES`` features, or an encoding over
        ``MAX_BYTES``, give counts per grid cell instead.
        """
        with self._read() as conn:
            tables, mask = self._seen(conn, layer, scope)
            query = FeatureQuery(where=where, properties=properties, mask=mask)
            names = selected_names(tables.definition, query)
            filters = where_clauses(self.backend, tables, query)
            return self.backend.vector_tile(conn, tables, spec, names, filters)

    def data_versions(self, layer_ids: Sequence[str]) -> DataVersions:
        """Where the catalog and some layers' data stand now: what a cache compares its entries with."""
        with self._read() as conn:
            return changes.read_versions(conn, self.registry.version(conn), layer_ids)

    def all_data_versions(self) -> DataVersions:
        """The catalog version and every layer's data version, in one read."""
        with self._read() as conn:
            return changes.read_versions(conn, self.registry.version(conn), None)

    def changes_since(self, layer_id: str, version: int) -> list[changes.Box | None] | None:
        """The boxes written to a layer after ``version``; None when no longer kept (see ``changes.changes_since``)."""
        with self._read() as conn:
            return changes.changes_since(conn, layer_id, version)

    def get_feature(self, layer_id: str, fid: int, as_of: datetime | None = None, scope: Scope = EVERYTHING) -> Feature:
        """One feature (as of a past time); outside the scope's area it is not found, as if it did not exist."""
        with self._read() as conn:
            tables, query = self._scoped(conn, layer_id, FeatureQuery(as_of=as_of), scope)
            stmt = feature_select(self.backend, tables, query, extra=[lambda t: t.c.fid == fid])
            rows = conn.execute(stmt).all()
            if not rows:
                when = f" as of {as_of.isoformat()}" if as_of else ""
                raise NotFoundError(f"layer '{layer_id}' has no feature {fid}{when}", layer=layer_id, feature=fid)
            return features_from_rows(rows, selected_names(tables.definition, query))[0]

    def history(self, layer_id: str, fid: int, scope: Scope = EVERYTHING) -> list[Feature]:
        """Every version of one feature, oldest first; the last is current unless it was deleted.
        A scope narrowed to an area reads the versions whose geometry meets it."""
        with self._read() as conn:
            tables, mask = self._seen(conn, layer_id, scope)
            names = [f.name for f in tables.definition.fields]
            rows = conn.execute(history_select(self.backend, tables, fid, mask)).all()
        if not rows:
            raise NotFoundError(f"layer '{layer_id}' has no feature {fid}", layer=layer_id, feature=fid)
        return features_from_rows(rows, names)

    def within_distance(
        self,
        layer_id: str,
        lon: float,
        lat: float,
        metres: float,
        where: Sequence[Condition] = (),
        limit: int | None = None,
        scope: Scope = EVERYTHING,
    ) -> list[Feature]:
        """Features within ``metres`` of a point, nearest first, each with ``distance_m``.

        With a ``limit``, this is the nearest-k search bounded by ``metres``: only
        about ``limit`` features get an exact distance, however many lie in range.
        """
        if limit is not None:
            return self.nearest(layer_id, lon, lat, limit, where=where, max_metres=metres, scope=scope)
        query = FeatureQuery(near=Near(lon, lat, metres), where=where, order_by_distance=True)
        return self.query(layer_id, query, scope)

    def containing(self, layer_id: str, lon: float, lat: float, scope: Scope = EVERYTHING) -> list[Feature]:
        """Features whose geometry covers the point: the ward of an address, the parcel under a click."""
        return self.query(layer_id, FeatureQuery(contains=(lon, lat)), scope)

    def nearest(
        self,
        layer_id: str,
        lon: float,
        lat: float,
        k: int,
        where: Sequence[Condition] = (),
        max_metres: float | None = None,
        scope: Scope = EVERYTHING,
    ) -> list[Feature]:
        """The ``k`` features nearest to a point on the ellipsoid, nearest first.

        An index finds ``k`` candidates cheaply (planar KNN, or a growing search
        window); the largest of their true distances bounds the answer, and one
        exact distance query within that bound returns the true nearest ``k``.
        """
        limit = Near(lon, lat, MAX_DISTANCE_M if max_metres is None else max_metres)  # validates the arguments
        if k <= 0:
            return []
        with self._read() as conn:
            tables, mask = self._seen(conn, layer_id, scope)
            bound = self._nearest_bound(conn, tables, lon, lat, k, FeatureQuery(where=where, mask=mask))
            if bound is None:
                return []
            near = Near(lon, lat, min(bound * (1 + 1e-9) + 1e-6, limit.metres))
            query = FeatureQuery(near=near, where=where, order_by_distance=True, limit=k, mask=mask)
            rows = conn.execute(feature_select(self.backend, tables, query)).all()
            return features_from_rows(rows, selected_names(tables.definition, query))

    def _nearest_bound(
        self, conn: Connection, tables: LayerTables, lon: float, lat: float, k: int, candidates_of: FeatureQuery
    ) -> float | None:
        table = tables.current
        probe = Near(lon, lat, 0)
        distance = self.backend.distance_metres(table.c.geom, probe)
        base = feature_select(self.backend, tables, candidates_of).with_only_columns(table.c.fid)
        order = self.backend.planar_nearest(table, lon, lat)
        if order is not None:
            candidates = base.order_by(None).order_by(order).limit(k).subquery()
        else:
            candidates = self._window_candidates(conn, table, base, lon, lat, k)
        nearest = (
            sa.select(distance.label("d"))
            .where(table.c.fid.in_(sa.select(candidates.c.fid)))
            .order_by(sa.literal_column("d"))
            .limit(k)
            .subquery()
        )
        return conn.execute(sa.select(sa.func.max(nearest.c.d))).scalar_one_or_none()

    def _window_candidates(
        self,
        conn: Connection,
        table: sa.Table,
        base: sa.Select[Any],
        lon: float,
        lat: float,
        k: int,
    ) -> sa.Subquery:
        """Grow a search window until it holds ``k`` features (for backends with no KNN operator)."""
        radius = _NEAREST_START_M
        while radius < 2e7:
            boxes = [self.backend.box_prefilter(table, b) for b in search_window(lon, lat, radius).parts()]
            windowed = base.where(sa.or_(*boxes)).order_by(None)
            found = conn.execute(sa.select(sa.func.count()).select_from(windowed.limit(k).subquery())).scalar_one()
            if found >= k:
                return windowed.subquery()
            radius *= 4
        return base.order_by(None).subquery()

    # --- principals: keys, areas, the audit trail ---------------------------

    def area_mask(self, areas: Sequence[str]) -> tuple[tuple[str, ...], AreaMask]:
        """The polygons of some administrative areas as one mask, and each area's name.

        An area is a feature of an ``admin_area`` layer named by its id, its ``code``, its label
        field or its ``name`` (in any case). An area that matches none is refused, naming it."""
        if not areas:
            raise InvalidInputError("an area scope needs at least one area")
        found: dict[str, tuple[str, BaseGeometry]] = {}
        with self._read() as conn:
            layers = [d for d in self.registry.definitions(conn) if d.kind is LayerKind.ADMIN_AREA]
        candidates = [(layer, feature) for layer in layers for feature in self.query(layer.id)]
        for area in areas:
            match = next((c for c in candidates if _names_area(c[0], c[1], area)), None)
            if match is None:
                where = ", ".join(layer.id for layer in layers) or "no admin_area layer exists"
                raise InvalidInputError(f"no administrative area is named {area!r} (looked in: {where})", area=area)
            layer, feature = match
            found[area] = (_area_name(layer, feature), feature.geometry)
        names = tuple(dict.fromkeys(name for name, _ in found.values()))
        return names, AreaMask.of(shapely.union_all([geometry for _, geometry in found.values()]))

    def add_key(
        self,
        name: str,
        roles: Sequence[str],
        areas: Sequence[str] = (),
        expires_at: datetime | None = None,
        scope: Scope = EVERYTHING,
    ) -> tuple[principals.ApiKey, str]:
        """A new key and its secret (shown once; the store keeps its hash). Its areas must exist."""
        _require_admin(scope, "make keys")
        roles = _checked_roles(roles)
        if "ward_officer" in roles and not areas:
            raise InvalidInputError("a ward_officer key needs at least one area (--area)")
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidInputError(f"the expiry {expires_at.isoformat()} is not in the future")
        names = self.area_mask(areas)[0] if areas else ()
        with self._write() as conn:
            key, secret = principals.add_key(conn, name, roles, names, expires_at)
            detail = principals.detail(roles=list(roles), areas=list(names), expires_at=expires_at)
            self._audit(conn, scope, "key.add", detail=f"{name}: {detail}")
        return key, secret

    def list_keys(self, scope: Scope = EVERYTHING) -> list[principals.ApiKey]:
        _require_admin(scope, "list keys")
        with self._read() as conn:
            return principals.list_keys(conn)

    def revoke_key(self, name: str, scope: Scope = EVERYTHING) -> principals.ApiKey:
        _require_admin(scope, "revoke keys")
        with self._write() as conn:
            key = principals.revoke_key(conn, name)
            self._audit(conn, scope, "key.revoke", detail=name)
        return key

    def find_key(self, secret: str) -> principals.ApiKey | None:
        """The key whose secret this is, in whatever state; None for a secret no key has."""
        with self._read() as conn:
            return principals.find_key(conn, secret)

    def audit(self, query: principals.AuditQuery, scope: Scope = EVERYTHING) -> list[principals.AuditEntry]:
        _require_admin(scope, "read the audit trail")
        with self._read() as conn:
            return principals.read_audit(conn, query)

    def record_refusal(self, scope: Scope, action: str, detail: str, layer_id: str | None = None) -> None:
        """Note a refused sign-in or action in the audit trail, in a transaction of its own."""
        try:
            with self._write() as conn:
                self._audit(conn, scope, action, outcome="refused", layer_id=layer_id, detail=detail)
        except (UnavailableError, sa.exc.OperationalError) as exc:  # a busy store must not turn a 401 into a 503
            log.warning("could not audit a refused %s by %s: %s", action, scope.principal, exc)

    def _audit(self, conn: Connection, scope: Scope, action: str, **values: Any) -> None:
        principals.record(
            conn,
            [
                principals.AuditEntry(
                    principal=scope.principal, action=action, request_id=scope.request_id, client=scope.client, **values
                )
            ],
        )

    @contextmanager
    def _refusals_audited(self, scope: Scope, action: str, layer_id: str, fid: int | None = None) -> Iterator[None]:
        """A write the scope is refused is noted in the audit trail (the write's own transaction is gone)."""
        try:
            yield
        except (ForbiddenError, UnauthorizedError, NotFoundError) as exc:
            if scope is not EVERYTHING:
                what = f"{action} {layer_id}" + (f"/{fid}" if fid is not None else "")
                self.record_refusal(scope, action, f"{what}: {exc.detail}", layer_id)
            raise

    # --- writes --------------------------------------------------------------

    def insert_features(self, layer_id: str, features: Sequence[FeatureInput], scope: Scope = EVERYTHING) -> list[int]:
        """Insert validated features in one transaction; return their new ids in order. A scope
        narrowed to an area adds features that meet it, and sets only the fields it sees."""
        if not features:
            return []
        with self._refusals_audited(scope, "feature.create", layer_id), self._write() as conn:
            tables = self._writable(conn, layer_id, scope, [f.properties for f in features])
            scope.check_written(tables.definition, [f.geometry for f in features])
            batch = batch_from_features(
                tables.definition, [f.geometry for f in features], [f.properties for f in features]
            )
            fids = self._insert(conn, tables, batch, datetime.now(UTC))
            changes.record_change(conn, layer_id, changes.bounds(batch.geometries))
            principals.record(
                conn,
                [
                    principals.AuditEntry(
                        scope.principal,
                        "feature.create",
                        layer_id=layer_id,
                        feature_id=fid,
                        version_after=1,
                        request_id=scope.request_id,
                        client=scope.client,
                    )
                    for fid in fids
                ],
            )
            return fids

    def _insert(self, conn: Connection, tables: LayerTables, batch: RowBatch, now: datetime) -> list[int]:
        table = tables.current
        stmt = (
            sa.insert(table)
            .values(geom=self.backend.geom_from_wkb(sa.bindparam("geom_wkb", type_=sa.LargeBinary)))
            .returning(table.c.fid, sort_by_parameter_order=True)
        )
        wkb = shapely.to_wkb(batch.geometries, output_dimension=2)
        params = [
            {"geom_wkb": w, "_valid_from": now, **{n: batch.columns[n][i] for n in batch.columns}}
            for i, w in enumerate(wkb)
        ]
        return list(conn.execute(stmt, params).scalars())

    def update_feature(
        self,
        layer_id: str,
        fid: int,
        *,
        geometry: BaseGeometry | None = None,
        properties: Mapping[str, Any] | None = None,
        replace: bool = False,
        expected_version: int | None = None,
        scope: Scope = EVERYTHING,
    ) -> Feature:
        """Change one feature; the old version moves to history.

        ``replace`` sets every property (missing ones become null); otherwise
        the given properties are merged into the current ones. With
        ``expected_version``, a feature changed since it was read is refused.
        """
        with self._refusals_audited(scope, "feature.update", layer_id, fid), self._write() as conn:
            tables = self._writable(conn, layer_id, scope, [properties or {}])
            old = self._locked_feature(conn, tables, layer_id, fid, expected_version, scope)
            if geometry is not None:
                scope.check_written(tables.definition, [geometry])
            kept = {n: old.properties[n] for n in scope.hidden_fields(tables.definition)}  # not the scope's to clear
            merged = {**kept, **(properties or {})} if replace else {**old.properties, **(properties or {})}
            batch = batch_from_features(tables.definition, [geometry or old.geometry], [merged])
            now = _after(old.valid_from)
            self._archive(conn, tables, tables.current.c.fid == fid, now)
            table = tables.current
            conn.execute(
                sa.update(table)
                .where(table.c.fid == fid)
                .values(
                    geom=self.backend.geom_from_wkb(shapely.to_wkb(batch.geometries[0], output_dimension=2)),
                    _version=table.c._version + 1,
                    _valid_from=now,
                    **{n: v[0] for n, v in batch.columns.items()},
                )
            )
            changes.record_change(conn, layer_id, changes.bounds([old.geometry, batch.geometries[0]]))
            self._audit(
                conn,
                scope,
                "feature.replace" if replace else "feature.update",
                layer_id=layer_id,
                feature_id=fid,
                version_before=old.version,
                version_after=old.version + 1,
            )
            values = {n: v[0] for n, v in batch.columns.items()}
            return Feature(fid, batch.geometries[0], values, old.version + 1, now)

    def delete_feature(
        self, layer_id: str, fid: int, expected_version: int | None = None, scope: Scope = EVERYTHING
    ) -> None:
        """Delete one feature; its last version stays readable in history."""
        with self._refusals_audited(scope, "feature.delete", layer_id, fid), self._write() as conn:
            tables = self._writable(conn, layer_id, scope, [])
            old = self._locked_feature(conn, tables, layer_id, fid, expected_version, scope)
            self._archive(conn, tables, tables.current.c.fid == fid, _after(old.valid_from))
            conn.execute(sa.delete(tables.current).where(tables.current.c.fid == fid))
            changes.record_change(conn, layer_id, changes.bounds([old.geometry]))
            self._audit(conn, scope, "feature.delete", layer_id=layer_id, feature_id=fid, version_before=old.version)

    def _writable(
        self, conn: Connection, layer_id: str, scope: Scope, properties: Sequence[Mapping[str, Any] | None]
    ) -> LayerTables:
        """The layer's tables, if ``scope`` may change its features with these properties: a field the
        scope may not read is unknown to it, for writing too (named as any unknown field would be)."""
        tables = self.registry.tables(conn, layer_id)
        scope.require(tables.definition, Action.WRITE)
        hidden = scope.hidden_fields(tables.definition)
        if hidden:
            for number, values in enumerate(properties, start=1):
                fields = {name: tables.definition.field(name) for name in values or {}}
                unknown = sorted(name for name, found in fields.items() if found is not None and found.name in hidden)
                if unknown:
                    raise InvalidInputError(
                        f"feature {number}: unknown propert{'y' if len(unknown) == 1 else 'ies'} "
                        f"{', '.join(map(repr, unknown))} for layer '{layer_id}'",
                        layer=layer_id,
                    )
        return tables

    def _locked_feature(
        self,
        conn: Connection,
        tables: LayerTables,
        layer_id: str,
        fid: int,
        expected_version: int | None,
        scope: Scope = EVERYTHING,
    ) -> Feature:
        """The feature to change, locked; one outside the scope's area is not found (404, not 403:
        its existence is not told)."""
        query = FeatureQuery(mask=scope.mask_for(tables.definition, Action.WRITE))
        stmt = feature_select(self.backend, tables, query, extra=[lambda t: t.c.fid == fid])
        rows = conn.execute(stmt.with_for_update(of=tables.current)).all()
        if not rows:
            raise NotFoundError(f"layer '{layer_id}' has no feature {fid}", layer=layer_id, feature=fid)
        feature = features_from_rows(rows, [f.name for f in tables.definition.fields])[0]
        if expected_version is not None and feature.version != expected_version:
            raise PreconditionFailedError(
                f"feature {fid} of layer '{layer_id}' is at version {feature.version}, not {expected_version}: "
                "it changed since it was read",
                layer=layer_id,
                feature=fid,
            )
        return feature

    def _archive(self, conn: Connection, tables: LayerTables, where: sa.ColumnElement[bool], now: datetime) -> None:
        """Copy the matching current rows to history, closing their interval at ``now``."""
        c, h = tables.current, tables.history
        names = ["fid", "geom", *tables.field_names, "_version", "_valid_from"]
        source = sa.select(*(c.c[n] for n in names), sa.literal(now, UTCDateTime()).label("_valid_to")).where(where)
        conn.execute(sa.insert(h).from_select([*names, "_valid_to"], source))

    # --- bulk load -----------------------------------------------------------

    def load(
        self,
        layer_id: str,
        batches: Iterable[RowBatch],
        *,
        mode: LoadMode = LoadMode.APPEND,
        definition: LayerDefinition | None = None,
        progress: Callable[[int], None] | None = None,
        scope: Scope = EVERYTHING,
    ) -> LoadResult:
        """Load many features as one transaction: all of them land, or none.

        With a ``definition``, a missing layer is created in the same
        transaction; an existing layer must have that definition, unless the
        mode is ``replace``, which then redefines it (and drops its history).
        ``batches`` is consumed inside the transaction, so a validation error
        in its last row still leaves the store exactly as it was. Rows are
        stored in the order given; ``RowBatch.in_spatial_order`` makes that the
        order of the map.
        """
        with self._refusals_audited(scope, "layer.import", layer_id), self._write() as conn:
            tables, created = self._load_target(conn, layer_id, mode, definition, scope)
            now = datetime.now(UTC)
            archived = 0
            if mode is LoadMode.REPLACE and not created:
                self._archive(conn, tables, sa.true(), now)
                archived = conn.execute(sa.delete(tables.current)).rowcount
            empty = conn.execute(sa.select(tables.current.c.fid).limit(1)).first() is None
            if empty:
                self.backend.begin_bulk_load(conn, tables)
            inserted = 0
            touched: changes.Box | None = None
            with self.backend.bulk_writer(conn, tables, now) as write:
                for batch in batches:
                    scope.check_written(tables.definition, list(batch.geometries))
                    inserted += write(batch)
                    touched = changes.union([touched, changes.bounds(batch.geometries)])
                    if progress is not None:
                        progress(len(batch))
            if empty:
                self.backend.end_bulk_load(conn, tables)
            self.backend.analyze(conn, tables.current)
            anywhere = created or archived > 0
            if inserted or anywhere:
                changes.record_change(conn, layer_id, None if anywhere else touched)
            detail = principals.detail(mode=mode.value, inserted=inserted, archived=archived, created=created)
            self._audit(conn, scope, "layer.import", layer_id=layer_id, detail=detail)
        log.info("loaded %d features into %s (%d archived)", inserted, layer_id, archived)
        return LoadResult(layer_id, inserted, archived, created)

    def _load_target(
        self, conn: Connection, layer_id: str, mode: LoadMode, definition: LayerDefinition | None, scope: Scope
    ) -> tuple[LayerTables, bool]:
        """The layer a load goes into: an existing one its administrators load, a new one only ``admin`` creates."""
        existing = {d.id: d for d in self.registry.definitions(conn)}.get(layer_id)
        if existing is not None:
            scope.require(existing, Action.ADMIN)
        if definition is None or existing == definition:
            return self.registry.tables(conn, layer_id), False
        if existing is None:
            _require_admin(scope, f"create layer '{layer_id}'")
            return self.registry.create(conn, definition), True
        if mode is not LoadMode.REPLACE:
            raise ConflictError(
                f"layer '{layer_id}' exists with a different definition; load in replace mode to redefine it",
                layer=layer_id,
            )
        self.registry.drop(conn, layer_id)
        return self.registry.create(conn, definition), True


def _names_area(layer: LayerDefinition, feature: Feature, area: str) -> bool:
    """Whether ``area`` names this feature of an admin_area layer: its id, code, label or name."""
    if area.isdigit() and int(area) == feature.id:
        return True
    wanted = area.casefold().strip()
    for name in ("code", layer.style.label_field, "name"):
        found = layer.field(name) if name else None
        value = feature.properties.get(found.name) if found else None
        if isinstance(value, str) and value.casefold().strip() == wanted:
            return True
    return False


def _area_name(layer: LayerDefinition, feature: Feature) -> str:
    for name in (layer.style.label_field, "name", "code"):
        found = layer.field(name) if name else None
        value = feature.properties.get(found.name) if found else None
        if isinstance(value, str) and value:
            return value
    return str(feature.id)


def _checked_roles(roles: Sequence[str]) -> tuple[str, ...]:
    if not roles:
        raise InvalidInputError("a key needs at least one role (--role)")
    bad = [r for r in roles if not re.fullmatch(ROLE_PATTERN, r)]
    if bad:
        raise InvalidInputError(f"{bad[0][:60]!r} is not a role name (lowercase letters, digits and _)")
    return tuple(dict.fromkeys(roles))


def _require_admin(scope: Scope, what: str) -> None:
    if not scope.is_admin:
        raise ForbiddenError(f"only the admin role may {what}; {scope.principal} has {', '.join(sorted(scope.roles))}")


def _cut(
    box: tuple[float, float, float, float] | None, bounds: tuple[float, float, float, float]
) -> tuple[float, float, float, float] | None:
    """The part of ``box`` inside ``bounds``; None when they do not meet (or there is no box)."""
    if box is None:
        return None
    west, south = max(box[0], bounds[0]), max(box[1], bounds[1])
    east, north = min(box[2], bounds[2]), min(box[3], bounds[3])
    return (west, south, east, north) if west <= east and south <= north else None


def _after(previous: datetime) -> datetime:
    """Now, but strictly after ``previous``, so no version has an empty interval."""
    now = datetime.now(UTC)
    return now if now > previous else previous + timedelta(microseconds=1)


def _reason(exc: sa.exc.DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
