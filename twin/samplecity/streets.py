"""Street network: one rotated grid per district, plus the hand-drawn arterials.

Each district gets a grid aligned with the shore it faces (the principal
direction of a shoreline drawn in the geography file). "Long" streets run
along that shore, "cross" streets run inland. The grid is clipped to the
district, the land and away from hills, so streets follow the coast instead
of ignoring it. Blocks between streets are returned as rows of frontage that
the parcel generator fills; building parcels from the same grid is what
guarantees that parcels never overlap each other or a street.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from twin.samplecity.geography import (
    CityGeography,
    arterial_lines_utm,
    bearing_of_line,
    geoms_to_utm,
)
from twin.samplecity.inputs import District, RoadClass, StreetName

logger = logging.getLogger(__name__)

CLASS_RANK = {"primary": 3, "secondary": 2, "residential": 1}
MIN_PIECE_M = 40.0


@dataclass(frozen=True)
class GridFrame:
    """A rotated local frame: u runs along the shore (azimuth ``bearing_deg``), v across it."""

    origin_x: float
    origin_y: float
    bearing_deg: float

    @property
    def along(self) -> np.ndarray:
        b = np.radians(self.bearing_deg)
        return np.array([np.sin(b), np.cos(b)])

    @property
    def across(self) -> np.ndarray:
        b = np.radians(self.bearing_deg)
        return np.array([np.cos(b), -np.sin(b)])

    def to_utm(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, c = self.along, self.across
        return self.origin_x + u * a[0] + v * c[0], self.origin_y + u * a[1] + v * c[1]

    def to_local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = np.asarray(x) - self.origin_x, np.asarray(y) - self.origin_y
        a, c = self.along, self.across
        return dx * a[0] + dy * a[1], dx * c[0] + dy * c[1]


@dataclass(frozen=True)
class StreetTable:
    """One row per street piece (a LineString in UTM)."""

    geometry: np.ndarray
    name: np.ndarray
    road_class: np.ndarray
    width_m: np.ndarray
    lanes: np.ndarray
    lit: np.ndarray
    rural: np.ndarray
    district: np.ndarray  # index into the geography's districts, -1 for arterials

    def __len__(self) -> int:
        return len(self.geometry)


@dataclass(frozen=True)
class IntersectionTable:
    x: np.ndarray  # UTM
    y: np.ndarray
    name_a: np.ndarray
    name_b: np.ndarray
    rank: np.ndarray  # sum of the two streets' class ranks

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class BlockRows:
    """Strips of frontage between a street and the middle of its block, in grid-local metres."""

    frame_index: np.ndarray
    block_id: np.ndarray
    u_lo: np.ndarray
    u_hi: np.ndarray
    v_front: np.ndarray
    v_back: np.ndarray
    fronts_primary: np.ndarray
    special: np.ndarray  # the whole block is one institutional parcel
    rural: np.ndarray

    def __len__(self) -> int:
        return len(self.u_lo)


@dataclass(frozen=True)
class StreetNetwork:
    streets: StreetTable
    intersections: IntersectionTable
    rows: BlockRows
    frames: tuple[GridFrame, ...]
    regions_utm: tuple[shapely.Geometry, ...]  # where each district may hold parcels
    nobuild_utm: shapely.Geometry  # arterial corridors and river banks


@dataclass
class _Lines:
    """Grid lines of one family in one district (arrays indexed by line)."""

    coord: np.ndarray
    road_class: np.ndarray
    width: np.ndarray
    geometry: np.ndarray  # clipped to the district region, may be empty or multi-part
    name: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))


@dataclass
class _DistrictGrid:
    district: District
    frame: GridFrame
    region: shapely.Geometry
    long: _Lines  # constant v, run along u
    cross: _Lines  # constant u, run along v


def build_network(
    city: CityGeography,
    street_names: Sequence[StreetName],
    road_classes: dict[str, RoadClass],
    rng: np.random.Generator,
) -> StreetNetwork:
    regions = _district_regions(city)
    grids = [
        _district_grid(district, region, road_classes, rng) for district, region in zip(city.inputs.districts, regions)
    ]
    arterial_names = {a.name for a in city.inputs.arterials}
    _name_grid_lines(grids, [s for s in street_names if s.name not in arterial_names], rng)
    streets, nobuild = _street_table(grids, city, road_classes, rng)
    for region in regions:
        shapely.prepare(region)
    shapely.prepare(nobuild)
    network = StreetNetwork(
        streets=streets,
        intersections=_intersections(grids),
        rows=_block_rows(grids, rng),
        frames=tuple(g.frame for g in grids),
        regions_utm=tuple(shapely.buffer(r, -1.0) for r in regions),
        nobuild_utm=nobuild,
    )
    logger.debug(
        "street network: %d pieces, %.0f km, %d intersections, %d frontage rows",
        len(streets),
        shapely.length(streets.geometry).sum() / 1e3,
        len(network.intersections),
        len(network.rows),
    )
    return network


def _district_regions(city: CityGeography) -> list[shapely.Geometry]:
    """District polygons on land, off the hills; an earlier district wins where two overlap."""
    taken = city.hills_utm
    regions = []
    for district in city.inputs.districts:
        region = shapely.intersection(geoms_to_utm(district.polygon), city.land_inner_utm)
        region = shapely.difference(region, taken)
        regions.append(region)
        taken = shapely.union(taken, region)
    return regions


def _district_grid(
    district: District, region: shapely.Geometry, classes: dict[str, RoadClass], rng: np.random.Generator
) -> _DistrictGrid:
    bearing = bearing_of_line(district.align_line) if district.align_line else float(district.bearing_deg or 0.0)
    centroid = shapely.centroid(region)
    frame = GridFrame(float(centroid.x), float(centroid.y), bearing)
    xy = shapely.get_coordinates(region)
    u, v = frame.to_local(xy[:, 0], xy[:, 1])
    v_coords = _line_positions(float(v.min()), float(v.max()), district.depth_spacing_m, rng)
    u_coords = _line_positions(float(u.min()), float(u.max()), district.length_spacing_m, rng)
    long = _lines(district, v_coords, classes, rng)
    cross = _lines(district, u_coords, classes, rng)
    pad = 5.0
    long.geometry = _clip(
        frame, region, np.full_like(v_coords, u.min() - pad), v_coords, np.full_like(v_coords, u.max() + pad), v_coords
    )
    cross.geometry = _clip(
        frame, region, u_coords, np.full_like(u_coords, v.min() - pad), u_coords, np.full_like(u_coords, v.max() + pad)
    )
    return _DistrictGrid(district, frame, region, long, cross)


def _line_positions(lo: float, hi: float, spacing: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Irregular spacing inside the district's range, so blocks are not all the same size."""
    count = int(np.ceil((hi - lo) / spacing[0])) + 2
    steps = rng.uniform(spacing[0], spacing[1], count)
    positions = lo - rng.uniform(0.0, spacing[0]) + np.cumsum(steps)
    return positions[positions < hi]


