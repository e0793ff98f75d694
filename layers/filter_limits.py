"""Bounds on a CQL2 filter, checked before a parser or the database sees it.

The ``cql2`` parser is recursive Rust: about 1,600 nested parentheses
overflow its stack and kill the process, which no ``except`` can catch; and
it backtracks on grouping parentheses, which it reads first as a predicate
and then as a value, so a filter that fails to parse costs it twice as long
for each further level (16 levels: 0.2 s, 20: 3 s, 24: a minute). The
translation to SQL recurses in Python, and SQLite refuses expression trees
deeper than 1,000. So a filter's text is measured first (length, and nesting
by a scan that understands quotes), and its parsed tree second (nesting,
number of operators, points in geometry literals), each refusal naming the
limit and its value. The scans are iterative: measuring a hostile filter
cannot itself overflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from layers.errors import InvalidInputError


@dataclass(frozen=True)
class FilterLimits:
    """What one filter may hold (``TWIN_FILTER_MAX_*`` settings)."""

    max_length: int = 20_000
    max_depth: int = 40
    #: Grouping parentheses (not a function's) nested in one another: the parser's backtracking doubles
    #: with each level, 0.015 s at 12.
    max_parentheses: int = 12
    max_terms: int = 500
    max_points: int = 10_000
    #: Points in the point or multipoint of one S_DWITHIN: each is a distance search of its own.
    max_dwithin_points: int = 100


#: Quoted strings and identifiers, words, brackets; anything else one character at a time.
_TOKEN = re.compile(r"""'(?:[^']|'')*'|"[^"]*"|[A-Za-z_][A-Za-z0-9_:.]*|[()\[\]]|\s+|.""", re.DOTALL)


def check_text(text: str, language: str, limits: FilterLimits) -> None:
    """Refuse a filter whose text is too long or nested too deep to hand to the parser."""
    if len(text) > limits.max_length:
        raise InvalidInputError(
            f"filter: {len(text):,} characters is more than the limit of {limits.max_length:,} (filter length)"
        )
    if language == "cql2-json":
        depth, groups = _json_depth(text) // 2, 0
    else:
        depth, groups = _text_depth(text)
    if depth > limits.max_depth:
        raise InvalidInputError(f"filter: nested more than {limits.max_depth} levels deep (filter depth limit)")
    if groups > limits.max_parentheses:
        raise InvalidInputError(
            f"filter: more than {limits.max_parentheses} grouping parentheses inside one another "
            "(filter parentheses limit)"
        )


_KEYWORDS = frozenset({"AND", "OR", "NOT"})


def _text_depth(text: str) -> tuple[int, int]:
    """How deep the parser will recurse (brackets, and the NOTs that wrap what follows them), and how
    deep grouping parentheses nest (those that do not open a function's arguments)."""
    depth = deepest = nots = groups = deepest_groups = 0
    opened: list[tuple[int, bool]] = []
    previous = ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token.isspace():
            continue
        if token.upper() == "NOT":
            nots += 1
            deepest = max(deepest, depth + nots)
        elif token in ("(", "["):
            grouping = token == "(" and not (previous[:1].isalpha() and previous.upper() not in _KEYWORDS)
            opened.append((nots, grouping))
            depth += 1 + nots
            groups += grouping
            nots = 0
            deepest, deepest_groups = max(deepest, depth), max(deepest_groups, groups)
        elif token in (")", "]"):
            if opened:
                wrapped, grouping = opened.pop()
                depth -= 1 + wrapped
                groups -= grouping
            nots = 0
        else:
            nots = 0
        previous = token
    return deepest, deepest_groups


def _json_depth(text: str) -> int:
    """Bracket nesting of a JSON text, strings skipped (a CQL2 JSON operator nests two: object and args)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_tree(tree: Any, limits: FilterLimits) -> None:
    """Refuse a parsed filter with too many operators or too many points in its geometry literals."""
    terms = points = 0
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 2 * limits.max_depth + 4:
            raise InvalidInputError(f"filter: nested more than {limits.max_depth} levels deep (filter depth limit)")
        if isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, dict):
            if "op" in node:
                terms += 1
                if terms > limits.max_terms:
                    raise InvalidInputError(
                        f"filter: more than {limits.max_terms} operators and functions (filter terms limit)"
                    )
                if str(node["op"]).lower() == "s_dwithin":
                    _check_dwithin(node.get("args"), limits)
            if "coordinates" in node:
                points += _positions(node["coordinates"])
                if points > limits.max_points:
                    raise InvalidInputError(
                        f"filter: its geometries have more than {limits.max_points:,} points (filter points limit)"
                    )
            else:
                stack.extend((value, depth + 1) for value in node.values())


def _check_dwithin(args: Any, limits: FilterLimits) -> None:
    for arg in args if isinstance(args, list) else []:
        if isinstance(arg, dict) and "coordinates" in arg:
            count = _positions(arg["coordinates"])
            if count > limits.max_dwithin_points:
                raise InvalidInputError(
                    f"filter: S_DWITHIN from {count:,} points; the limit is {limits.max_dwithin_points:,} "
                    "(filter S_DWITHIN points limit)"
                )


def _positions(coordinates: Any) -> int:
    """Positions in a GeoJSON ``coordinates`` array, counted without recursion."""
    count = 0
    stack = [coordinates]
    while stack:
        item = stack.pop()
        if isinstance(item, list) and item and isinstance(item[0], list):
            stack.extend(item)
        else:
            count += 1
    return count
