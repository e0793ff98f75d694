"""Ward polygons that tile the land, and point-in-ward lookup.

Wards are Voronoi cells of hand-placed seed points (several per ward, so a
ward can follow the shape of the coast), dissolved per ward and clipped to
the land polygon. Cells are computed in lon/lat scaled by cos(latitude), so
they look like Voronoi cells on a map, while the clip to land happens in
plain lon/lat to keep the coastline vertices exactly those of the land file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from twin.samplecity.inputs import WardSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WardIndex:
    """Finished ward polygons (lon/lat) with the attributes addresses need."""

    specs: tuple[WardSpec, ...]
    polygons: tuple[shapely.Geometry, ...]  # MultiPolygon, lon/lat

    @property
    def names(self) -> np.ndarray:
        return np.array([w.name for w in self.specs], dtype=object)

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Index of the ward strictly containing each point, -1 where none does.

        Strict containment is what a user's own point-in-polygon check will
        do, so a point is only published with a ward when that check agrees.
        """
        result = np.full(len(lon), -1, dtype=np.int64)
        for i, polygon in enumerate(self.polygons):
            inside = shapely.contains_xy(polygon, lon, lat)
            result[inside & (result < 0)] = i
        return result

    def nearest(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Index of the nearest ward, used to name features at sea after the coast they face."""
        points = shapely.points(lon, lat)
        distances = np.column_stack([shapely.distance(points, poly) for poly in self.polygons])
        return np.argmin(distances, axis=1)

    def address_label(self, index: np.ndarray) -> np.ndarray:
        """'phường Lê Lợi, Quy Nhơn' for each ward index, as written in Vietnamese addresses."""
        labels = np.array([f"{w.ward_type.lower()} {w.name}, {w.district}" for w in self.specs], dtype=object)
        return labels[index]


def build_wards(specs: Sequence[WardSpec], land: shapely.Geometry) -> WardIndex:
    seeds = [(lon, lat, i) for i, spec in enumerate(specs) for lon, lat in spec.seeds]
    lon = np.array([s[0] for s in seeds])
    lat = np.array([s[1] for s in seeds])
    owner = np.array([s[2] for s in seeds])
    kx = float(np.cos(np.radians(lat.mean())))

    minx, miny, maxx, maxy = land.bounds
    frame = shapely.box(minx * kx - 1.0, miny - 1.0, maxx * kx + 1.0, maxy + 1.0)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(np.column_stack([lon * kx, lat])), extend_to=frame)
    )
    seed_points = shapely.points(lon * kx, lat)
    cell_owner = np.full(len(cells), -1)
    for j, cell in enumerate(cells):
        cell_owner[j] = owner[np.flatnonzero(shapely.contains(cell, seed_points))[0]]

    unscale = np.array([1.0 / kx, 1.0])
    polygons: list[shapely.Geometry] = []
    for i in range(len(specs)):
        merged = shapely.union_all(cells[cell_owner == i])
        merged = shapely.transform(merged, lambda xy: xy * unscale)
        polygons.append(shapely.intersection(merged, land))
    polygons = _reassign_orphans(polygons, specs)
    multi = tuple(_as_multipolygon(p) for p in polygons)
    logger.debug("built %d wards", len(multi))
    return WardIndex(specs=tuple(specs), polygons=multi)


def _reassign_orphans(polygons: list[shapely.Geometry], specs: Sequence[WardSpec]) -> list[shapely.Geometry]:
    """Give each detached piece without a seed (e.g. across the lagoon) to the neighbour it borders most.

    A Voronoi cell can reach across water and pick up a sliver of the far
    shore; a ward split over the lagoon would look wrong on the map.
    """
    polygons = list(polygons)
    for i, spec in enumerate(specs):
        parts = shapely.get_parts(polygons[i])
        if len(parts) <= 1:
            continue
        seeds = shapely.points(np.array(spec.seeds))
        keep = [p for p in parts if shapely.intersects(p, seeds).any()]
        orphans = [p for p in parts if not shapely.intersects(p, seeds).any()]
        if not keep or not orphans:
            continue
        polygons[i] = shapely.union_all(keep)
        for orphan in orphans:
            shared = np.array(
                [
                    shapely.length(shapely.intersection(orphan.boundary, other.boundary)) if j != i else -1.0
                    for j, other in enumerate(polygons)
                ]
            )
            target = int(np.argmax(shared)) if shared.max() > 0 else i
            polygons[target] = shapely.union_all([polygons[target], orphan])
    return polygons


def _as_multipolygon(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]
    return shapely.MultiPolygon(parts)
