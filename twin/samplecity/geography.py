"""Projection, geodesic measures and the derived water/land geometry of the sample city.

Street grids, offsets and spacings are laid out in metres (UTM zone 49N,
which covers Bình Định) and only the finished features are turned back into
lon/lat. Everything that ends up on land is generated against a land polygon
shrunk by a small margin, so the round trip UTM → lon/lat → 7 decimals can
never push a feature across the coastline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pyproj
import shapely

from twin.samplecity.inputs import Geography, NamedLine

logger = logging.getLogger(__name__)

UTM_CRS = "EPSG:32649"
LONLAT_DECIMALS = 7
LAND_MARGIN_M = 1.0
GEOD = pyproj.Geod(ellps="WGS84")

GeometryOrArray = TypeVar("GeometryOrArray", np.ndarray, shapely.Geometry)

_TO_UTM = pyproj.Transformer.from_crs("EPSG:4326", UTM_CRS, always_xy=True)
_TO_LONLAT = pyproj.Transformer.from_crs(UTM_CRS, "EPSG:4326", always_xy=True)


def xy_to_utm(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _TO_UTM.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x), np.asarray(y)


def xy_to_lonlat(x: np.ndarray, y: np.ndarray, rounded: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rounded to 7 decimals (≈1 cm) so the published coordinates carry no false precision."""
    lon, lat = _TO_LONLAT.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    lon, lat = np.asarray(lon), np.asarray(lat)
    if rounded:
        return np.round(lon, LONLAT_DECIMALS), np.round(lat, LONLAT_DECIMALS)
    return lon, lat


def geoms_to_utm(geoms: GeometryOrArray) -> GeometryOrArray:
    return shapely.transform(geoms, lambda xy: np.column_stack(xy_to_utm(xy[:, 0], xy[:, 1])))


def geoms_to_lonlat(geoms: GeometryOrArray, rounded: bool = True) -> GeometryOrArray:
    return shapely.transform(geoms, lambda xy: np.column_stack(xy_to_lonlat(xy[:, 0], xy[:, 1], rounded=rounded)))


def geodesic_areas(polygons: Sequence[shapely.Geometry] | np.ndarray) -> np.ndarray:
    """Areas on the WGS84 ellipsoid; a projected area would be off by the UTM scale factor."""
    return np.array([abs(GEOD.geometry_area_perimeter(poly)[0]) for poly in polygons], dtype=float)


