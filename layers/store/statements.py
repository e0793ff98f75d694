"""SELECT statements for a ``FeatureQuery``, written once for both backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from layers.access import AreaMask
from layers.errors import InvalidInputError
from layers.features import Condition, Feature, FeatureQuery, Op, SortKey
from layers.model import FieldType, LayerDefinition
from layers.store.backend import SpatialBackend
from layers.store.filters import FilterCompiler
from layers.store.tables import LayerTables, UTCDateTime
from layers.validation import coerce_value

#: The end of a current version's interval: typed, so a UNION with history agrees on it.
NO_END = sa.cast(sa.null(), UTCDateTime())

#: Builds an extra WHERE clause for the current or the history table (same columns).
TableClause = Callable[[sa.Table], ColumnElement[bool]]


def feature_select(
    backend: SpatialBackend, tables: LayerTables, query: FeatureQuery, extra: Sequence[TableClause] = ()
) -> sa.Select[Any]:
    """One statement answering ``query``; as-of queries read current and history tables.

    With sort keys, their values follow the selected columns as ``_sort0``,
    ``_sort1``…, so a page's last row gives the next page's keyset even when
    ``properties`` leaves them out.
    """
    names = property_names(tables.definition, query.properties)
    sort_names = sort_field_names(tables.definition, query.sort)
    if query.as_of is None:
        source = tables.current
        columns = feature_columns(backend, source, names, query, valid_to=NO_END, sort_names=sort_names)
        stmt = sa.select(*columns).where(*_filters(backend, tables, source, query, extra))
        keys: list[ColumnElement[Any]] = [source.c[n] for n in sort_names]
        fid: ColumnElement[Any] = source.c.fid
    else:
        current = tables.current
        history = tables.history
        as_of = sa.literal(query.as_of, UTCDateTime())
        live = sa.select(
            *feature_columns(backend, current, names, query, valid_to=NO_END, sort_names=sort_names)
        ).where(current.c._valid_from <= as_of, *_filters(backend, tables, current, query, extra))
        past = sa.select(
            *feature_columns(backend, history, names, query, valid_to=history.c._valid_to, sort_names=sort_names)
        ).where(
            history.c._valid_from <= as_of,
            history.c._valid_to > as_of,
            *_filters(backend, tables, history, query, extra),
        )
        union = sa.union_all(live, past).subquery("versions")
        stmt = sa.select(*union.c)
        keys = [union.c[f"_sort{i}"] for i in range(len(sort_names))]
        fid = union.c.fid
    if query.order_by_distance:
        if query.after_id is not None:
            stmt = stmt.where(fid > query.after_id)
        return _limited(stmt.order_by(stmt.selected_columns.distance_m, fid), query.limit)
    return _limited(_keyset_ordered(stmt, keys, fid, query), query.limit)


def geojson_select(backend: SpatialBackend, tables: LayerTables, query: FeatureQuery) -> sa.Select[Any] | None:
    """(fid, GeoJSON Feature text, sort-key values…) rows made by the database, or None where the backend cannot.

    Only for current features in keyset order (the OGC items page); the caller
    falls back to ``feature_select`` and Python encoding otherwise.
    """
    if query.as_of is not None or query.order_by_distance:
        return None
    table = tables.current
    names = property_names(tables.definition, query.properties)
    sort_names = sort_field_names(tables.definition, query.sort)
    feature = backend.feature_geojson(table, names)
    if feature is None:
        return None
    stmt = sa.select(
        table.c.fid, feature.label("feature"), *(table.c[n].label(f"_sort{i}") for i, n in enumerate(sort_names))
    ).where(*_filters(backend, tables, table, query, ()))
    return _limited(_keyset_ordered(stmt, [table.c[n] for n in sort_names], table.c.fid, query), query.limit)


def _keyset_ordered(
    stmt: sa.Select[Any], keys: Sequence[ColumnElement[Any]], fid: ColumnElement[Any], query: FeatureQuery
) -> sa.Select[Any]:
    """Order by the sort keys then the id, and start after the cursor's keyset: no OFFSET, however deep."""
    after = None if query.after_id is None else (query.after_values or (), query.after_id)
    return keyset_ordered(stmt, keys, fid, query.sort, after)


def keyset_ordered(
    stmt: sa.Select[Any],
    keys: Sequence[ColumnElement[Any]],
    fid: ColumnElement[Any],
    sort: Sequence[SortKey],
    after: tuple[Sequence[Any], Any] | None,
) -> sa.Select[Any]:
    if after is not None:
        stmt = stmt.where(keyset_after(keys, sort, after[0], fid, after[1]))
    ordering = [sa.nulls_first(k.desc()) if s.descending else sa.nulls_last(k.asc()) for k, s in zip(keys, sort)]
    return stmt.order_by(*ordering, fid)