def _lines(district: District, coords: np.ndarray, classes: dict[str, RoadClass], rng: np.random.Generator) -> _Lines:
    n = len(coords)
    index = np.arange(n)
    road_class = np.full(n, "residential", dtype=object)
    for every, name in ((district.secondary_every, "secondary"), (district.primary_every, "primary")):
        if every > 0:
            road_class[(index + int(rng.integers(every))) % every == 0] = name
    width = np.empty(n)
    for name, spec in classes.items():
        mask = road_class == name
        width[mask] = np.round(rng.uniform(spec.width_m[0], spec.width_m[1], mask.sum()) * 2) / 2
    return _Lines(coords, road_class, width, np.empty(n, dtype=object))


def _clip(
    frame: GridFrame, region: shapely.Geometry, u0: np.ndarray, v0: np.ndarray, u1: np.ndarray, v1: np.ndarray
) -> np.ndarray:
    x0, y0 = frame.to_utm(u0, v0)
    x1, y1 = frame.to_utm(u1, v1)
    coords = np.stack([np.column_stack([x0, y0]), np.column_stack([x1, y1])], axis=1)
    return shapely.intersection(shapely.linestrings(coords), region)


def _name_grid_lines(grids: list[_DistrictGrid], pool: Sequence[StreetName], rng: np.random.Generator) -> None:
    """Unique names city-wide: famous names go to the main avenues of the first (central) districts."""
    tiers = {t: [s.name for s in pool if s.tier == t] for t in CLASS_RANK}
    for names in tiers.values():
        rng.shuffle(names)
    fallback = {
        "primary": ("primary", "secondary", "residential"),
        "secondary": ("secondary", "residential", "primary"),
        "residential": ("residential", "secondary", "primary"),
    }
    counters: dict[str, int] = {}
    for grid in grids:
        prefix = grid.district.street_prefix
        families = (grid.long, grid.cross)
        for lines in families:
            lines.name = np.full(len(lines.coord), "", dtype=object)
        order = [
            (lines, i)
            for lines in families
            for i in np.argsort(-shapely.length(lines.geometry), kind="stable")
            if shapely.length(lines.geometry[i]) >= MIN_PIECE_M
        ]
        order.sort(key=lambda item: -CLASS_RANK[item[0].road_class[item[1]]])
        for lines, i in order:
            tier_order = () if prefix else fallback[lines.road_class[i]]
            source = next((tiers[t] for t in tier_order if tiers[t]), None)
            if source is not None:
                lines.name[i] = source.pop()
                continue
            label = prefix or "Đường số"
            counters[label] = counters.get(label, 0) + 1
            lines.name[i] = f"{label} {counters[label]}"


