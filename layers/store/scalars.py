"""The values of a CQL2 filter: properties, literals, CASEI/ACCENTI and arithmetic, as typed SQL or constants.

A value is either a SQL expression (it reads a property) or a constant known
here. Constants are folded in Python (``1038290 - 5 % 2``, ``casei('Kiev')``),
so only expressions over properties reach the database, and a literal compared
with a property becomes a bound parameter of that property's type. Every
value has a kind, so a comparison of text with a number is refused by name
rather than left to a database that would answer it differently on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import shapely
import sqlalchemy as sa
from shapely.geometry import box, shape
from sqlalchemy.sql.elements import ColumnElement

from layers.errors import InvalidInputError
from layers.model import FieldDefinition, FieldType, LayerDefinition
from layers.store.backend import SpatialBackend
from layers.store.temporal import parse_instant
from layers.textfold import fold_accents, fold_case
from layers.validation import coerce_value

GEOMETRY_PROPERTIES = frozenset({"geometry", "geom"})

#: Kinds of value. Integers and numbers compare with each other, dates and timestamps too.
TEXT, NUMBER, BOOLEAN, TEMPORAL, GEOMETRY, NULL = "text", "number", "boolean", "temporal", "geometry", "null"
_KIND_OF_FIELD = {
    FieldType.STRING: TEXT,
    FieldType.INTEGER: NUMBER,
    FieldType.NUMBER: NUMBER,
    FieldType.BOOLEAN: BOOLEAN,
    FieldType.DATE: TEMPORAL,
    FieldType.DATETIME: TEMPORAL,
}
_INT64 = 2**63


def _divide(a: float, b: float) -> float:
    return a / b


def _integer_divide(a: float, b: float) -> float:
    return float(math.trunc(a / b))


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _divide,
    "%": math.fmod,
    "div": _integer_divide,
    "^": math.pow,
}
_FOLDS = {"casei": fold_case, "accenti": fold_accents}


@dataclass(frozen=True)
class Value:
    """One operand: ``sql`` when it reads a property (``field`` then names it, even under CASEI), else ``constant``."""

    kind: str
    sql: ColumnElement[Any] | None = None
    constant: Any = None
    field: FieldDefinition | None = None

    @property
    def is_constant(self) -> bool:
        return self.sql is None


class ValueCompiler:
    """Compiles the value nodes of one filter on one layer table."""

    def __init__(self, backend: SpatialBackend, layer: LayerDefinition, table: sa.Table) -> None:
        self.backend = backend
        self.layer = layer
        self.table = table

    def value(self, node: Any) -> Value:
        if node is None:
            return Value(NULL)
        if isinstance(node, bool):
            return Value(BOOLEAN, constant=node)
        if isinstance(node, int | float):
            if isinstance(node, float) and not math.isfinite(node):
                raise InvalidInputError(f"filter: {node!r} is not a finite number")
            return Value(NUMBER, constant=node)
        if isinstance(node, str):
            return Value(TEXT, constant=checked_text(node))
        if not isinstance(node, dict):
            raise InvalidInputError(f"filter: {show(node)} is not a value")
        if set(node) == {"property"}:
            return self.property(node["property"])
        if set(node) in ({"date"}, {"timestamp"}):
            instant = parse_instant(node)
            return Value(TEMPORAL, constant=instant.date() if "date" in node else instant)
        if "bbox" in node or ("type" in node and ("coordinates" in node or "geometries" in node)):
            return Value(GEOMETRY, constant=geometry_literal(node))
        if "op" in node:
            return self._function(str(node["op"]), node.get("args") or [])
        raise InvalidInputError(f"filter: {show(node)} is not a value")

    def property(self, name: Any) -> Value:
        if not isinstance(name, str):
            raise InvalidInputError(f"filter: {show(name)} is not a property name")
        if name in GEOMETRY_PROPERTIES:
            return Value(GEOMETRY, sql=self.table.c.geom)
        field = self.layer.field(name)
        if field is None:
            known = ", ".join(f.name for f in self.layer.fields) or "none"
            raise InvalidInputError(
                f"filter: collection '{self.layer.id}' has no property {show(name)} (it has {known})"
            )
        return Value(_KIND_OF_FIELD[field.type], sql=self.table.c[field.name], field=field)

    def _function(self, op: str, args: list[Any]) -> Value:
        name = op.lower()
        if name in _FOLDS:
            return self._fold(name, args)
        if name in _ARITHMETIC:
            return self._arithmetic(name, args)
        raise InvalidInputError(
            f"filter: {show(op)} is not a function Twin knows here (it knows casei, accenti and + - * / % div ^)"
        )

    def _fold(self, name: str, args: list[Any]) -> Value:
        if len(args) != 1:
            raise InvalidInputError(f"filter: {name.upper()} takes one text value")
        inner = self.value(args[0])
        if inner.kind not in (TEXT, NULL):
            raise InvalidInputError(f"filter: {name.upper()} takes text, not a {inner.kind} value")
        if inner.is_constant:
            return Value(inner.kind, constant=_FOLDS[name](inner.constant))
        assert inner.sql is not None
        folded = self.backend.fold_case(inner.sql) if name == "casei" else self.backend.fold_accents(inner.sql)
        return Value(TEXT, sql=folded, field=inner.field)

    def _arithmetic(self, name: str, args: list[Any]) -> Value:
        if len(args) != 2:
            raise InvalidInputError(f"filter: {name} takes two numbers")
        left, right = (self.value(a) for a in args)
        for side in (left, right):
            if side.kind not in (NUMBER, NULL):
                raise InvalidInputError(f"filter: {name} takes numbers, not a {side.kind} value")
        if left.is_constant and right.is_constant:
            if left.constant is None or right.constant is None:
                return Value(NULL)
            try:
                result = _ARITHMETIC[name](float(left.constant), float(right.constant))
            except (ZeroDivisionError, ValueError):
                raise InvalidInputError(f"filter: {left.constant} {name} {right.constant} has no value") from None
            except OverflowError:
                raise InvalidInputError(f"filter: {left.constant} {name} {right.constant} is too large") from None
            return Value(NUMBER, constant=result)
        return Value(NUMBER, sql=self.backend.arithmetic(name, self.sql(left), self.sql(right)))

    # --- constants as SQL ------------------------------------------------------------------

    def sql(self, value: Value, like: Value | None = None) -> ColumnElement[Any]:
        """The value as SQL; a constant becomes a bound parameter, typed like ``like``'s property if given."""
        if value.sql is not None:
            return value.sql
        if value.kind == NULL or value.constant is None:
            return sa.null()
        if like is not None and like.field is not None and like.sql is not None:
            return sa.bindparam(None, self.coerced(like.field, value.constant), type_=like.sql.type)
        return sa.bindparam(None, value.constant, type_=_TYPES[value.kind](value.constant))

    @staticmethod
    def coerced(field: FieldDefinition, constant: Any) -> Any:
        """A literal compared with ``field``, in its type; an integer column meets 2.5 or 1e30 as a number."""
        if field.type is FieldType.INTEGER and isinstance(constant, int | float) and not isinstance(constant, bool):
            if not float(constant).is_integer() or abs(constant) >= _INT64:
                return float(constant)
            return int(constant)
        if field.type is FieldType.DATETIME and isinstance(constant, date) and not isinstance(constant, datetime):
            return parse_instant(constant.isoformat())  # a DATE meets a timestamp at 00:00 UTC
        return coerce_value(field, constant)