def keyset_after(
    keys: Sequence[ColumnElement[Any]],
    sort: Sequence[SortKey],
    values: Sequence[Any],
    fid: ColumnElement[Any],
    after_fid: Any,
) -> ColumnElement[bool]:
    """Rows that come after (values…, after_fid) in the order of ``sort`` then the id.

    Expanded as "k1 beyond v1, or k1 = v1 and k2 beyond v2, …, or all equal and
    fid > after_fid", with NULL ranked above every value (see ``SortKey``), so
    both databases agree on where NULLs go. A value is a Python value (None is
    NULL) or a bind parameter already made for it.
    """
    alternatives: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for key, order, value in zip(keys, sort, values, strict=True):
        bound = _bound(key, value)
        alternatives.append(_all([*equal, _beyond(key, order.descending, bound)]))
        equal.append(key.is_(None) if bound is None else key == bound)
    alternatives.append(_all([*equal, fid > after_fid]))
    return alternatives[0] if len(alternatives) == 1 else sa.or_(*alternatives)


def _bound(key: ColumnElement[Any], value: Any) -> ColumnElement[Any] | None:
    if value is None or isinstance(value, sa.BindParameter):
        return value
    return sa.bindparam(None, value, type_=key.type)  # typed by the column, so booleans compare too


def _beyond(key: ColumnElement[Any], descending: bool, value: ColumnElement[Any] | None) -> ColumnElement[bool]:
    if value is None:  # NULL is the greatest: nothing follows it ascending; every value follows it descending
        return key.is_not(None) if descending else sa.false()
    return key < value if descending else sa.or_(key > value, key.is_(None))


