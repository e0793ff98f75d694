"""Items pages built once per query shape, then only re-bound.

Building a SELECT with SQLAlchemy and computing its cache key took longer than
PostgreSQL takes to answer a 100-row keyset page. The common shapes of an items
page — a bbox, equality-style conditions, sort keys, a cursor, a limit, a
capped count — are built once per (layer tables, shape) with named bind
parameters, and each request binds only its values. The cache keys on the
tables object itself, which the registry rebuilds when the catalog changes, so
an altered layer never meets a stale statement. Other queries (CQL2 filters,
time ranges, as-of, distances) are built afresh; SQLAlchemy's compiled cache
still serves them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from layers.errors import InvalidInputError
from layers.features import FeatureQuery, Op
from layers.store.backend import SpatialBackend
from layers.store.statements import NO_END, feature_columns, keyset_ordered, property_names, sort_field_names
from layers.store.tables import LayerTables
from layers.validation import coerce_value

_COMPARISONS = {
    Op.EQ: "__eq__",
    Op.NE: "__ne__",
    Op.LT: "__lt__",
    Op.LE: "__le__",
    Op.GT: "__gt__",
    Op.GE: "__ge__",
}
_NULL_TESTS = {Op.IS_NULL, Op.NOT_NULL}
_CAPACITY = 256


@dataclass(frozen=True)
class PreparedPage:
    statement: sa.Select[Any]
    params: dict[str, Any]
    #: True when rows carry WKB to decode; False when the database wrote GeoJSON text.
    decode: bool


_cache: OrderedDict[tuple[Any, ...], tuple[sa.Select[Any], bool]] = OrderedDict()
_lock = threading.Lock()


def prepared_page(
    backend: SpatialBackend, tables: LayerTables, query: FeatureQuery, *, geojson: bool, count_cap: int | None
) -> PreparedPage | None:
    """The page statement and its values, or None for a shape this cache does not build."""
    if (
        query.filter is not None
        or query.near is not None
        or query.contains is not None
        or query.as_of is not None
        or query.time is not None
        or query.order_by_distance
        or query.limit is None
        or any(c.op not in _COMPARISONS and c.op not in _NULL_TESTS for c in query.where)
    ):
        return None
    layer = tables.definition
    names = property_names(layer, query.properties)
    sort_names = sort_field_names(layer, query.sort)
    params: dict[str, Any] = {"page_limit": query.limit}
    for i, condition in enumerate(query.where):
        field = layer.field(condition.field)
        if field is None:
            raise InvalidInputError(
                f"layer '{layer.id}' has no field '{condition.field}'", layer=layer.id, field=condition.field
            )
        if condition.op not in _NULL_TESTS:
            params[f"where{i}"] = coerce_value(field, condition.value)
    parts = query.bbox.parts() if query.bbox is not None else []
    for j, part in enumerate(parts):
        params.update({f"bbox{j}_{k}": v for k, v in zip("wsen", part, strict=True)})
    after_nulls = None
    if query.after_id is not None:
        values = list(query.after_values or ())
        after_nulls = tuple(v is None for v in values)
        params["after_fid"] = query.after_id
        params.update({f"after{i}": v for i, v in enumerate(values) if v is not None})
    if count_cap is not None:
        params["count_limit"] = count_cap + 1
    if query.mask is not None:
        params["scope_mask"] = query.mask.wkb
        params.update({f"scope_{k}": v for k, v in zip("wsen", query.mask.bounds, strict=True)})
    key = (
        tables.current,
        geojson,
        tuple(names),
        tuple((k.field, k.descending) for k in query.sort),
        after_nulls,
        len(parts),
        tuple((c.field, c.op) for c in query.where),
        count_cap is not None,
        query.mask is not None,
    )
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
    if cached is None:
        statement, decode = _build(backend, tables, query, names, sort_names, geojson, after_nulls, len(parts))
        if count_cap is not None:
            statement = statement.add_columns(_count(backend, tables, query, len(parts)).label("_matched"))
        cached = (statement, decode)
        with _lock:
            _cache[key] = cached
            while len(_cache) > _CAPACITY:
                _cache.popitem(last=False)
    return PreparedPage(cached[0], params, decode=cached[1])


def _where(backend: SpatialBackend, tables: LayerTables, query: FeatureQuery, parts: int) -> list[ColumnElement[bool]]:
    """The bbox and the conditions, each value a named bind parameter (see ``prepared_page``)."""
    table = tables.current
    clauses: list[ColumnElement[bool]] = []
    boxes = []
    for j in range(parts):
        box: Any = tuple(sa.bindparam(f"bbox{j}_{k}", type_=sa.Float) for k in "wsen")
        boxes.append(backend.box_intersects(table, box))
    if boxes:
        clauses.append(boxes[0] if len(boxes) == 1 else sa.or_(*boxes))
    for i, condition in enumerate(query.where):
        column = table.c[condition.field]
        if condition.op is Op.IS_NULL:
            clauses.append(column.is_(None))
        elif condition.op is Op.NOT_NULL:
            clauses.append(column.is_not(None))
        else:
            value = sa.bindparam(f"where{i}", type_=column.type)
            clauses.append(getattr(column, _COMPARISONS[condition.op])(value))
    if query.mask is not None:
        bounds: Any = tuple(sa.bindparam(f"scope_{k}", type_=sa.Float) for k in "wsen")
        clauses.append(backend.meets_mask(table, sa.bindparam("scope_mask", type_=sa.LargeBinary), bounds))
    return clauses


def _build(
    backend: SpatialBackend,
    tables: LayerTables,
    query: FeatureQuery,
    names: list[str],
    sort_names: list[str],
    geojson: bool,
    after_nulls: tuple[bool, ...] | None,
    parts: int,
) -> tuple[sa.Select[Any], bool]:
    """The statement, and whether its rows need decoding (no database-made GeoJSON)."""
    table = tables.current
    keys = [table.c[n] for n in sort_names]
    sort_columns = [table.c[n].label(f"_sort{i}") for i, n in enumerate(sort_names)]
    feature = backend.feature_geojson(table, names) if geojson else None
    if feature is not None:
        stmt = sa.select(table.c.fid, feature.label("feature"), *sort_columns)
    else:
        stmt = sa.select(
            *feature_columns(backend, table, names, FeatureQuery(), valid_to=NO_END, sort_names=sort_names)
        )
    stmt = stmt.where(*_where(backend, tables, query, parts))
    after = None
    if after_nulls is not None:
        values = [None if null else sa.bindparam(f"after{i}", type_=keys[i].type) for i, null in enumerate(after_nulls)]
        after = (values, sa.bindparam("after_fid", type_=sa.BigInteger))
    stmt = keyset_ordered(stmt, keys, table.c.fid, query.sort, after)
    return stmt.limit(sa.bindparam("page_limit", type_=sa.Integer)), feature is None


def _count(backend: SpatialBackend, tables: LayerTables, query: FeatureQuery, parts: int) -> ColumnElement[Any]:
    """COUNT of the matches, stopping after ``count_limit`` rows; a constant per row, so nothing is encoded."""
    inner: sa.Select[Any] = (
        sa.select(sa.literal_column("1").label("one"))
        .select_from(tables.current)
        .where(*_where(backend, tables, query, parts))
        .limit(sa.bindparam("count_limit", type_=sa.Integer))
    )
    return sa.select(sa.func.count()).select_from(inner.subquery()).scalar_subquery()
