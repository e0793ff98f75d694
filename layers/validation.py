"""Check and coerce features against their layer, a column at a time.

One code path serves a single feature written over the API and a million rows
from a GeoPackage: values arrive as Arrow columns (what pyogrio reads) and are
checked with vectorized functions, so a bulk import pays per-value Python only
where text has to be parsed. Every error names the feature (1-based position
in the request or file) and the field, because that is what the person fixing
the file needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from shapely.geometry.base import BaseGeometry

from layers.errors import InvalidInputError
from layers.model import FieldDefinition, FieldType, GeometryType, LayerDefinition

_TRUE = {"true", "t", "yes", "y", "1", "có"}
_FALSE = {"false", "f", "no", "n", "0", "không"}
_MULTI = {
    GeometryType.MULTIPOINT: shapely.multipoints,
    GeometryType.MULTILINESTRING: shapely.multilinestrings,
    GeometryType.MULTIPOLYGON: shapely.multipolygons,
}


@dataclass(frozen=True)
class RowBatch:
    """Validated rows ready for the store: EPSG:4326 geometries and typed values."""

    geometries: np.ndarray
    columns: dict[str, list[Any]]
    first_row: int = 1

    def __len__(self) -> int:
        return len(self.geometries)

    def in_spatial_order(self) -> RowBatch:
        """The same rows along a Hilbert curve, so that rows near each other on the map are stored together.

        A spatial query then reads a few pages instead of one page per feature.
        """
        if len(self) < 2:
            return self
        order = np.argsort(gpd.GeoSeries(self.geometries).hilbert_distance().to_numpy(), kind="stable")
        columns = {name: _take(values, order) for name, values in self.columns.items()}
        return RowBatch(self.geometries[order], columns, self.first_row)


def _take(values: list[Any], order: np.ndarray) -> list[Any]:
    picked = np.empty(len(values), dtype=object)
    picked[:] = values
    return list(picked[order])


def batch_from_features(
    layer: LayerDefinition,
    geometries: Sequence[BaseGeometry | None],
    properties: Sequence[Mapping[str, Any]],
) -> RowBatch:
    """Validate features given as Python objects (the API's write path); absent properties are null."""
    known = {f.name for f in layer.fields}
    for i, props in enumerate(properties, start=1):
        unknown = sorted(set(props) - known)
        if unknown:
            raise InvalidInputError(
                f"feature {i}: unknown propert{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(repr(u) for u in unknown)}; "
                f"layer '{layer.id}' has {', '.join(sorted(known)) or 'no fields'}",
                row=i,
            )
    columns: dict[str, list[Any]] = {f.name: [p.get(f.name) for p in properties] for f in layer.fields}
    geoms = validate_geometries(layer, np.asarray(geometries, dtype=object), first_row=1)
    values = validate_columns(layer, columns, first_row=1)
    return RowBatch(geoms, values, 1)


#: How far (degrees, about a centimetre) a coordinate may pass ±180 or ±90 and be taken as the edge:
#: Natural Earth's Russia ends at 180.00000000000006, from rounding in the source.
_EDGE_SLACK = 1e-7


def validate_geometries(
    layer: LayerDefinition, geoms: np.ndarray, *, first_row: int, repair: bool = False
) -> np.ndarray:
    """Check presence, type, validity and lon/lat range; promote single parts to multi.

    The first feature whose geometry cannot be stored stops it, named with its reason."""
    checked, problems = check_geometries(layer, geoms, first_row=first_row, repair=repair)
    if problems:
        row, reason = next(iter(problems.items()))
        raise InvalidInputError(f"feature {row}: {reason}", row=row)
    return checked


def check_geometries(
    layer: LayerDefinition, geoms: np.ndarray, *, first_row: int, repair: bool = False
) -> tuple[np.ndarray, dict[int, str]]:
    """The geometries made ready for the store, and the features (by number) whose geometry cannot be
    stored, each with the reason: missing or empty, of another type than the layer's, or invalid (and,
    with ``repair``, left with nothing of its dimension by ``make_valid``). Their places keep ``None``.

    Coordinates out of the lon/lat range are not one feature's problem but the source CRS's: they raise.
    """
    problems: dict[int, str] = {}
    geoms = geoms.copy()

    def drop(indexes: np.ndarray, reason: Callable[[int], str]) -> None:
        for i in indexes:
            problems[first_row + int(i)] = reason(int(i))
            geoms[i] = None

    missing = shapely.is_missing(geoms)
    drop(np.flatnonzero(missing), lambda _i: "geometry is missing")
    drop(np.flatnonzero(~missing & shapely.is_empty(geoms)), lambda _i: "geometry is empty")
    present = ~shapely.is_missing(geoms)
    if shapely.has_z(geoms[present]).any():
        geoms[present] = shapely.force_2d(geoms[present])
    wrong = present & ~_of_type(layer, geoms)
    drop(
        np.flatnonzero(wrong),
        lambda i: f"geometry is a {geoms[i].geom_type}, layer '{layer.id}' holds {layer.geometry_type.value}",
    )
    present = ~shapely.is_missing(geoms)
    invalid = present & ~shapely.is_valid(geoms)
    if invalid.any() and not repair:
        drop(np.flatnonzero(invalid), lambda i: f"invalid geometry: {invalid_reason(geoms[i])}")
    elif invalid.any():
        for i in np.flatnonzero(invalid):
            fixed = _keep_dimension(shapely.make_valid(geoms[i]), shapely.get_dimensions(geoms[i]))
            if fixed.is_empty or not _of_type(layer, np.array([fixed]))[0]:
                problems[first_row + int(i)] = (
                    f"invalid geometry ({invalid_reason(geoms[i])}) that repair cannot keep as a "
                    f"{layer.geometry_type.value}"
                )
                geoms[i] = None
            else:
                geoms[i] = fixed
    present = ~shapely.is_missing(geoms)
    geoms[present] = _within_lon_lat(geoms[present], np.flatnonzero(present) + first_row)
    geoms[present] = _as_layer_type(layer, geoms[present])
    return geoms, dict(sorted(problems.items()))


def invalid_reason(geom: BaseGeometry) -> str:
    """GEOS's reason in words: "Self-intersection[109.2 13.7]" → "self-intersection at (109.2, 13.7)"."""
    reason = shapely.is_valid_reason(geom)
    name, _, at = reason.partition("[")
    name = name[:1].lower() + name[1:]
    if not at:
        return name
    return f"{name} at ({', '.join(at.rstrip(']').split())})"


def _within_lon_lat(geoms: np.ndarray, rows: np.ndarray) -> np.ndarray:
    bounds = shapely.bounds(geoms)
    over = (bounds[:, 0] < -180) | (bounds[:, 2] > 180) | (bounds[:, 1] < -90) | (bounds[:, 3] > 90)
    if not over.any():
        return geoms
    s = _EDGE_SLACK
    far = (bounds[:, 0] < -180 - s) | (bounds[:, 2] > 180 + s) | (bounds[:, 1] < -90 - s) | (bounds[:, 3] > 90 + s)
    far |= ~np.isfinite(bounds).all(axis=1)
    if far.any():
        i = int(np.argmax(far))
        coords = shapely.get_coordinates(geoms[i])
        outside = ~np.isfinite(coords).all(axis=1) | (np.abs(coords[:, 0]) > 180 + s) | (np.abs(coords[:, 1]) > 90 + s)
        x, y = coords[int(np.argmax(outside))]
        raise InvalidInputError(
            f"feature {int(rows[i])}: coordinates ({x:.6g}, {y:.6g}) are not longitude/latitude "
            "after reprojection; is the source CRS right?",
            row=int(rows[i]),
        )
    geoms = geoms.copy()
    geoms[over] = shapely.transform(geoms[over], lambda c: np.clip(c, (-180, -90), (180, 90)))
    return geoms


def _of_type(layer: LayerDefinition, geoms: np.ndarray) -> np.ndarray:
    """Which geometries the layer takes: its type or, for a multi-part layer, its single-part type."""
    target = layer.geometry_type
    if target is GeometryType.GEOMETRY:
        return np.ones(len(geoms), dtype=bool)
    ids = shapely.get_type_id(geoms)
    return (ids == _TYPE_IDS[target]) | (ids == _TYPE_IDS[target.single])


def _as_layer_type(layer: LayerDefinition, geoms: np.ndarray) -> np.ndarray:
    """Single parts promoted to the multi-part type of the layer."""
    target = layer.geometry_type
    if target not in _MULTI:
        return geoms
    singles = shapely.get_type_id(geoms) == _TYPE_IDS[target.single]
    if singles.any():
        geoms = geoms.copy()
        geoms[singles] = [_MULTI[target]([g]) for g in geoms[singles]]
    return geoms


_TYPE_IDS = {
    GeometryType.POINT: 0,
    GeometryType.LINESTRING: 1,
    GeometryType.POLYGON: 3,
    GeometryType.MULTIPOINT: 4,
    GeometryType.MULTILINESTRING: 5,
    GeometryType.MULTIPOLYGON: 6,
}


def _keep_dimension(geom: BaseGeometry, dimension: int) -> BaseGeometry:
    """make_valid may return a collection of mixed parts; keep those of the original dimension."""
    if geom.geom_type != "GeometryCollection":
        return geom
    parts = [g for g in shapely.get_parts(geom) if shapely.get_dimensions(g) == dimension]
    return shapely.union_all(parts)


def validate_columns(
    layer: LayerDefinition,
    columns: Mapping[str, pa.Array | pa.ChunkedArray | list[Any]],
    *,
    first_row: int,
) -> dict[str, list[Any]]:
    """Coerce each column to its field's type; enforce ``required`` and ``choices``."""
    out: dict[str, list[Any]] = {}
    for field in layer.fields:
        if field.name not in columns:
            if field.required:
                raise InvalidInputError(f"required field '{field.name}' is missing", field=field.name)
            length = len(next(iter(columns.values()))) if columns else 0
            out[field.name] = [None] * length
            continue
        values = _coerce(field, columns[field.name], first_row)
        _check_constraints(field, values, first_row)
        out[field.name] = values
    return out


def _check_constraints(field: FieldDefinition, values: list[Any], first_row: int) -> None:
    if field.required and None in values:
        i = values.index(None)
        raise InvalidInputError(
            f"feature {first_row + i}: field '{field.name}' is required", row=first_row + i, field=field.name
        )
    if field.choices is not None:
        allowed = set(field.choices)
        for i, value in enumerate(values):
            if value is not None and value not in allowed:
                raise InvalidInputError(
                    f"feature {first_row + i}: field '{field.name}' must be one of "
                    f"{', '.join(field.choices)}; got {value!r}",
                    row=first_row + i,
                    field=field.name,
                )


def _coerce(field: FieldDefinition, column: pa.Array | pa.ChunkedArray | list[Any], first_row: int) -> list[Any]:
    if isinstance(column, list):
        return _parse_each(field, column, _STRICT_PARSERS[field.type], first_row)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_null(column.type):
        return [None] * len(column)
    if isinstance(column, pa.ExtensionArray):
        # GDAL marks a GeoJSON property of mixed types (5 here, "abc" there) as JSON: each value as text.
        column = column.storage
    kind = column.type
    if field.type is FieldType.STRING:
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            _check_text(field, column, first_row)
            return column.to_pylist()
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return pc.cast(column, pa.string()).to_pylist()
        return _mismatch(field, column, first_row)
    if field.type in (FieldType.INTEGER, FieldType.NUMBER):
        return _coerce_number(field, column, first_row)
    parse = _PARSERS[field.type]
    if _arrow_matches(field.type, kind):
        return [parse(v) for v in column.to_pylist()] if field.type is FieldType.DATETIME else column.to_pylist()
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or (field.type is FieldType.BOOLEAN and pa.types.is_integer(kind))
    ):
        return _parse_each(field, column.to_pylist(), parse, first_row)
    if field.type is FieldType.DATETIME and pa.types.is_date(kind):
        return [None if v is None else datetime(v.year, v.month, v.day, tzinfo=UTC) for v in column.to_pylist()]
    return _mismatch(field, column, first_row)