def _all(parts: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    return parts[0] if len(parts) == 1 else sa.and_(*parts)


def _limited(stmt: sa.Select[Any], limit: int | None) -> sa.Select[Any]:
    return stmt.limit(limit) if limit is not None else stmt


def history_select(
    backend: SpatialBackend, tables: LayerTables, fid: int, mask: AreaMask | None = None
) -> sa.Select[Any]:
    """Every version of one feature, oldest first: its past rows and, unless deleted, its current one.
    With a ``mask``, only the versions whose geometry meets it."""
    names = [f.name for f in tables.definition.fields]
    past_table, live_table = tables.history, tables.current
    past = sa.select(*feature_columns(backend, past_table, names, FeatureQuery(), valid_to=past_table.c._valid_to))
    live = sa.select(*feature_columns(backend, live_table, names, FeatureQuery(), valid_to=NO_END))
    past, live = past.where(past_table.c.fid == fid), live.where(live_table.c.fid == fid)
    if mask is not None:
        past = past.where(mask_clause(backend, past_table, mask))
        live = live.where(mask_clause(backend, live_table, mask))
    union = sa.union_all(past, live).subquery()
    return sa.select(*union.c).order_by(union.c._version)


def count_select(
    backend: SpatialBackend, tables: LayerTables, query: FeatureQuery, cap: int | None = None
) -> sa.Select[Any]:
    """COUNT of the matching rows; with ``cap``, the database stops after ``cap + 1`` of them.

    The inner rows select a constant: PostgreSQL computes every output column of
    a LIMITed subquery, and encoding 2,001 geometries only to count them cost
    ten times the count. Sort keys play no part in a count.
    """
    unordered = replace(query, limit=None, order_by_distance=False, sort=(), after_values=None)
    if query.sort:
        unordered = replace(unordered, after_id=None)  # a sorted keyset is not an id range; counts are of all matches
    inner = feature_select(backend, tables, unordered).order_by(None)
    if query.as_of is None:
        inner = inner.with_only_columns(sa.literal_column("1").label("one"), maintain_column_froms=True)
    if cap is not None:
        inner = inner.limit(cap + 1)
    return sa.select(sa.func.count()).select_from(inner.subquery())


def property_names(layer: LayerDefinition, wanted: Sequence[str] | None) -> list[str]:
    declared = [f.name for f in layer.fields]
    if wanted is None:
        return declared
    unknown = [n for n in wanted if layer.field(n) is None]
    if unknown:
        raise InvalidInputError(
            f"unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))} "
            f"for layer '{layer.id}'",
            layer=layer.id,
        )
    chosen = {layer.field(n).name for n in wanted}  # type: ignore[union-attr]
    return [n for n in declared if n in chosen]


def sort_field_names(layer: LayerDefinition, sort: Sequence[SortKey]) -> list[str]:
    unknown = [key.field for key in sort if layer.field(key.field) is None]
    if unknown:
        raise InvalidInputError(
            f"layer '{layer.id}' has no field {', '.join(map(repr, unknown))} to sort on", layer=layer.id
        )
    return [layer.field(key.field).name for key in sort]  # type: ignore[union-attr]


def feature_columns(
    backend: SpatialBackend,
    table: sa.Table,
    names: list[str],
    query: FeatureQuery,
    valid_to: Any,
    sort_names: Sequence[str] = (),
) -> list[Any]:
    distance: Any = sa.cast(sa.null(), sa.Float())
    if query.near is not None:
        distance = sa.type_coerce(backend.distance_metres(table.c.geom, query.near), sa.Float())
    return [
        table.c.fid,
        backend.geom_as_wkb(table.c.geom).label("geom_wkb"),
        *(table.c[n] for n in names),
        table.c._version,
        table.c._valid_from,
        valid_to.label("_valid_to"),
        distance.label("distance_m"),
        *(table.c[n].label(f"_sort{i}") for i, n in enumerate(sort_names)),
    ]


def _filters(
    backend: SpatialBackend,
    tables: LayerTables,
    table: sa.Table,
    query: FeatureQuery,
    extra: Sequence[TableClause],
) -> list[ColumnElement[bool]]:
    layer = tables.definition
    filters: list[ColumnElement[bool]] = []
    if query.bbox is not None:
        filters.append(backend.intersects_bbox(table, query.bbox))
    if query.near is not None:
        filters.append(backend.within_distance(table, query.near))
    if query.contains is not None:
        filters.append(backend.contains_point(table, *query.contains))
    filters.extend(condition_clause(layer, table, c) for c in query.where)
    if query.time is not None:
        filters.extend(_time_clauses(layer, table, query.time.start, query.time.end))
    if query.filter is not None:
        filters.append(FilterCompiler(backend, layer, table).compile(query.filter))
    filters.extend(make(table) for make in extra)
    if query.mask is not None:
        filters.append(mask_clause(backend, table, query.mask))
    return filters


def mask_clause(backend: SpatialBackend, table: sa.Table, mask: AreaMask) -> ColumnElement[bool]:
    """The reader's area: its WKB one bound parameter (one statement shape for every mask)."""
    wkb = sa.bindparam("scope_mask", mask.wkb, type_=sa.LargeBinary, unique=True)
    bounds = tuple(sa.bindparam(f"scope_{k}", v, type_=sa.Float, unique=True) for k, v in zip("wsen", mask.bounds))
    return backend.meets_mask(table, wkb, bounds)  # type: ignore[arg-type]


def condition_clause(layer: LayerDefinition, table: sa.Table, condition: Condition) -> ColumnElement[bool]:
    field = layer.field(condition.field)
    if field is None:
        raise InvalidInputError(
            f"layer '{layer.id}' has no field '{condition.field}'", layer=layer.id, field=condition.field
        )
    column = table.c[field.name]
    op = condition.op
    if op is Op.IS_NULL:
        return column.is_(None)
    if op is Op.NOT_NULL:
        return column.is_not(None)
    if op is Op.IN:
        values = condition.value if isinstance(condition.value, list | tuple | set) else [condition.value]
        return column.in_([coerce_value(field, v) for v in values])
    if op is Op.LIKE:
        if field.type is not FieldType.STRING:
            raise InvalidInputError(f"LIKE needs a text field; '{field.name}' is {field.type.value}", field=field.name)
        return column.like(str(condition.value))
    value = coerce_value(field, condition.value)
    return {
        Op.EQ: column.__eq__,
        Op.NE: column.__ne__,
        Op.LT: column.__lt__,
        Op.LE: column.__le__,
        Op.GT: column.__gt__,
        Op.GE: column.__ge__,
    }[op](value)


def _time_clauses(
    layer: LayerDefinition, table: sa.Table, start: datetime | None, end: datetime | None
) -> list[ColumnElement[bool]]:
    if layer.time_field is None:
        raise InvalidInputError(f"layer '{layer.id}' has no time field to filter on", layer=layer.id)
    field = layer.field(layer.time_field)
    assert field is not None
    begins = table.c[layer.time_field]
    ends = sa.func.coalesce(table.c[layer.end_time_field], begins) if layer.end_time_field else begins
    clauses = []
    if end is not None:
        clauses.append(begins <= coerce_value(field, end))
    if start is not None:
        clauses.append(ends >= coerce_value(field, start))
    return clauses


def features_from_rows(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> list[Feature]:
    """Decode a page of rows; geometries are parsed in one vectorized call.

    Rows are read by position, in the order ``_columns`` selects them: fid, WKB,
    the properties, then version, validity interval and distance.
    """
    geometries = shapely.from_wkb([row[1] for row in rows])
    end = 2 + len(names)
    return [
        Feature(
            id=row[0],
            geometry=geom,
            properties=dict(zip(names, row[2:end], strict=True)),
            version=row[end],
            valid_from=row[end + 1],
            valid_to=row[end + 2],
            distance_m=row[end + 3],
        )
        for row, geom in zip(rows, geometries, strict=True)
    ]


def selected_names(layer: LayerDefinition, query: FeatureQuery) -> list[str]:
    return property_names(layer, query.properties)


def where_clauses(backend: SpatialBackend, tables: LayerTables, query: FeatureQuery) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``query`` on the current table, for statements built elsewhere (tiles)."""
    return _filters(backend, tables, tables.current, query, ())