def _number_type(value: Any) -> sa.types.TypeEngine[Any]:
    return sa.Float() if isinstance(value, float) else sa.BigInteger()


_TYPES: dict[str, Callable[[Any], sa.types.TypeEngine[Any]]] = {
    TEXT: lambda _: sa.String(),
    NUMBER: _number_type,
    BOOLEAN: lambda _: sa.Boolean(),
    TEMPORAL: lambda v: sa.DateTime(timezone=True) if isinstance(v, datetime) else sa.Date(),
}


def checked_text(text: str) -> str:
    """Text a database can store and compare: no NUL (PostgreSQL refuses it), no lone surrogate (not UTF-8)."""
    if "\x00" in text:
        raise InvalidInputError("filter: a text value holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("filter: a text value holds a lone surrogate, which is not UTF-8") from None
    return text


def geometry_literal(node: Any) -> shapely.Geometry:
    """A GeoJSON geometry or a BBOX; a BBOX whose west edge is east of its east edge crosses the antimeridian."""
    try:
        if "bbox" in node:
            numbers = [float(v) for v in node["bbox"]]
            if len(numbers) == 6:
                numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
            if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
                raise ValueError("a BBOX has 4 or 6 numbers")
            west, south, east, north = numbers
            if west > east:
                return shapely.MultiPolygon([box(west, south, 180, north), box(-180, south, east, north)])
            return box(west, south, east, north)
        geometry = shape(node)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, shapely.errors.ShapelyError) as exc:
        raise InvalidInputError(f"filter: {show(node)} is not a geometry ({exc})") from None
    if geometry.is_empty:
        raise InvalidInputError(f"filter: {show(node)} is an empty geometry")
    return geometry


def show(node: Any) -> str:
    text = repr(node).encode("utf-8", "backslashreplace").decode()
    return text if len(text) <= 80 else text[:77] + "..."
