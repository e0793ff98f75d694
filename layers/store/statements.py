"""SELECT statements for a ``FeatureQuery``, written once for both backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from layers.errors import InvalidInputError
from layers.features import Condition, Feature, FeatureQuery, Op
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
    """One statement answering ``query``; as-of queries read current and history tables."""
    names = _property_names(tables.definition, query.properties)
    if query.as_of is None:
        source = tables.current
        columns = _columns(backend, source, names, query, valid_to=NO_END)
        stmt = sa.select(*columns).where(*_filters(backend, tables, source, query, extra))
    else:
        current = tables.current
        history = tables.history
        as_of = sa.literal(query.as_of, UTCDateTime())
        live = sa.select(*_columns(backend, current, names, query, valid_to=NO_END)).where(
            current.c._valid_from <= as_of, *_filters(backend, tables, current, query, extra)
        )
        past = sa.select(*_columns(backend, history, names, query, valid_to=history.c._valid_to)).where(
            history.c._valid_from <= as_of,
            history.c._valid_to > as_of,
            *_filters(backend, tables, history, query, extra),
        )
        union = sa.union_all(live, past).subquery("versions")
        stmt = sa.select(*union.c)
    selected = stmt.selected_columns
    if query.after_id is not None:
        stmt = stmt.where(selected.fid > query.after_id)
    order = (selected.distance_m, selected.fid) if query.order_by_distance else (selected.fid,)
    stmt = stmt.order_by(*order)
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    return stmt


def geojson_select(backend: SpatialBackend, tables: LayerTables, query: FeatureQuery) -> sa.Select[Any] | None:
    """(fid, GeoJSON Feature text) rows made by the database, or None where the backend cannot.

    Only for current features in fid order (the OGC items page); the caller falls
    back to ``feature_select`` and Python encoding otherwise.
    """
    if query.as_of is not None or query.order_by_distance:
        return None
    table = tables.current
    names = _property_names(tables.definition, query.properties)
    feature = backend.feature_geojson(table, names)
    if feature is None:
        return None
    stmt = sa.select(table.c.fid, feature.label("feature")).where(*_filters(backend, tables, table, query, ()))
    if query.after_id is not None:
        stmt = stmt.where(table.c.fid > query.after_id)
    stmt = stmt.order_by(table.c.fid)
    return stmt.limit(query.limit) if query.limit is not None else stmt


def history_select(backend: SpatialBackend, tables: LayerTables, fid: int) -> sa.Select[Any]:
    """Every version of one feature, oldest first: its past rows and, unless deleted, its current one."""
    names = [f.name for f in tables.definition.fields]
    past_table, live_table = tables.history, tables.current
    past = sa.select(*_columns(backend, past_table, names, FeatureQuery(), valid_to=past_table.c._valid_to))
    live = sa.select(*_columns(backend, live_table, names, FeatureQuery(), valid_to=NO_END))
    union = sa.union_all(past.where(past_table.c.fid == fid), live.where(live_table.c.fid == fid)).subquery()
    return sa.select(*union.c).order_by(union.c._version)


def count_select(
    backend: SpatialBackend, tables: LayerTables, query: FeatureQuery, cap: int | None = None
) -> sa.Select[Any]:
    """COUNT of the matching rows; with ``cap``, the database stops after ``cap + 1`` of them."""
    inner = feature_select(backend, tables, replace(query, limit=None, order_by_distance=False)).order_by(None)
    if cap is not None:
        inner = inner.limit(cap + 1)
    return sa.select(sa.func.count()).select_from(inner.subquery())


def _property_names(layer: LayerDefinition, wanted: Sequence[str] | None) -> list[str]:
    declared = [f.name for f in layer.fields]
    if wanted is None:
        return declared
    unknown = [n for n in wanted if n not in declared]
    if unknown:
        raise InvalidInputError(
            f"unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))} "
            f"for layer '{layer.id}'",
            layer=layer.id,
        )
    return [n for n in declared if n in wanted]


def _columns(
    backend: SpatialBackend, table: sa.Table, names: list[str], query: FeatureQuery, valid_to: Any
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
    return filters


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
    return _property_names(layer, query.properties)


def where_clauses(backend: SpatialBackend, tables: LayerTables, query: FeatureQuery) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``query`` on the current table, for statements built elsewhere (tiles)."""
    return _filters(backend, tables, tables.current, query, ())
