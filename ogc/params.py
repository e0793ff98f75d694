"""Query parameters of OGC API – Features, parsed into the domain's ``FeatureQuery``.

Every parser raises ``InvalidInputError`` naming the parameter, which the app
turns into a 400 problem document.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, date, datetime
from typing import Any

import cql2
import shapely
from shapely.geometry import mapping, shape

from layers.errors import InvalidInputError
from layers.features import BBox, SortKey, TimeRange
from layers.filter_limits import FilterLimits, check_text, check_tree
from layers.model import LayerDefinition
from layers.validation import coerce_value
from ogc.crs import CRS84, bbox_to_crs84, box_to_crs84, geometry_to_crs84, parse_crs

DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000


def parse_bbox(text: str | None, bbox_crs: str | None = None) -> BBox | None:
    """Four numbers in ``bbox-crs`` (CRS84 by default, in its axis order); a 6-number 3D box drops its heights."""
    crs = parse_crs(bbox_crs, "bbox-crs")
    if text is None:
        return None
    try:
        numbers = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidInputError(f"bbox: expected 4 numbers separated by commas, got {text!r}") from None
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4:
        raise InvalidInputError(f"bbox: expected 4 (or 6) numbers, got {len(numbers)}")
    try:
        return BBox(*bbox_to_crs84((numbers[0], numbers[1], numbers[2], numbers[3]), crs))
    except InvalidInputError as exc:
        raise InvalidInputError(f"bbox: {exc.detail}") from None


def parse_datetime(text: str | None, layer: LayerDefinition) -> TimeRange | None:
    """An instant or an interval (``start/end``, either side may be ``..`` or empty)."""
    if text is None:
        return None
    if layer.time_field is None:
        raise InvalidInputError(f"datetime: collection '{layer.id}' has no time field to filter on")
    parts = text.split("/")
    if len(parts) == 1:
        instant = _instant(parts[0])
        return TimeRange(instant, instant)
    if len(parts) != 2:
        raise InvalidInputError(f"datetime: expected an instant or start/end, got {text!r}")
    start, end = (None if p in ("", "..") else _instant(p) for p in parts)
    if start is not None and end is not None and start > end:
        raise InvalidInputError("datetime: the interval ends before it starts")
    return TimeRange(start, end)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"datetime: {text!r} is not an RFC 3339 date-time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def parse_limit(text: str | int | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise InvalidInputError(f"limit: {text!r} is not an integer") from None
    if value < 1:
        raise InvalidInputError("limit: must be at least 1")
    return min(value, MAX_LIMIT)


def parse_properties(text: str | None, layer: LayerDefinition) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if layer.field(n) is None]
    if unknown:
        raise InvalidInputError(
            f"properties: collection '{layer.id}' has no propert{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(repr, unknown))}"
        )
    return list(dict.fromkeys(layer.field(n).name for n in names))  # type: ignore[union-attr]


def parse_sortby(text: str | None, layer: LayerDefinition) -> list[SortKey]:
    """``sortby=name,-height_m``: declared fields, each ascending unless prefixed by ``-`` (``+`` is optional).

    A ``+`` arrives as a space when a client does not escape it; both mean ascending.
    """
    if text is None:
        return []
    keys: list[SortKey] = []
    for item in text.split(","):
        token = item.strip()
        descending = token.startswith("-")
        name = token[1:].strip() if token[:1] in ("+", "-") else token
        if not name:
            raise InvalidInputError(f"sortby: expected property names separated by commas, got {text!r}")
        field = layer.field(name)
        if field is None:
            sortables = ", ".join(f.name for f in layer.fields) or "none"
            raise InvalidInputError(
                f"sortby: collection '{layer.id}' has no property '{name}' to sort on (sortables: {sortables})"
            )
        if any(key.field == field.name for key in keys):
            raise InvalidInputError(f"sortby: '{name}' is named twice")
        keys.append(SortKey(field.name, descending))
    return keys


def sortby_text(sort: list[SortKey]) -> str:
    return ",".join(f"{'-' if key.descending else ''}{key.field}" for key in sort)


def encode_cursor(sort: list[SortKey], keyset: tuple[Any, ...]) -> str:
    """The ``cursor`` of a ``next`` link: the fid alone, or (sorted) the sort order and the last row's keyset.

    The sorted form is opaque (URL-safe base64 of JSON) and names its sort
    order, so a cursor cannot silently be reused with another ``sortby``.
    """
    if not sort:
        return str(keyset[-1])
    values = [v.isoformat() if isinstance(v, date | datetime) else v for v in keyset]
    payload = json.dumps({"sortby": sortby_text(sort), "after": values}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def parse_cursor(
    text: str | None, sort: list[SortKey] | None = None, layer: LayerDefinition | None = None
) -> tuple[int | None, list[Any] | None]:
    """The keyset a ``next`` link starts after: (fid, sort-key values or None)."""
    if text is None:
        return None, None
    if not sort:
        if not _FID.match(text):
            raise InvalidInputError(f"cursor: {text!r} is not a cursor from a next link")
        return int(text), None
    assert layer is not None
    try:
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        after, order = payload["after"], payload["sortby"]
        fid = after[-1]
    except (ValueError, TypeError, KeyError, IndexError, binascii.Error):
        raise InvalidInputError(f"cursor: {text[:40]!r} is not a cursor from a next link with a sortby") from None
    if order != sortby_text(sort) or len(after) != len(sort) + 1 or type(fid) is not int or not 0 <= fid < 2**63:
        raise InvalidInputError("cursor: this cursor belongs to another sortby; start again from the first page")
    values = [coerce_value(layer.field(key.field), v) for key, v in zip(sort, after, strict=False)]  # type: ignore[arg-type]
    return fid, values


_FID = re.compile(r"^[0-9]{1,18}$")


FILTER_LANGUAGES = ("cql2-text", "cql2-json")
DEFAULT_FILTER_LIMITS = FilterLimits()


def parse_filter(
    text: str | None, language: str | None, filter_crs: str | None, limits: FilterLimits = DEFAULT_FILTER_LIMITS
) -> dict[str, Any] | None:
    """A CQL2 filter (text or JSON) as its JSON tree, parsed by the ``cql2`` library once ``limits``
    says the parser can take it (``layers.filter_limits``), and measured again once parsed."""
    if text is None:
        return None
    crs = parse_crs(filter_crs, "filter-crs")
    language = language or "cql2-text"
    if language not in FILTER_LANGUAGES:
        raise InvalidInputError(f"filter-lang: {language!r} is not one of {', '.join(FILTER_LANGUAGES)}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("filter: the text holds a lone surrogate, which is not UTF-8") from None
    check_text(text, language, limits)
    try:
        expression = cql2.parse_text(text.strip()) if language == "cql2-text" else cql2.parse_json(text)
        tree: Any = expression.to_json()
    except (ValueError, cql2.ParseError) as exc:
        first = str(exc).strip().splitlines()
        reason = " ".join(line.strip() for line in first)[:300]
        raise InvalidInputError(f"filter: not valid {language}: {reason}") from None
    check_tree(tree, limits)
    return tree if crs == CRS84 else _geometries_to_crs84(tree, crs)


def _geometries_to_crs84(node: Any, crs: str) -> Any:
    """The filter with every geometry literal (and BBOX) given in ``crs`` redrawn in CRS84, the store's CRS."""
    if isinstance(node, list):
        return [_geometries_to_crs84(item, crs) for item in node]
    if not isinstance(node, dict):
        return node
    try:
        if set(node) == {"bbox"}:
            numbers = [float(v) for v in node["bbox"]]
            if len(numbers) == 6:
                numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
            if len(numbers) != 4:
                raise ValueError("a BBOX has 4 or 6 numbers")
            return mapping(box_to_crs84((numbers[0], numbers[1], numbers[2], numbers[3]), crs))
        if "type" in node and ("coordinates" in node or "geometries" in node):
            return mapping(geometry_to_crs84(shape(node), crs))
    except InvalidInputError as exc:
        raise InvalidInputError(f"filter: {exc.detail} (filter-crs)") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise InvalidInputError(f"filter: {str(node)[:80]} is not a geometry ({exc})") from None
    return {key: _geometries_to_crs84(value, crs) for key, value in node.items()}


_FEATURE_ID = re.compile(r"^[0-9]{1,18}$")


def parse_feature_id(text: str) -> int | None:
    """A feature id from a path, or None when it cannot be one (only ASCII digits: "¹".isdigit() is true)."""
    return int(text) if _FEATURE_ID.match(text) else None
