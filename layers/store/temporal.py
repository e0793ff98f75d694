"""CQL2 temporal functions (T_AFTER … T_STARTS) as SQL, on date and datetime properties.

Every operand is an interval: an instant is the interval [t, t], and ``'..'``
makes an end unbounded. Each function is the conjunction of endpoint
comparisons the CQL2 standard (OGC 21-065r2, section 6.4.6) defines, e.g.
T_DURING(A, B) is ``start(A) > start(B) AND end(A) < end(B)``. A comparison
with an unbounded end is settled here, not in SQL; one between literals is
settled here too; only comparisons involving a property reach the database,
with every literal a typed bound parameter.

A DATE is the instant at 00:00 UTC of that day when compared with a
timestamp, and naive timestamps are UTC, as CQL2 says.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from layers.errors import InvalidInputError
from layers.model import FieldDefinition, FieldType

#: An unbounded end ('..'): -1 below every instant (a start), +1 above every instant (an end).
Unbounded = int


@dataclass(frozen=True)
class Column:
    """An endpoint read from a property."""

    field: FieldDefinition
    expr: ColumnElement[Any]


Endpoint = Column | datetime | Unbounded
Interval = tuple[Endpoint, Endpoint]

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP = {"<": ">", "<=": ">=", "=": "=", ">": "<", ">=": "<="}

#: Each function as a disjunction of conjunctions of (endpoint of A, comparison, endpoint of B); 0 = start, 1 = end.
DEFINITIONS: dict[str, list[list[tuple[int, str, int]]]] = {
    "t_after": [[(0, ">", 1)]],
    "t_before": [[(1, "<", 0)]],
    "t_disjoint": [[(0, ">", 1)], [(1, "<", 0)]],
    "t_equals": [[(0, "=", 0), (1, "=", 1)]],
    "t_intersects": [[(0, "<=", 1), (1, ">=", 0)]],
    "t_contains": [[(0, "<", 0), (1, ">", 1)]],
    "t_during": [[(0, ">", 0), (1, "<", 1)]],
    "t_finishedby": [[(0, "<", 0), (1, "=", 1)]],
    "t_finishes": [[(0, ">", 0), (1, "=", 1)]],
    "t_meets": [[(1, "=", 0)]],
    "t_metby": [[(0, "=", 1)]],
    "t_overlappedby": [[(0, ">", 0), (0, "<", 1), (1, ">", 1)]],
    "t_overlaps": [[(0, "<", 0), (1, ">", 0), (1, "<", 1)]],
    "t_startedby": [[(0, "=", 0), (1, ">", 1)]],
    "t_starts": [[(0, "=", 0), (1, "<", 1)]],
}


def temporal_predicate(op: str, left: Interval, right: Interval) -> ColumnElement[bool]:
    """The SQL for ``op(left, right)``; ``op`` is a key of ``DEFINITIONS``.

    An interval with a NULL end is unknown as a whole, even where the function
    reads only its other end: ``x = x`` (NULL when x is) joins the predicate for
    every property, as the standard's test suite counts it.
    """
    alternatives = []
    for conjunction in DEFINITIONS[op]:
        parts = [compare(left[a], symbol, right[b]) for a, symbol, b in conjunction]
        alternatives.append(sa.and_(*parts) if len(parts) > 1 else parts[0])
    predicate = sa.or_(*alternatives) if len(alternatives) > 1 else alternatives[0]
    columns = {id(e.expr): e.expr for e in (*left, *right) if isinstance(e, Column)}
    return sa.and_(*(c == c for c in columns.values()), predicate) if columns else predicate


def compare(a: Endpoint, symbol: str, b: Endpoint) -> ColumnElement[bool]:
    if not isinstance(a, Column) and isinstance(b, Column):
        return compare(b, _FLIP[symbol], a)
    if not isinstance(a, Column):
        assert not isinstance(b, Column)
        return sa.true() if _OPS[symbol](_rank(a), _rank(b)) else sa.false()
    if isinstance(b, Column):
        return _OPS[symbol](a.expr, b.expr)  # type: ignore[no-any-return]
    if isinstance(b, int):
        # Beyond every instant: true or false, but still unknown when the property is NULL (as SQL would say).
        holds = _OPS[symbol](0, b)
        return a.expr == a.expr if holds else a.expr != a.expr
    if a.field.type is FieldType.DATE:
        return _date_compare(a, symbol, b)
    return _OPS[symbol](a.expr, sa.bindparam(None, b, type_=a.expr.type))  # type: ignore[no-any-return]


def _date_compare(a: Column, symbol: str, instant: datetime) -> ColumnElement[bool]:
    """A date property (00:00 UTC of its day) against an instant, compared as dates.

    When the instant is not at midnight it falls strictly inside a day d, so
    "day > instant" is "day > d" and "day < instant" is "day <= d".
    """
    day = instant.astimezone(UTC).date()
    bound = sa.bindparam(None, day, type_=a.expr.type)
    if instant.astimezone(UTC) == _midnight(day):
        return _OPS[symbol](a.expr, bound)  # type: ignore[no-any-return]
    strictly = {"<": "<=", "<=": "<=", ">": ">", ">=": ">", "=": None}[symbol]
    if strictly is None:
        return a.expr != a.expr  # never equal, unknown when NULL
    return _OPS[strictly](a.expr, bound)  # type: ignore[no-any-return]


def _rank(value: datetime | Unbounded) -> tuple[int, datetime]:
    if isinstance(value, datetime):
        return (0, value)
    return (value, datetime.min.replace(tzinfo=UTC))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def parse_instant(value: Any) -> datetime:
    """A CQL2 instant literal (``{"date": …}``, ``{"timestamp": …}`` or its text) as an aware datetime."""
    if isinstance(value, dict) and len(value) == 1 and ("date" in value or "timestamp" in value):
        value = value.get("date", value.get("timestamp"))
    if not isinstance(value, str):
        raise InvalidInputError(f"filter: {value!r} is not a date or a timestamp")
    text = value.strip()
    try:
        if len(text) == 10:
            return _midnight(date.fromisoformat(text))
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"filter: {value!r} is not an RFC 3339 date or timestamp") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def open_end(value: Any) -> bool:
    return value == ".."