def _arrow_matches(field_type: FieldType, kind: pa.DataType) -> bool:
    return {
        FieldType.BOOLEAN: pa.types.is_boolean,
        FieldType.DATE: pa.types.is_date,
        FieldType.DATETIME: pa.types.is_timestamp,
    }[field_type](kind)


def _coerce_number(field: FieldDefinition, column: pa.Array, first_row: int) -> list[Any]:
    kind = column.type
    target = pa.int64() if field.type is FieldType.INTEGER else pa.float64()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        parse: Callable[[Any], Any] = _parse_integer if field.type is FieldType.INTEGER else _parse_number
        return _parse_each(field, column.to_pylist(), parse, first_row)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        return _mismatch(field, column, first_row)
    if field.type is FieldType.INTEGER and not pa.types.is_integer(kind):
        fractional = pc.fill_null(pc.not_equal(column, pc.floor(column)), False).to_numpy(zero_copy_only=False)
        if fractional.any():
            i = int(np.argmax(fractional))
            raise InvalidInputError(
                f"feature {first_row + i}: field '{field.name}' expects an integer, got {column[i].as_py()!r}",
                row=first_row + i,
                field=field.name,
            )
    return pc.cast(column, target).to_pylist()


def _parse_each(field: FieldDefinition, values: list[Any], parse: Callable[[Any], Any], first_row: int) -> list[Any]:
    out: list[Any] = []
    for i, value in enumerate(values):
        if value is None or (isinstance(value, str) and value.strip() == "" and parse is not _strict_string):
            out.append(None)
            continue
        try:
            out.append(parse(value))
        except (ValueError, TypeError, OverflowError):
            raise InvalidInputError(
                f"feature {first_row + i}: field '{field.name}' expects {_DESCRIPTIONS[field.type]}, got {value!r}",
                row=first_row + i,
                field=field.name,
            ) from None
    return out


