"""CQL2 filters (their standard JSON form) as SQLAlchemy expressions, for either backend.

The tree comes from a parser (the ``cql2`` library in the OGC layer); here
every property is checked against the layer's declared fields and every
literal becomes a typed bound parameter, so nothing in a filter reaches SQL
as text. Geometry literals are bound as WKB. Temporal functions are built by
``layers.store.temporal``; S_DWITHIN reuses the store's ellipsoidal distance
search (``SpatialBackend.within_distance``), so it measures metres exactly as
"what is within 500 m" does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import shapely
import sqlalchemy as sa
from shapely.geometry import Point, box, shape
from sqlalchemy.sql.elements import ColumnElement

from layers.errors import InvalidInputError
from layers.features import Near
from layers.model import FieldDefinition, FieldType, LayerDefinition
from layers.store.backend import SpatialBackend
from layers.store.temporal import DEFINITIONS, Endpoint, Interval, open_end, parse_instant, temporal_predicate
from layers.store.temporal import Column as TemporalColumn
from layers.validation import coerce_value

_COMPARISONS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
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
_GEOMETRY_PROPERTIES = {"geometry", "geom"}
_METRES = {"meters", "metres", "meter", "metre", "m"}


class FilterCompiler:
    """Turns one CQL2 JSON tree into a WHERE clause on one layer table."""

    def __init__(self, backend: SpatialBackend, layer: LayerDefinition, table: sa.Table) -> None:
        self.backend = backend
        self.layer = layer
        self.table = table

    def compile(self, node: Any) -> ColumnElement[bool]:
        if isinstance(node, bool):
            return sa.true() if node else sa.false()
        if not isinstance(node, dict) or "op" not in node:
            raise InvalidInputError(f"filter: expected a predicate, got {_show(node)}")
        op, args = str(node["op"]).lower(), node.get("args", [])
        if op in ("and", "or"):
            parts = [self.compile(a) for a in args]
            return sa.and_(*parts) if op == "and" else sa.or_(*parts)
        if op == "not":
            return sa.not_(self.compile(_one(args, op)))
        if op in _COMPARISONS:
            return self._comparison(op, args)
        if op == "like":
            field, pattern = self._field_and_value(args, op)
            return self._column(field).like(str(pattern))
        if op == "between":
            if len(args) != 3:
                raise InvalidInputError("filter: BETWEEN needs a property and two bounds")
            field = self._field(args[0])
            return self._column(field).between(self._literal(field, args[1]), self._literal(field, args[2]))
        if op == "in":
            field, values = self._field_and_value(args, op, raw=True)
            if not isinstance(values, list):
                raise InvalidInputError("filter: IN needs a list of values")
            return self._column(field).in_([self._literal(field, v) for v in values])
        if op == "isnull":
            return self._column(self._field(_one(args, op))).is_(None)
        if op in _SPATIAL:
            return self._spatial(op, args)
        if op in DEFINITIONS:
            if len(args) != 2:
                raise InvalidInputError(f"filter: {op.upper()} needs two operands")
            return temporal_predicate(op, self._interval(args[0], op), self._interval(args[1], op))
        if op == "s_dwithin":
            return self._dwithin(args)
        raise InvalidInputError(f"filter: the operator {node['op']!r} is not supported")

    def _comparison(self, op: str, args: list[Any]) -> ColumnElement[bool]:
        if len(args) != 2:
            raise InvalidInputError(f"filter: {op} needs two operands")
        left, right = args
        if _is_property(right) and not _is_property(left):
            flipped = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
            return self._comparison(flipped, [right, left])
        field = self._field(left)
        return _COMPARISONS[op](self._column(field), self._literal(field, right))

    def _spatial(self, op: str, args: list[Any]) -> ColumnElement[bool]:
        if len(args) != 2:
            raise InvalidInputError(f"filter: {op.upper()} needs two operands")
        left, right = args
        if _is_geometry_property(right) and not _is_geometry_property(left):
            left, right = right, left
            op = {"s_within": "s_contains", "s_contains": "s_within"}.get(op, op)
        if not _is_geometry_property(left):
            raise InvalidInputError(f"filter: {op.upper()} compares the feature's geometry with a geometry literal")
        literal = shapely.to_wkb(_geometry(right), output_dimension=2)
        other = self.backend.geom_from_wkb(sa.bindparam(None, literal, type_=sa.LargeBinary))
        return getattr(sa.func, _SPATIAL[op])(self.table.c.geom, other, type_=sa.Boolean) == sa.true()

    def _dwithin(self, args: list[Any]) -> ColumnElement[bool]:
        """S_DWITHIN(geometry, point, metres[, units]): on the ellipsoid, by the store's own distance search."""
        if len(args) not in (3, 4):
            raise InvalidInputError("filter: S_DWITHIN needs the geometry property, a point and a distance")
        left, right, distance = args[:3]
        if _is_geometry_property(right) and not _is_geometry_property(left):
            left, right = right, left
        if not _is_geometry_property(left):
            raise InvalidInputError("filter: S_DWITHIN measures from the feature's geometry to a point literal")
        if len(args) == 4:
            units = args[3]["property"] if _is_property(args[3]) else args[3]
            if str(units).lower() not in _METRES:
                raise InvalidInputError(f"filter: S_DWITHIN takes distances in metres, not {_show(units)}")
        if isinstance(distance, bool) or not isinstance(distance, int | float):
            raise InvalidInputError(f"filter: S_DWITHIN needs a distance in metres, got {_show(distance)}")
        geometry = _geometry(right)
        points = shapely.get_parts(geometry)
        if not all(isinstance(p, Point) for p in points) or len(points) == 0:
            raise InvalidInputError("filter: S_DWITHIN measures from a point or a multipoint only")
        try:
            near = [Near(p.x, p.y, float(distance)) for p in points]
        except InvalidInputError as exc:
            raise InvalidInputError(f"filter: S_DWITHIN: {exc.detail}") from None
        clauses = [self.backend.within_distance(self.table, n) for n in near]
        return clauses[0] if len(clauses) == 1 else sa.or_(*clauses)

    def _interval(self, node: Any, op: str) -> Interval:
        """A temporal operand as (start, end): an INTERVAL, or an instant that starts and ends at once."""
        if isinstance(node, dict) and set(node) == {"interval"}:
            ends = node["interval"]
            if not isinstance(ends, list) or len(ends) != 2:
                raise InvalidInputError(f"filter: an INTERVAL has a start and an end, got {_show(node)}")
            start, end = self._endpoint(ends[0], op, -1), self._endpoint(ends[1], op, 1)
            if isinstance(start, datetime) and isinstance(end, datetime) and start > end:
                raise InvalidInputError(f"filter: {_show(node)} ends before it starts")
            return start, end
        instant = self._endpoint(node, op, None)
        return instant, instant

    def _endpoint(self, node: Any, op: str, unbounded: int | None) -> Endpoint:
        if _is_property(node):
            field = self._field(node)
            if field.type not in (FieldType.DATE, FieldType.DATETIME):
                raise InvalidInputError(
                    f"filter: {op.upper()} compares dates and times; '{field.name}' is {field.type.value}"
                )
            return TemporalColumn(field, self._column(field))
        if open_end(node):
            if unbounded is None:
                raise InvalidInputError(f"filter: '..' is only an open end of an INTERVAL, in {op.upper()}")
            return unbounded
        return parse_instant(node)

    def _field_and_value(self, args: list[Any], op: str, raw: bool = False) -> tuple[FieldDefinition, Any]:
        if len(args) != 2:
            raise InvalidInputError(f"filter: {op.upper()} needs two operands")
        field = self._field(args[0])
        return field, args[1] if raw else self._literal(field, args[1])

    def _field(self, node: Any) -> FieldDefinition:
        if not _is_property(node):
            raise InvalidInputError(f"filter: expected a property, got {_show(node)}")
        name = node["property"]
        field = self.layer.field(name)
        if field is None:
            known = ", ".join(f.name for f in self.layer.fields)
            raise InvalidInputError(f"filter: collection '{self.layer.id}' has no property '{name}' (it has {known})")
        return field

    def _column(self, field: FieldDefinition) -> ColumnElement[Any]:
        return self.table.c[field.name]

    def _literal(self, field: FieldDefinition, node: Any) -> Any:
        if isinstance(node, dict):
            value = node.get("timestamp", node.get("date"))
            if value is None:
                raise InvalidInputError(f"filter: {_show(node)} is not a value for '{field.name}'")
            node = value
        if field.type is FieldType.INTEGER and isinstance(node, float) and not node.is_integer():
            return node  # comparing an integer column with 2.5 is meaningful
        return coerce_value(field, node)


def _is_property(node: Any) -> bool:
    return isinstance(node, dict) and set(node) == {"property"}


def _is_geometry_property(node: Any) -> bool:
    return _is_property(node) and node["property"] in _GEOMETRY_PROPERTIES


def _geometry(node: Any) -> shapely.Geometry:
    try:
        if isinstance(node, dict) and "bbox" in node:
            west, south, east, north = (
                node["bbox"][:4] if len(node["bbox"]) == 4 else [node["bbox"][i] for i in (0, 1, 3, 4)]
            )
            return box(west, south, east, north)
        return shape(node)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InvalidInputError(f"filter: {_show(node)} is not a geometry ({exc})") from None


def _one(args: list[Any], op: str) -> Any:
    if len(args) != 1:
        raise InvalidInputError(f"filter: {op.upper()} takes one operand")
    return args[0]


def _show(node: Any) -> str:
    text = repr(node)
    return text if len(text) <= 80 else text[:77] + "..."
