"""Vector tiles as plain values, and Mapbox Vector Tile encoding in Python.

A tile is asked for by its bounds in Web Mercator (the ``tiles`` package gets
them from morecantile). The store finds the layer's features in it; the
backend encodes them: PostGIS with ``ST_AsMVTGeom``/``ST_AsMVT`` in one
query, SpatiaLite through :func:`encode_features` here. Both clip to the same
buffer, snap to the same grid and aggregate the same way, so both backends give
the same features for the same tile.

A tile is bounded: when more than :data:`MAX_FEATURES` features fall in it, or
its encoding passes :data:`MAX_BYTES`, it is aggregated instead — every
feature counted once, in the grid cell (:data:`AGGREGATE_GRID` cells a side)
that holds the centre of its bounding box, and each cell drawn as one point at
the mean position of its features, with the count in ``_count``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import mapbox_vector_tile
import numpy as np
import pyarrow as pa
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

from layers.model import FieldType
from layers.mvtpoints import encode_points, typed

#: Most features a tile carries before it is aggregated.
MAX_FEATURES = 10_000
#: Largest encoded layer before it is aggregated.
MAX_BYTES = 512 * 1024
#: Aggregation cells per tile side.
AGGREGATE_GRID = 64
#: The property that holds an aggregate's feature count.
COUNT_PROPERTY = "_count"

_TO_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)
_TO_LONLAT = Transformer.from_crs(3857, 4326, always_xy=True)


@dataclass(frozen=True, slots=True)
class TileSpec:
    """One tile of the Web Mercator grid: its bounds in EPSG:3857 metres and its encoding grid."""

    z: int
    x: int
    y: int
    west: float
    south: float
    east: float
    north: float
    extent: int = 4096
    buffer: int = 64

    @property
    def cell(self) -> float:
        """Width of one aggregation cell in metres."""
        return (self.east - self.west) / AGGREGATE_GRID

    def lonlat_box(self, *, buffered: bool = True) -> tuple[float, float, float, float]:
        """(west, south, east, north) in EPSG:4326, with the encoding buffer or without.

        Web Mercator maps meridians and parallels to straight lines, so a
        Mercator rectangle is exactly a lon/lat rectangle.
        """
        margin = (self.east - self.west) * self.buffer / self.extent if buffered else 0.0
        limit = 20037508.342789244
        west, south = _TO_LONLAT.transform(max(self.west - margin, -limit), max(self.south - margin, -limit))
        east, north = _TO_LONLAT.transform(min(self.east + margin, limit), min(self.north + margin, limit))
        return (west, south, east, north)


@dataclass(frozen=True, slots=True)
class VectorTile:
    """One layer of a tile, encoded (no compression). Empty tiles have ``data == b""``."""

    layer: str
    data: bytes
    features: int
    aggregated: bool


@dataclass(frozen=True, slots=True)
class PointColumns:
    """A point tile's candidates, column by column: ids, EPSG:4326 positions, then each property
    as (name, type, values); values as a list (NULL as None) or an Arrow array."""

    fids: Sequence[int] | NDArray[np.int64]
    lon: Sequence[float] | NDArray[np.float64]
    lat: Sequence[float] | NDArray[np.float64]
    properties: Sequence[tuple[str, FieldType, Sequence[Any] | pa.Array]]


def mvt_value(value: Any) -> Any:
    """A property as both backends put it in a tile: timestamps as ISO 8601 UTC text, dates as ISO dates."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _to_tile(spec: TileSpec, coords: NDArray[np.float64]) -> NDArray[np.float64]:
    """Lon/lat coordinates to tile units, y up (the encoder turns it down)."""
    x, y = _TO_MERCATOR.transform(coords[:, 0], coords[:, 1])
    scale = spec.extent / (spec.east - spec.west)
    return np.column_stack(((np.asarray(x) - spec.west) * scale, (np.asarray(y) - spec.south) * scale))


def encode_features(
    name: str,
    spec: TileSpec,
    fids: Sequence[int],
    geometries: NDArray[Any],
    properties: Sequence[dict[str, Any]],
) -> VectorTile:
    """Clip, snap and encode features given in EPSG:4326, as ``ST_AsMVTGeom`` + ``ST_AsMVT`` do."""
    if len(fids) == 0:
        return VectorTile(name, b"", 0, False)
    # As ST_AsMVTGeom: to tile units, snap to the integer grid, clip to the buffer, snap what the clip cut.
    in_tile = shapely.set_precision(shapely.transform(geometries, lambda coords: _to_tile(spec, coords)), 1.0)
    low, high = -spec.buffer, spec.extent + spec.buffer
    clipped = shapely.clip_by_rect(in_tile, low, low, high, high)
    # Points on the buffer's edge stay, as in PostGIS (GEOS's rectangle clip drops them).
    points = np.isin(shapely.get_type_id(in_tile), (0, 4))
    clipped[points] = shapely.intersection(in_tile[points], shapely.box(low, low, high, high))
    snapped = shapely.set_precision(clipped, 1.0)
    keep = ~shapely.is_empty(snapped)
    features = [
        {
            "id": int(fid),
            "geometry": geom,
            "properties": {k: mvt_value(v) for k, v in props.items() if v is not None},
        }
        for fid, geom, props, kept in zip(fids, snapped, properties, keep, strict=True)
        if kept
    ]
    if not features:
        return VectorTile(name, b"", 0, False)
    data = mapbox_vector_tile.encode(
        [{"name": name, "features": features}],
        default_options={"extents": spec.extent, "y_coord_down": False, "check_winding_order": True},
    )
    return VectorTile(name, data, len(features), False)