#: Text no database takes: PostgreSQL refuses NUL in text, and a lone surrogate is not UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _check_text(field: FieldDefinition, column: pa.Array, first_row: int) -> None:
    """Arrow text is UTF-8 already (no surrogates); a NUL is refused here, named, on both databases."""
    if pc.any(pc.match_substring(column, "\x00")).as_py():
        i = int(np.argmax(pc.fill_null(pc.match_substring(column, "\x00"), False).to_numpy(zero_copy_only=False)))
        raise InvalidInputError(
            f"feature {first_row + i}: field '{field.name}' holds a NUL character (\\u0000), which text may not",
            row=first_row + i,
            field=field.name,
        )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    if _UNSTORABLE.search(value):
        raise ValueError
    return value


def _mismatch(field: FieldDefinition, column: pa.Array, first_row: int) -> list[Any]:
    i = next((i for i, v in enumerate(column.to_pylist()) if v is not None), 0)
    raise InvalidInputError(
        f"feature {first_row + i}: field '{field.name}' expects {_DESCRIPTIONS[field.type]}, "
        f"got {column[i].as_py()!r} ({column.type})",
        row=first_row + i,
        field=field.name,
    )


def _parse_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    result = int(value) if not isinstance(value, str) else int(value.strip())
    if not -(2**63) <= result < 2**63:
        raise OverflowError
    return result