def _street_table(
    grids: list[_DistrictGrid], city: CityGeography, classes: dict[str, RoadClass], rng: np.random.Generator
) -> tuple[StreetTable, shapely.Geometry]:
    geoms: list[np.ndarray] = []
    attrs: dict[str, list[np.ndarray]] = {k: [] for k in ("name", "road_class", "width_m", "lit", "rural", "district")}
    for index, grid in enumerate(grids):
        for lines in (grid.long, grid.cross):
            parts, owner = shapely.get_parts(lines.geometry, return_index=True)
            keep = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) >= MIN_PIECE_M)
            parts, owner = parts[keep], owner[keep]
            geoms.append(parts)
            attrs["name"].append(lines.name[owner])
            attrs["road_class"].append(lines.road_class[owner])
            attrs["width_m"].append(lines.width[owner])
            attrs["lit"].append(np.full(len(parts), grid.district.lit))
            attrs["rural"].append(np.full(len(parts), grid.district.kind == "rural"))
            attrs["district"].append(np.full(len(parts), index))
    arterial_geoms = arterial_lines_utm(city.inputs.arterials, city.land_inner_utm)
    corridors = []
    for arterial, geom in zip(city.inputs.arterials, arterial_geoms):
        spec = classes[arterial.road_class or "primary"]
        width = float(np.round(rng.uniform(*spec.width_m) * 2) / 2)
        parts = shapely.get_parts(geom)
        parts = parts[shapely.length(parts) >= MIN_PIECE_M]
        geoms.append(parts)
        attrs["name"].append(np.full(len(parts), arterial.name, dtype=object))
        attrs["road_class"].append(np.full(len(parts), spec.name, dtype=object))
        attrs["width_m"].append(np.full(len(parts), width))
        attrs["lit"].append(np.full(len(parts), True))
        attrs["rural"].append(np.full(len(parts), False))
        attrs["district"].append(np.full(len(parts), -1))
        corridors.append(shapely.buffer(geom, width / 2 + 1.5))
    corridors.extend(shapely.buffer(line, 20.0) for _, line in city.rivers_utm)
    road_class = np.concatenate(attrs["road_class"])
    widths = np.concatenate(attrs["width_m"])
    table = StreetTable(
        geometry=np.concatenate(geoms),
        name=np.concatenate(attrs["name"]),
        road_class=road_class,
        width_m=widths,
        lanes=_lanes(road_class, widths, classes),
        lit=np.concatenate(attrs["lit"]),
        rural=np.concatenate(attrs["rural"]),
        district=np.concatenate(attrs["district"]),
    )
    return table, shapely.union_all(corridors)


def _lanes(road_class: np.ndarray, width: np.ndarray, classes: dict[str, RoadClass]) -> np.ndarray:
    """Wider streets of a class get the upper lane count of its range."""
    lanes = np.zeros(len(width), dtype=np.int64)
    for name, spec in classes.items():
        mask = road_class == name
        middle = sum(spec.width_m) / 2
        lanes[mask] = np.where(width[mask] >= middle, spec.lanes[1], spec.lanes[0])
    return lanes


