"""A page of features as FlatGeobuf (``f=fgb``), written by GDAL through pyogrio.

FlatGeobuf's header holds the feature count, so a file is written whole; a page
is at most 10,000 features, which bounds the memory it takes. The spatial
index is left out so features keep the page's order (the keyset order the
``next`` link continues). Each feature's id goes in an ``fid`` field, a name
no layer field may take. Coordinates are in GIS order (east first) even for
latitude-first CRSs, as files are.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import shapely
from pyogrio import raw

from layers.features import Feature
from layers.model import FieldType, LayerDefinition
from ogc.crs import CRS84, northing_first, reproject

FLATGEOBUF = "application/flatgeobuf"


def flatgeobuf(layer: LayerDefinition, features: Sequence[Feature], names: Sequence[str], output_crs: str) -> bytes:
    geometries = reproject([f.geometry for f in features], output_crs)
    if northing_first(output_crs):  # files keep GIS order (east first), as GDAL reads and writes them
        geometries = list(shapely.transform(np.asarray(geometries, dtype=object), lambda xy: xy[:, ::-1]))
    columns: list[np.ndarray] = [np.array([f.id for f in features], dtype=np.int64)]
    masks: list[np.ndarray | None] = [None]
    for name in names:
        field = layer.field(name)
        assert field is not None
        values = [f.properties.get(name) for f in features]
        column, mask = _column(field.type, values)
        columns.append(column)
        masks.append(mask)
    target = io.BytesIO()
    raw.write(
        target,
        geometry=np.array(shapely.to_wkb(geometries, output_dimension=2), dtype=object),
        field_data=columns,
        fields=["fid", *names],
        field_mask=masks,
        layer=layer.id,
        driver="FlatGeobuf",
        geometry_type=_geometry_type(layer, geometries),
        crs="OGC:CRS84" if output_crs == CRS84 else f"EPSG:{output_crs.rsplit('/', 1)[1]}",
        layer_options={"SPATIAL_INDEX": "NO"},
        promote_to_multi=layer.geometry_type.value.startswith("Multi"),
    )
    return target.getvalue()


def _column(kind: FieldType, values: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Values typed for GDAL, with a mask of NULLs where the type has no NULL of its own."""
    missing = np.array([v is None for v in values], dtype=bool)
    if kind is FieldType.STRING:
        return np.array(values, dtype=object), None
    if kind is FieldType.NUMBER:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64), None
    if kind is FieldType.INTEGER:
        return np.array([0 if v is None else v for v in values], dtype=np.int64), missing
    if kind is FieldType.BOOLEAN:
        return np.array([bool(v) for v in values], dtype=bool), missing
    if kind is FieldType.DATE:
        return np.array(
            [None if v is None else np.datetime64(_day(v), "D") for v in values], dtype="datetime64[D]"
        ), None
    # Date-times in UTC, as stored; FlatGeobuf keeps them as ISO 8601 text.
    stamps = [None if v is None else np.datetime64(_utc(v), "ms") for v in values]
    return np.array(stamps, dtype="datetime64[ms]"), None


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _utc(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _geometry_type(layer: LayerDefinition, geometries: Sequence[shapely.Geometry]) -> str:
    declared = layer.geometry_type.value
    if declared.lower() != "geometry":
        return declared
    kinds = {g.geom_type for g in geometries}
    return kinds.pop() if len(kinds) == 1 else "Unknown"