def encode_point_rows(name: str, spec: TileSpec, points: PointColumns) -> VectorTile:
    """Points given in EPSG:4326, as ``ST_AsMVTGeom`` + ``ST_AsMVT`` put them in a tile, written by
    ``layers.mvtpoints``: snapped to the grid (``rint``), those then within the buffer (edges included)."""
    lon, lat = np.asarray(points.lon, dtype=np.float64), np.asarray(points.lat, dtype=np.float64)
    x, y = (np.asarray(v) for v in _TO_MERCATOR.transform(lon, lat))
    scale = spec.extent / (spec.east - spec.west)
    tx, ty = np.rint((x - spec.west) * scale), np.rint((spec.north - y) * scale)
    low, high = -spec.buffer, spec.extent + spec.buffer
    keep = (tx >= low) & (tx <= high) & (ty >= low) & (ty <= high)
    if not keep.any():
        return VectorTile(name, b"", 0, False)
    fids = np.asarray(points.fids, dtype=np.int64)
    columns = [(key, kind, typed(values, kind)) for key, kind, values in points.properties]
    if not keep.all():
        fids = fids[keep]
        mask = pa.array(keep)
        columns = [(key, kind, values.filter(mask)) for key, kind, values in columns]
    data = encode_points(name, spec.extent, fids, tx[keep].astype(np.int64), ty[keep].astype(np.int64), columns)
    return VectorTile(name, data, int(keep.sum()), False)


def representative_points(geometries: NDArray[Any]) -> NDArray[np.float64]:
    """The centre of each geometry's bounding box, lon/lat: where aggregation counts it."""
    bounds = shapely.bounds(geometries)
    return np.column_stack(((bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2))


def cell_edges(spec: TileSpec) -> tuple[list[float], list[float]]:
    """The aggregation grid's edges in lon/lat: longitudes west to east, latitudes north to south."""
    steps = np.arange(AGGREGATE_GRID + 1) * spec.cell
    lons, _ = _TO_LONLAT.transform(spec.west + steps, np.full(len(steps), spec.north))
    _, lats = _TO_LONLAT.transform(np.full(len(steps), spec.west), spec.north - steps)
    return [float(v) for v in lons], [float(v) for v in lats]


def encode_aggregates(name: str, spec: TileSpec, lonlat: NDArray[np.float64]) -> VectorTile:
    """Count points (lon/lat) per grid cell of the tile; one point feature per non-empty cell."""
    if len(lonlat) == 0:
        return VectorTile(name, b"", 0, True)
    mx, my = (np.asarray(v) for v in _TO_MERCATOR.transform(lonlat[:, 0], lonlat[:, 1]))
    inside = (mx >= spec.west) & (mx < spec.east) & (my > spec.south) & (my <= spec.north)
    mx, my, lonlat = mx[inside], my[inside], lonlat[inside]
    if len(mx) == 0:
        return VectorTile(name, b"", 0, True)
    cx = np.floor((mx - spec.west) / spec.cell).astype(np.int64)
    cy = np.floor((spec.north - my) / spec.cell).astype(np.int64)
    cells = cy * AGGREGATE_GRID + cx
    ids, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    # The mean position in lon/lat, then projected, as PostGIS computes it.
    mean_lon = np.bincount(inverse, weights=lonlat[:, 0]) / counts
    mean_lat = np.bincount(inverse, weights=lonlat[:, 1]) / counts
    mean_x, mean_y = (np.asarray(v) for v in _TO_MERCATOR.transform(mean_lon, mean_lat))
    scale = spec.extent / (spec.east - spec.west)
    tx = np.rint((mean_x - spec.west) * scale)
    ty = np.rint((mean_y - spec.south) * scale)
    features = [
        {"id": int(cell) + 1, "geometry": shapely.Point(px, py), "properties": {COUNT_PROPERTY: int(n)}}
        for cell, px, py, n in zip(ids, tx, ty, counts, strict=True)
    ]
    data = mapbox_vector_tile.encode(
        [{"name": name, "features": features}],
        default_options={"extents": spec.extent, "y_coord_down": False},
    )
    return VectorTile(name, data, len(features), True)