def _intersections(grids: list[_DistrictGrid]) -> IntersectionTable:
    xs, ys, names_a, names_b, ranks = [], [], [], [], []
    for grid in grids:
        if grid.district.kind != "urban":
            continue
        grid_i, grid_j = np.meshgrid(np.arange(len(grid.cross.coord)), np.arange(len(grid.long.coord)), indexing="ij")
        i, j = grid_i.ravel(), grid_j.ravel()
        x, y = grid.frame.to_utm(grid.cross.coord[i], grid.long.coord[j])
        points = shapely.points(x, y)
        on_both = (shapely.distance(points, grid.cross.geometry[i]) < 0.5) & (
            shapely.distance(points, grid.long.geometry[j]) < 0.5
        )
        i, j = i[on_both], j[on_both]
        xs.append(x[on_both])
        ys.append(y[on_both])
        names_a.append(grid.long.name[j])
        names_b.append(grid.cross.name[i])
        rank = [CLASS_RANK[c] for c in grid.long.road_class[j]]
        ranks.append(np.array(rank, dtype=np.int64) + [CLASS_RANK[c] for c in grid.cross.road_class[i]])
    return IntersectionTable(
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        name_a=np.concatenate(names_a),
        name_b=np.concatenate(names_b),
        rank=np.concatenate(ranks),
    )


def _block_rows(grids: list[_DistrictGrid], rng: np.random.Generator) -> BlockRows:
    """Two rows per block, one facing each long street; a few urban blocks stay whole (schools, parks…)."""
    parts: list[dict[str, np.ndarray]] = []
    block_offset = 0
    for index, grid in enumerate(grids):
        rows = _grid_rows(grid, index, rng)
        rows["block_id"] = rows["block_id"] + block_offset
        if len(rows["block_id"]):
            block_offset = int(rows["block_id"].max()) + 1
        parts.append(rows)
    return BlockRows(**{key: np.concatenate([p[key] for p in parts]) for key in parts[0]})


def _grid_rows(grid: _DistrictGrid, frame_index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    long, cross = grid.long, grid.cross
    grid_i, grid_j = np.meshgrid(np.arange(len(cross.coord) - 1), np.arange(len(long.coord) - 1), indexing="ij")
    i, j = grid_i.ravel(), grid_j.ravel()
    u_lo = cross.coord[i] + cross.width[i] / 2
    u_hi = cross.coord[i + 1] - cross.width[i + 1] / 2
    v_lo = long.coord[j] + long.width[j] / 2
    v_hi = long.coord[j + 1] - long.width[j + 1] / 2
    u_mid = (u_lo + u_hi) / 2
    # A row only exists where its street really runs past it (the grid is clipped).
    has_lo = _street_passes(grid, long.geometry[j], u_mid, long.coord[j])
    has_hi = _street_passes(grid, long.geometry[j + 1], u_mid, long.coord[j + 1])
    cx, cy = grid.frame.to_utm(u_mid, (v_lo + v_hi) / 2)
    usable = shapely.contains_xy(grid.region, cx, cy) & (u_hi - u_lo > 8) & (v_hi - v_lo > 8)
    special = usable & (rng.random(len(i)) < grid.district.special_block_share) & (has_lo | has_hi)
    rural = grid.district.kind == "rural"
    mid = (v_lo + v_hi) / 2
    sel_lo, sel_hi, sel_sp = usable & has_lo & ~special, usable & has_hi & ~special, special
    blocks = np.arange(len(i))
    return {
        "frame_index": np.full(sel_lo.sum() + sel_hi.sum() + sel_sp.sum(), frame_index),
        "block_id": np.concatenate([blocks[sel_lo], blocks[sel_hi], blocks[sel_sp]]),
        "u_lo": np.concatenate([u_lo[sel_lo], u_lo[sel_hi], u_lo[sel_sp]]),
        "u_hi": np.concatenate([u_hi[sel_lo], u_hi[sel_hi], u_hi[sel_sp]]),
        "v_front": np.concatenate([v_lo[sel_lo], v_hi[sel_hi], v_lo[sel_sp]]),
        "v_back": np.concatenate([mid[sel_lo], mid[sel_hi], v_hi[sel_sp]]),
        "fronts_primary": np.concatenate(
            [
                long.road_class[j][sel_lo] == "primary",
                long.road_class[j + 1][sel_hi] == "primary",
                np.zeros(sel_sp.sum(), dtype=bool),
            ]
        ),
        "special": np.concatenate(
            [np.zeros(sel_lo.sum() + sel_hi.sum(), dtype=bool), np.ones(sel_sp.sum(), dtype=bool)]
        ),
        "rural": np.full(sel_lo.sum() + sel_hi.sum() + sel_sp.sum(), rural),
    }


def _street_passes(grid: _DistrictGrid, geoms: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, y = grid.frame.to_utm(u, v)
    return shapely.distance(shapely.points(x, y), geoms) < 1.0
