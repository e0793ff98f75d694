"""pygeofilter's filter tree (what pygeoapi parses a ``filter`` into) back to CQL2 JSON, for Twin's store.

pygeoapi parses ``filter`` itself (CQL text with pygeofilter's ECQL grammar,
or a CQL2 JSON body) and hands a provider the AST. Twin compiles CQL2 JSON
trees (``layers/store/filters.py``), so the AST is written back as the
standard's JSON form: every part Twin knows is pushed down whole, nothing is
evaluated in Python. pygeofilter's own ``to_cql2`` is not used: it drops the
``NOT`` of ``NOT LIKE``/``NOT IN``/``NOT BETWEEN`` and cannot encode a
timestamp. A node with no CQL2 form (``EXISTS``, ``RELATE``, ``BEFORE OR
DURING``…) raises ``UnsupportedFilter`` naming it.

LIKE patterns keep the meaning pygeofilter gave them: its ECQL grammar takes
``%`` for any text and ``.`` for one character (not ``_``), with ``\\`` to
escape; they are rewritten with CQL2's ``%``/``_`` and escapes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from pygeofilter import ast, values

#: A node that has no CQL2 JSON form, or not one Twin's store evaluates.
UNSUPPORTED = (ast.Exists, ast.Relate, ast.TimeBeforeOrDuring, ast.TimeDuringOrAfter)

_COMPARISONS: dict[type[Any], str] = {
    ast.Equal: "=",
    ast.NotEqual: "<>",
    ast.LessThan: "<",
    ast.LessEqual: "<=",
    ast.GreaterThan: ">",
    ast.GreaterEqual: ">=",
}
_SPATIAL: dict[type[Any], str] = {
    ast.GeometryIntersects: "s_intersects",
    ast.GeometryDisjoint: "s_disjoint",
    ast.GeometryContains: "s_contains",
    ast.GeometryWithin: "s_within",
    ast.GeometryTouches: "s_touches",
    ast.GeometryCrosses: "s_crosses",
    ast.GeometryOverlaps: "s_overlaps",
    ast.GeometryEquals: "s_equals",
}
_TEMPORAL: dict[type[Any], str] = {
    ast.TimeAfter: "t_after",
    ast.TimeBefore: "t_before",
    ast.TimeBegins: "t_starts",
    ast.TimeBegunBy: "t_startedby",
    ast.TimeContains: "t_contains",
    ast.TimeDuring: "t_during",
    ast.TimeEndedBy: "t_finishedby",
    ast.TimeEnds: "t_finishes",
    ast.TimeEquals: "t_equals",
    ast.TimeMeets: "t_meets",
    ast.TimeMetBy: "t_metby",
    ast.TimeOverlaps: "t_overlaps",
    ast.TimeOverlappedBy: "t_overlappedby",
    ast.TimeDisjoint: "t_disjoint",
}
_ARRAYS: dict[type[Any], str] = {
    ast.ArrayEquals: "a_equals",
    ast.ArrayContains: "a_contains",
    ast.ArrayContainedBy: "a_containedby",
    ast.ArrayOverlaps: "a_overlaps",
}
_ARITHMETIC: dict[type[Any], str] = {ast.Add: "+", ast.Sub: "-", ast.Mul: "*", ast.Div: "/"}
#: Functions whose ECQL call is a CQL2 literal, not a function.
_LITERAL_FUNCTIONS = {"timestamp", "date", "interval"}


class UnsupportedFilter(ValueError):
    """The filter holds a part with no CQL2 form that Twin evaluates."""


def to_cql2(node: Any) -> Any:
    """The CQL2 JSON of a pygeofilter node (a predicate, an expression or a literal)."""
    kind = type(node)
    if isinstance(node, UNSUPPORTED):
        raise UnsupportedFilter(f"filter: {kind.__name__} has no CQL2 form that Twin evaluates")
    if isinstance(node, ast.Not):
        return {"op": "not", "args": [to_cql2(node.sub_node)]}
    if isinstance(node, ast.And | ast.Or):
        return _combination(node)
    if kind in _COMPARISONS:
        return {"op": _COMPARISONS[kind], "args": [to_cql2(node.lhs), to_cql2(node.rhs)]}
    if isinstance(node, ast.Between):
        return _negated(
            node.not_, {"op": "between", "args": [to_cql2(node.lhs), to_cql2(node.low), to_cql2(node.high)]}
        )
    if isinstance(node, ast.Like):
        return _like(node)
    if isinstance(node, ast.In):
        options = [to_cql2(option) for option in node.sub_nodes]
        return _negated(node.not_, {"op": "in", "args": [to_cql2(node.lhs), options]})
    if isinstance(node, ast.IsNull):
        return _negated(node.not_, {"op": "isNull", "args": [to_cql2(node.lhs)]})
    if isinstance(node, ast.Include):
        return bool(not node.not_)
    return _spatial_temporal_or_value(node)


def _spatial_temporal_or_value(node: Any) -> Any:
    kind = type(node)
    if kind in _SPATIAL:
        return {"op": _SPATIAL[kind], "args": [to_cql2(node.lhs), to_cql2(node.rhs)]}
    if isinstance(node, ast.BBox):
        if node.crs not in (None, "EPSG:4326", "http://www.opengis.net/def/crs/OGC/1.3/CRS84"):
            raise UnsupportedFilter(f"filter: BBOX in {node.crs} (give the box in CRS84, or use filter-crs)")
        box = {"bbox": [node.minx, node.miny, node.maxx, node.maxy]}
        return {"op": "s_intersects", "args": [to_cql2(node.lhs), box]}
    if isinstance(node, ast.DistanceWithin | ast.DistanceBeyond):
        units = str(node.units).lower()
        within = {"op": "s_dwithin", "args": [to_cql2(node.lhs), to_cql2(node.rhs), node.distance, units]}
        return within if isinstance(node, ast.DistanceWithin) else {"op": "not", "args": [within]}
    if kind in _TEMPORAL:
        return {"op": _TEMPORAL[kind], "args": [to_cql2(node.lhs), to_cql2(node.rhs)]}
    if kind in _ARRAYS:
        return {"op": _ARRAYS[kind], "args": [to_cql2(node.lhs), to_cql2(node.rhs)]}
    if kind in _ARITHMETIC:
        return {"op": _ARITHMETIC[kind], "args": [to_cql2(node.lhs), to_cql2(node.rhs)]}
    if isinstance(node, ast.Attribute):
        return {"property": node.name}
    if isinstance(node, ast.Function):
        return _function(node)
    return _literal(node)


def _combination(node: ast.Combination) -> dict[str, Any]:
    """AND/OR as one n-ary node: pygeofilter nests them two by two, which would make a long chain deep."""
    op = "and" if isinstance(node, ast.And) else "or"
    args: list[Any] = []
    pending: list[Any] = [node.rhs, node.lhs]
    while pending:
        part = pending.pop()
        if type(part) is type(node):
            pending += [part.rhs, part.lhs]
        else:
            args.append(to_cql2(part))
    return {"op": op, "args": args}


def _negated(negate: bool, tree: dict[str, Any]) -> dict[str, Any]:
    return {"op": "not", "args": [tree]} if negate else tree


def _like(node: ast.Like) -> dict[str, Any]:
    pattern = node.pattern
    if not isinstance(pattern, str):
        raise UnsupportedFilter("filter: a LIKE pattern must be a text literal")
    text: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            text.append("\\" + char if char in "%_\\" else char)
            escaped = False
        elif char == node.escapechar:
            escaped = True
        elif char == node.wildcard:
            text.append("%")
        elif char == node.singlechar:
            text.append("_")
        elif char in "%_\\":
            text.append("\\" + char)
        else:
            text.append(char)
    left: Any = to_cql2(node.lhs)
    right: Any = "".join(text)
    if node.nocase:
        left, right = {"op": "casei", "args": [left]}, {"op": "casei", "args": [right]}
    return _negated(node.not_, {"op": "like", "args": [left, right]})


def _function(node: ast.Function) -> Any:
    name = node.name.lower()
    args = [to_cql2(a) for a in node.arguments]
    if name in _LITERAL_FUNCTIONS:
        if name == "interval":
            return {"interval": args}
        if len(args) != 1 or not isinstance(args[0], str):
            raise UnsupportedFilter(f"filter: {node.name.upper()} takes one text argument")
        return {name: args[0]}
    return {"op": name, "args": args}


def _literal(node: Any) -> Any:
    if isinstance(node, bool | int | float | str) or node is None:
        return node
    if isinstance(node, datetime):
        moment = node if node.tzinfo is None else node.astimezone(UTC)
        return {"timestamp": moment.replace(tzinfo=None).isoformat() + "Z"}
    if isinstance(node, date):
        return {"date": node.isoformat()}
    if isinstance(node, values.Interval):
        return {"interval": [".." if end is None else _instant(end) for end in (node.start, node.end)]}
    if isinstance(node, values.Envelope):
        return {"bbox": [node.x1, node.y1, node.x2, node.y2]}
    if isinstance(node, values.Geometry):
        return _lists(dict(node.geometry))
    if isinstance(node, list | tuple):
        return [to_cql2(item) for item in node]
    raise UnsupportedFilter(f"filter: a {type(node).__name__} value has no CQL2 form that Twin evaluates")


def _instant(value: Any) -> str:
    if isinstance(value, timedelta):
        raise UnsupportedFilter("filter: an interval given by a duration has no CQL2 form")
    literal = _literal(value)
    return str(literal.get("timestamp") or literal.get("date"))


def _lists(node: Any) -> Any:
    """GeoJSON with lists where pygeoif left tuples, as JSON has them."""
    if isinstance(node, dict):
        return {key: _lists(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_lists(item) for item in node]
    return node