def _parse_number(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    result = float(value.strip().replace(",", ".") if isinstance(value, str) else value)
    if not np.isfinite(result):
        raise ValueError
    return result


def _parse_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value).strip())


def _parse_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _strict_string(value: Any) -> str:
    return _text(value)


def _strict_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _strict_number(value: Any) -> float:
    if isinstance(value, str):
        raise TypeError
    return _parse_number(value)


def _strict_integer(value: Any) -> int:
    if isinstance(value, str):
        raise TypeError
    return _parse_integer(value)


_PARSERS: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.BOOLEAN: _parse_boolean,
    FieldType.DATE: _parse_date,
    FieldType.DATETIME: _parse_datetime,
}
# Values that came as JSON keep their JSON types: "5" is not an integer there.
_STRICT_PARSERS: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.STRING: _strict_string,
    FieldType.INTEGER: _strict_integer,
    FieldType.NUMBER: _strict_number,
    FieldType.BOOLEAN: _strict_boolean,
    FieldType.DATE: _parse_date,
    FieldType.DATETIME: _parse_datetime,
}
_DESCRIPTIONS = {
    FieldType.STRING: "text (no NUL, valid Unicode)",
    FieldType.INTEGER: "an integer",
    FieldType.NUMBER: "a number",
    FieldType.BOOLEAN: "true or false",
    FieldType.DATE: "a date (YYYY-MM-DD)",
    FieldType.DATETIME: "an ISO-8601 date-time",
}


_LENIENT_PARSERS: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.STRING: lambda value: _text(str(value)),
    FieldType.INTEGER: _parse_integer,
    FieldType.NUMBER: _parse_number,
    **_PARSERS,
}


def coerce_value(field: FieldDefinition, value: Any) -> Any:
    """One value for a filter on ``field``, parsed leniently from text as query parameters arrive."""
    if value is None:
        return None
    parse = _LENIENT_PARSERS[field.type]
    try:
        return parse(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(
            f"field '{field.name}' expects {_DESCRIPTIONS[field.type]}, got {value!r}", field=field.name
        ) from None
