"""CQL2 filters (their standard JSON form) as SQLAlchemy expressions, for either backend.

The tree comes from a parser (the ``cql2`` library in the OGC layer), already
bounded in size by ``layers.filter_limits``. Here every property is checked
against the layer's declared fields, and every literal becomes a typed bound
parameter, so nothing in a filter reaches SQL as text. Values (properties,
literals, CASEI/ACCENTI, arithmetic) are compiled by ``layers.store.scalars``;
either side of a comparison may be a property, as CQL2's property-property
class allows. Geometry literals are bound as WKB, behind the spatial index;
a BBOX with west > east crosses the antimeridian. Temporal functions are
built by ``layers.store.temporal``; S_DWITHIN reuses the store's ellipsoidal
distance search (``SpatialBackend.within_distance``), so it measures metres
exactly as "what is within 500 m" does. Comparisons with NULL are unknown,
as in SQL, which is what the standard's test suite counts.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any

import shapely
import sqlalchemy as sa
from shapely.geometry import Point
from sqlalchemy.sql.elements import ColumnElement

from layers.errors import InvalidInputError
from layers.features import Near
from layers.model import FieldType, LayerDefinition
from layers.store.backend import SpatialBackend
from layers.store.scalars import BOOLEAN, GEOMETRY, NULL, NUMBER, TEMPORAL, TEXT, Value, ValueCompiler, show
from layers.store.temporal import DEFINITIONS, Endpoint, Interval, open_end, parse_instant, temporal_predicate
from layers.store.temporal import Column as TemporalColumn
from layers.store.temporal import compare as temporal_compare

_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "<>": "<>"}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_within": "ST_Within",
    "s_contains": "ST_Contains",
    "s_disjoint": "ST_Disjoint",
    "s_touches": "ST_Touches",
    "s_crosses": "ST_Crosses",
    "s_overlaps": "ST_Overlaps",
    "s_equals": "ST_Equals",
}
#: The same predicate with its operands swapped.
_CONVERSE = {"s_within": "s_contains", "s_contains": "s_within"}
_METRES = {"meters", "metres", "meter", "metre", "m"}
#: Kinds that compare with each other.
_COMPARABLE = {NUMBER: {NUMBER}, TEXT: {TEXT}, BOOLEAN: {BOOLEAN}, TEMPORAL: {TEMPORAL}}
_ARRAY_FUNCTIONS = {"a_equals", "a_contains", "a_containedby", "a_overlaps"}


class FilterCompiler:
    """Turns one CQL2 JSON tree into a WHERE clause on one layer table."""

    def __init__(self, backend: SpatialBackend, layer: LayerDefinition, table: sa.Table) -> None:
        self.backend = backend
        self.layer = layer
        self.table = table
        self.values = ValueCompiler(backend, layer, table)

    def compile(self, node: Any) -> ColumnElement[bool]:
        if isinstance(node, bool):
            return sa.true() if node else sa.false()
        if isinstance(node, dict) and set(node) == {"property"}:
            value = self.values.property(node["property"])  # a boolean property is a predicate by itself
            if value.kind != BOOLEAN:
                raise InvalidInputError(f"filter: the property {show(node['property'])} is not true or false")
            assert value.sql is not None
            return value.sql == sa.true()
        if not isinstance(node, dict) or "op" not in node:
            raise InvalidInputError(f"filter: expected a predicate, got {show(node)}")
        op, args = str(node["op"]).lower(), node.get("args", [])
        if not isinstance(args, list):
            raise InvalidInputError(f"filter: the arguments of {show(node['op'])} are not a list")
        if op in ("and", "or"):
            if not args:
                raise InvalidInputError(f"filter: {op.upper()} needs operands")
            parts = [self.compile(a) for a in args]
            return sa.and_(*parts) if op == "and" else sa.or_(*parts)
        if op == "not":
            return sa.not_(self.compile(_one(args, op)))
        if op in _COMPARISONS:
            return self._comparison(op, args)
        if op == "like":
            return self._like(args)
        if op == "between":
            return self._between(args)
        if op == "in":
            return self._in(args)
        if op == "isnull":
            value = self.values.value(_one(args, op))
            if value.is_constant:
                return sa.true() if value.constant is None else sa.false()
            assert value.sql is not None
            return value.sql.is_(None)
        if op in _SPATIAL:
            return self._spatial(op, args)
        if op in DEFINITIONS:
            if len(args) != 2:
                raise InvalidInputError(f"filter: {op.upper()} needs two operands")
            return temporal_predicate(op, self._interval(args[0], op), self._interval(args[1], op))
        if op == "s_dwithin":
            return self._dwithin(args)
        if op in _ARRAY_FUNCTIONS:
            raise InvalidInputError(
                f"filter: {op.upper()} is not supported: it compares arrays, and Twin's layers have no array properties"
            )
        raise InvalidInputError(f"filter: {show(node['op'])} is not a predicate Twin knows")

    # --- comparisons ---------------------------------------------------------------------------

    def _comparison(self, op: str, args: list[Any]) -> ColumnElement[bool]:
        if len(args) != 2:
            raise InvalidInputError(f"filter: {op} needs two operands")
        left, right = (self.values.value(a) for a in args)
        if left.is_constant and not right.is_constant:
            left, right, op = right, left, _FLIPPED[op]
        _check_comparable(left, right, op)
        if left.kind == NULL or right.kind == NULL:
            return sa.cast(sa.null(), sa.Boolean)  # unknown, whatever the other side
        if _is_date_against_instant(left, right):
            assert left.sql is not None and left.field is not None
            column = TemporalColumn(left.field, left.sql)
            if op == "<>":
                return sa.not_(temporal_compare(column, "=", right.constant))
            return temporal_compare(column, op, right.constant)
        return _COMPARISONS[op](self.values.sql(left), self.values.sql(right, like=left))  # type: ignore[no-any-return]

    def _like(self, args: list[Any]) -> ColumnElement[bool]:
        if len(args) != 2:
            raise InvalidInputError("filter: LIKE needs a value and a pattern")
        value, pattern = (self.values.value(a) for a in args)
        for side in (value, pattern):
            if side.kind not in (TEXT, NULL):
                raise InvalidInputError(f"filter: LIKE compares text, not a {side.kind} value")
        return self.values.sql(value).like(self.values.sql(pattern), escape="\\")

    def _between(self, args: list[Any]) -> ColumnElement[bool]:
        if len(args) != 3:
            raise InvalidInputError("filter: BETWEEN needs a value and two bounds")
        value, low, high = (self.values.value(a) for a in args)
        for bound in (low, high):
            _check_comparable(value, bound, "BETWEEN")
        like = value if not value.is_constant else None
        return self.values.sql(value).between(self.values.sql(low, like=like), self.values.sql(high, like=like))

    def _in(self, args: list[Any]) -> ColumnElement[bool]:
        if len(args) != 2 or not isinstance(args[1], list) or not args[1]:
            raise InvalidInputError("filter: IN needs a value and a non-empty list of values")
        value = self.values.value(args[0])
        items = [self.values.value(item) for item in args[1]]
        for item in items:
            _check_comparable(value, item, "IN")
        like = value if not value.is_constant else None
        if all(item.is_constant and item.constant is not None for item in items) and like is not None:
            assert like.field is not None and value.sql is not None
            return value.sql.in_([self.values.coerced(like.field, item.constant) for item in items])
        left = self.values.sql(value)
        return sa.or_(*(left == self.values.sql(item, like=like) for item in items))

    # --- spatial -------------------------------------------------------------------------------

    def _spatial(self, op: str, args: list[Any]) -> ColumnElement[bool]:
        if len(args) != 2:
            raise InvalidInputError(f"filter: {op.upper()} needs two geometries")
        left, right = (self.values.value(a) for a in args)
        for side in (left, right):
            if side.kind != GEOMETRY:
                raise InvalidInputError(f"filter: {op.upper()} compares geometries, not a {side.kind} value")
        if left.is_constant and right.is_constant:
            holds = getattr(shapely, op.removeprefix("s_"))(left.constant, right.constant)
            return sa.true() if holds else sa.false()
        if left.is_constant:
            left, right, op = right, left, _CONVERSE.get(op, op)
        function = getattr(sa.func, _SPATIAL[op])
        if not right.is_constant:  # the geometry with itself
            return function(self.table.c.geom, self.table.c.geom, type_=sa.Boolean) == sa.true()
        literal = shapely.to_wkb(right.constant, output_dimension=2)
        other = self.backend.geom_from_wkb(sa.bindparam(None, literal, type_=sa.LargeBinary))
        test = function(self.table.c.geom, other, type_=sa.Boolean) == sa.true()
        if op == "s_disjoint":
            return test
        return sa.and_(self._index_window(right.constant), test)

    def _index_window(self, geometry: shapely.Geometry) -> ColumnElement[bool]:
        """The spatial index's candidates for a predicate that needs the boxes to meet: one box a part
        when the literal has few parts (the two halves of an antimeridian BBOX), else its bounds."""
        parts = shapely.get_parts(geometry)
        boxes = [tuple(p.bounds) for p in parts] if 1 < len(parts) <= 4 else [tuple(geometry.bounds)]
        windows = [self.backend.box_prefilter(self.table, b) for b in boxes]  # type: ignore[arg-type]
        return windows[0] if len(windows) == 1 else sa.or_(*windows)

    def _dwithin(self, args: list[Any]) -> ColumnElement[bool]:
        """S_DWITHIN(geometry, point, metres[, units]): on the ellipsoid, by the store's own distance search."""
        if len(args) not in (3, 4):
            raise InvalidInputError("filter: S_DWITHIN needs the geometry property, a point and a distance")
        left, right = (self.values.value(a) for a in args[:2])
        if left.is_constant:
            left, right = right, left
        if left.kind != GEOMETRY or left.is_constant or right.kind != GEOMETRY or not right.is_constant:
            raise InvalidInputError("filter: S_DWITHIN measures from the feature's geometry to a point literal")
        if len(args) == 4:
            units = args[3]["property"] if isinstance(args[3], dict) and "property" in args[3] else args[3]
            if str(units).lower() not in _METRES:
                raise InvalidInputError(f"filter: S_DWITHIN takes distances in metres, not {show(units)}")
        distance = args[2]
        if isinstance(distance, bool) or not isinstance(distance, int | float):
            raise InvalidInputError(f"filter: S_DWITHIN needs a distance in metres, got {show(distance)}")
        points = shapely.get_parts(right.constant)
        if not all(isinstance(p, Point) for p in points) or len(points) == 0:
            raise InvalidInputError("filter: S_DWITHIN measures from a point or a multipoint only")
        try:
            near = [Near(p.x, p.y, float(distance)) for p in points]
        except InvalidInputError as exc:
            raise InvalidInputError(f"filter: S_DWITHIN: {exc.detail}") from None
        clauses = [self.backend.within_distance(self.table, n) for n in near]
        return clauses[0] if len(clauses) == 1 else sa.or_(*clauses)

    # --- temporal ------------------------------------------------------------------------------

    def _interval(self, node: Any, op: str) -> Interval:
        """A temporal operand as (start, end): an INTERVAL, or an instant that starts and ends at once."""
        if isinstance(node, dict) and set(node) == {"interval"}:
            ends = node["interval"]
            if not isinstance(ends, list) or len(ends) != 2:
                raise InvalidInputError(f"filter: an INTERVAL has a start and an end, got {show(node)}")
            start, end = self._endpoint(ends[0], op, -1), self._endpoint(ends[1], op, 1)
            if isinstance(start, datetime) and isinstance(end, datetime) and start > end:
                raise InvalidInputError(f"filter: {show(node)} ends before it starts")
            return start, end
        instant = self._endpoint(node, op, None)
        return instant, instant

    def _endpoint(self, node: Any, op: str, unbounded: int | None) -> Endpoint:
        if isinstance(node, dict) and set(node) == {"property"}:
            value = self.values.property(node["property"])
            field = value.field
            if field is None or field.type not in (FieldType.DATE, FieldType.DATETIME):
                what = f"'{field.name}' is {field.type.value}" if field is not None else f"{show(node)} is not one"
                raise InvalidInputError(f"filter: {op.upper()} compares dates and times; {what}")
            assert value.sql is not None
            return TemporalColumn(field, value.sql)
        if open_end(node):
            if unbounded is None:
                raise InvalidInputError(f"filter: '..' is only an open end of an INTERVAL, in {op.upper()}")
            return unbounded
        return parse_instant(node)


def _check_comparable(left: Value, right: Value, op: str) -> None:
    if NULL in (left.kind, right.kind):
        return
    if right.kind not in _COMPARABLE.get(left.kind, set()):
        raise InvalidInputError(f"filter: {op} cannot compare {_described(left)} with {_described(right)}")


def _described(value: Value) -> str:
    """A comparison's operand as its error message names it: field 'power_w' (number), 'lots' (text)."""
    if value.field is not None:
        return f"field '{value.field.name}' ({value.kind})"
    if value.is_constant:
        return f"{show(value.constant)} ({value.kind})"
    return f"a {value.kind} expression"


def _is_date_against_instant(left: Value, right: Value) -> bool:
    """A DATE property against a timestamp: the date is 00:00 UTC of its day (``layers.store.temporal``)."""
    return (
        left.field is not None
        and left.field.type is FieldType.DATE
        and right.is_constant
        and isinstance(right.constant, datetime)
        and not isinstance(right.constant, bool)
    )


def _one(args: list[Any], op: str) -> Any:
    if len(args) != 1:
        raise InvalidInputError(f"filter: {op.upper()} takes one operand")
    return args[0]