def geodesic_track_lengths(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Length of each row of a (n, m) vertex array, summed over its m-1 legs, in metres."""
    _, _, dist = GEOD.inv(lon[:, :-1], lat[:, :-1], lon[:, 1:], lat[:, 1:])
    return np.asarray(dist).reshape(lon.shape[0], -1).sum(axis=1)


def bearing_of_line(points_lonlat: Sequence[tuple[float, float]]) -> float:
    """Principal direction of a shoreline, as an azimuth in degrees within [0, 180).

    The principal axis (not the first-to-last chord) is used so that a
    wiggly, hand-drawn shore still yields a stable grid orientation.
    """
    lon = np.array([p[0] for p in points_lonlat])
    lat = np.array([p[1] for p in points_lonlat])
    x, y = xy_to_utm(lon, lat)
    coords = np.column_stack([x - x.mean(), y - y.mean()])
    _, _, vt = np.linalg.svd(coords, full_matrices=False)
    dx, dy = vt[0]
    return float(np.degrees(np.arctan2(dx, dy)) % 180.0)


@dataclass(frozen=True)
class CityGeography:
    """The input geography plus the metric versions every generator step needs."""

    inputs: Geography
    land_utm: shapely.Geometry
    land_inner_utm: shapely.Geometry  # land shrunk by LAND_MARGIN_M
    lagoon_utm: shapely.Geometry
    sea_utm: shapely.Geometry
    water_utm: shapely.Geometry  # sea ∪ lagoon ∪ river beds, where drains discharge
    hills_utm: shapely.Geometry
    coastline_utm: shapely.Geometry  # land boundary facing the sea
    lagoon_shore_utm: shapely.Geometry  # land boundary facing the lagoon
    rivers_utm: tuple[tuple[str, shapely.Geometry], ...]  # river parts on (shrunken) land

    @property
    def land(self) -> shapely.Geometry:
        return self.inputs.land

    @property
    def vessel_area(self) -> shapely.Geometry:
        return self.inputs.vessel_area


def derive_geography(geo: Geography) -> CityGeography:
    """Derive the sea and the shorelines once, so later steps share one definition of water."""
    land = geoms_to_utm(geo.land)
    lagoon = shapely.difference(geoms_to_utm(geo.lagoon.polygon), land)
    sea = shapely.difference(shapely.difference(geoms_to_utm(geo.sea_outline), land), lagoon)
    land_inner = shapely.buffer(land, -LAND_MARGIN_M)
    rivers = tuple((river.name, shapely.intersection(geoms_to_utm(river.line), land_inner)) for river in geo.rivers)
    river_beds = shapely.union_all([shapely.buffer(line, 15.0) for _, line in rivers])
    boundary = shapely.boundary(land)
    hills = shapely.intersection(shapely.union_all([geoms_to_utm(h.polygon) for h in geo.hills]), land)
    city = CityGeography(
        inputs=geo,
        land_utm=land,
        land_inner_utm=land_inner,
        lagoon_utm=lagoon,
        sea_utm=sea,
        water_utm=shapely.union_all([sea, lagoon, river_beds]),
        hills_utm=hills,
        coastline_utm=_shore(boundary, sea),
        lagoon_shore_utm=_shore(boundary, lagoon),
        rivers_utm=rivers,
    )
    for geom in (city.land_inner_utm, city.water_utm, city.hills_utm):
        shapely.prepare(geom)
    logger.debug(
        "land %.1f km², coastline %.1f km, lagoon shore %.1f km",
        land.area / 1e6,
        city.coastline_utm.length / 1e3,
        city.lagoon_shore_utm.length / 1e3,
    )
    return city


def _shore(boundary: shapely.Geometry, water: shapely.Geometry) -> shapely.Geometry:
    """The part of the land boundary that touches a water body (not the map's frame)."""
    shore = shapely.intersection(boundary, shapely.buffer(water, 0.5))
    return shapely.line_merge(shapely.union_all(shapely.get_parts(shore)))


def arterial_lines_utm(arterials: Sequence[NamedLine], land_inner: shapely.Geometry) -> list[shapely.Geometry]:
    """Arterials clipped to the shrunken land, so a road never ends in the sea."""
    return [shapely.intersection(geoms_to_utm(a.line), land_inner) for a in arterials]


def sample_along(
    lines: np.ndarray, distances: np.ndarray, offsets: np.ndarray, step: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Points at ``distances`` along ``lines``, pushed sideways by ``offsets`` (left is positive).

    The local direction comes from a short look-ahead so that bends of
    hand-drawn arterials are followed, not just the straight grid streets.
    """
    lengths = shapely.length(lines)
    d = np.clip(distances, 0.0, lengths)
    ahead = np.minimum(d + step, lengths)
    behind = np.maximum(ahead - step, 0.0)
    p0 = shapely.get_coordinates(shapely.line_interpolate_point(lines, behind))
    p1 = shapely.get_coordinates(shapely.line_interpolate_point(lines, ahead))
    base = shapely.get_coordinates(shapely.line_interpolate_point(lines, d))
    tangent = p1 - p0
    norm = np.hypot(tangent[:, 0], tangent[:, 1])
    norm[norm == 0] = 1.0
    tangent /= norm[:, None]
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    shifted = base + normal * np.asarray(offsets, dtype=float)[:, None]
    return shifted[:, 0], shifted[:, 1]
