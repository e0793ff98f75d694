"""Land parcels cut from the frontage rows of the street grid.

Each row (one side of a block, from the street to the middle of the block)
is cut into lots of a district-typical frontage. Neighbouring lots share
their dividing line — jittered, so lots are quadrilaterals rather than
perfect rectangles — which is why parcels can never overlap: they partition
rows, and rows partition blocks between streets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from twin.samplecity.geography import CityGeography, geodesic_areas, geoms_to_lonlat
from twin.samplecity.inputs import District, LandUse
from twin.samplecity.streets import BlockRows, StreetNetwork
from twin.samplecity.wards import WardIndex

logger = logging.getLogger(__name__)

MAP_SHEET_M = 500.0  # a 1:1000 cadastral sheet covers about 500 m × 500 m
METRES_PER_FLOOR = (3.3, 3.8)
LOT_GAP_M = 0.1  # surveyed lots never share a boundary exactly once rounded to ~1 cm


@dataclass(frozen=True)
class ParcelInventory:
    """Every parcel of the full city; layers take a block-wise subset when scaled down."""

    geometry: np.ndarray  # lon/lat polygons
    x: np.ndarray  # UTM centroid, for map sheets
    y: np.ndarray
    block_id: np.ndarray
    land_use: np.ndarray
    floors: np.ndarray

    def __len__(self) -> int:
        return len(self.geometry)


def build_parcels(
    network: StreetNetwork,
    districts: Sequence[District],
    land_uses: Sequence[LandUse],
    city: CityGeography,
    rng: np.random.Generator,
) -> ParcelInventory:
    rows = network.rows
    right_f, right_b, left_f, left_b, row_of = _cut_rows(rows, districts, rng)
    depth = np.where(rows.special[row_of] | rows.rural[row_of], 1.0, rng.uniform(0.65, 1.0, len(row_of)))
    v_front = rows.v_front[row_of]
    v_full = rows.v_back[row_of] - np.sign(rows.v_back[row_of] - v_front) * LOT_GAP_M / 2
    v_back = v_front + (v_full - v_front) * depth
    # Shorter lots end part-way along the shared dividing line; the small gap keeps
    # their corner off the neighbour's edge once coordinates are rounded.
    left_f, left_b = left_f + LOT_GAP_M / 2, left_b + LOT_GAP_M / 2
    right_f, right_b = right_f - LOT_GAP_M / 2, right_b - LOT_GAP_M / 2
    left_bd = left_f + (left_b - left_f) * depth
    right_bd = right_f + (right_b - right_f) * depth
    u = np.column_stack([left_f, right_f, right_bd, left_bd, left_f])
    v = np.column_stack([v_front, v_front, v_back, v_back, v_front])
    x, y = _to_utm(network, rows.frame_index[row_of], u, v)
    polygons = shapely.polygons(np.stack([x, y], axis=-1))
    keep = _placeable(polygons, rows.frame_index[row_of], network)
    polygons, row_of = polygons[keep], row_of[keep]
    lonlat = geoms_to_lonlat(polygons)
    on_land = shapely.within(lonlat, city.land)
    polygons, lonlat, row_of = polygons[on_land], lonlat[on_land], row_of[on_land]
    centroids = shapely.get_coordinates(shapely.centroid(polygons))
    land_use, floors = _assign_use(rows, row_of, land_uses, rng)
    logger.debug("parcel inventory: %d parcels from %d rows", len(lonlat), len(rows))
    return ParcelInventory(
        geometry=lonlat,
        x=centroids[:, 0],
        y=centroids[:, 1],
        block_id=rows.block_id[row_of],
        land_use=land_use,
        floors=floors,
    )


def _cut_rows(rows: BlockRows, districts: Sequence[District], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Dividing lines of every lot: (right front, right back, left front, left back, row index)."""
    district = rows.frame_index
    f_lo = np.array([d.frontage_m[0] for d in districts])[district]
    f_hi = np.array([d.frontage_m[1] for d in districts])[district]
    wide = np.array([d.wide_lot_share for d in districts])[district]
    length = rows.u_hi - rows.u_lo
    k = int(np.ceil((length / f_lo).max())) + 1
    widths = f_lo[:, None] + rng.random((len(rows), k)) * (f_hi - f_lo)[:, None]
    widen = rng.random((len(rows), k)) < wide[:, None]
    widths = np.where(widen, widths * rng.uniform(1.8, 2.6, widths.shape), widths)
    cum = np.cumsum(widths, axis=1)
    count = np.maximum((cum <= length[:, None]).sum(axis=1), 1)
    count[rows.special] = 1
    scale = length / cum[np.arange(len(rows)), count - 1]
    cuts = rows.u_lo[:, None] + cum * scale[:, None]
    jitter = np.minimum(0.05 * f_lo, 2.0)[:, None]
    cut_f = cuts + rng.uniform(-1, 1, cuts.shape) * jitter
    cut_b = cuts + rng.uniform(-1, 1, cuts.shape) * jitter
    row_of, index = np.nonzero(np.arange(k)[None, :] < count[:, None])
    last = index == count[row_of] - 1
    right_f = np.where(last, rows.u_hi[row_of], cut_f[row_of, index])
    right_b = np.where(last, rows.u_hi[row_of], cut_b[row_of, index])
    first = index == 0
    prev = np.maximum(index - 1, 0)
    left_f = np.where(first, rows.u_lo[row_of], cut_f[row_of, prev])
    left_b = np.where(first, rows.u_lo[row_of], cut_b[row_of, prev])
    return right_f, right_b, left_f, left_b, row_of


def _to_utm(
    network: StreetNetwork, frame_index: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    frames = network.frames
    ox = np.array([f.origin_x for f in frames])[frame_index][:, None]
    oy = np.array([f.origin_y for f in frames])[frame_index][:, None]
    along = np.array([f.along for f in frames])[frame_index]
    across = np.array([f.across for f in frames])[frame_index]
    x = ox + u * along[:, 0:1] + v * across[:, 0:1]
    y = oy + u * along[:, 1:2] + v * across[:, 1:2]
    return x, y


def _placeable(polygons: np.ndarray, district: np.ndarray, network: StreetNetwork) -> np.ndarray:
    """Whole lots only: inside their district, clear of arterial corridors and river banks."""
    keep = np.zeros(len(polygons), dtype=bool)
    for index, region in enumerate(network.regions_utm):
        mask = district == index
        keep[mask] = shapely.contains(region, polygons[mask])
    keep[keep] = ~shapely.intersects(network.nobuild_utm, polygons[keep])
    return keep


def _assign_use(
    rows: BlockRows, row_of: np.ndarray, land_uses: Sequence[LandUse], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Land use by context (main-street frontage, whole block, countryside), floors by use."""
    codes = np.array([lu.code for lu in land_uses], dtype=object)
    special, rural, primary = rows.special[row_of], rows.rural[row_of], rows.fronts_primary[row_of]
    groups = {
        "w_block": special,
        "w_rural": rural & ~special,
        "w_primary": primary & ~special & ~rural,
        "w_street": ~primary & ~special & ~rural,
    }
    choice = np.zeros(len(row_of), dtype=np.int64)
    for column, mask in groups.items():
        weights = np.array([getattr(lu, column) for lu in land_uses])
        if mask.any():
            choice[mask] = rng.choice(len(codes), size=int(mask.sum()), p=weights / weights.sum())
    lo = np.array([lu.floors_min for lu in land_uses])[choice]
    hi = np.array([lu.floors_max for lu in land_uses])[choice]
    # Low-rise dominates a Vietnamese city; tall buildings are the exception.
    floors = lo + np.floor((hi - lo + 1) * rng.random(len(choice)) ** 1.8).astype(np.int64)
    built = np.array([lu.built for lu in land_uses])[choice]
    floors = np.where(built, np.minimum(floors, hi), 0).astype(np.int64)
    return codes[choice], floors


def select_blocks(inventory: ParcelInventory, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``count`` parcels taken block by block, so a scaled-down city keeps whole blocks."""
    if count >= len(inventory):
        return np.arange(len(inventory))
    blocks = np.unique(inventory.block_id)
    order = rng.permutation(len(blocks))
    rank = np.empty(len(blocks), dtype=np.int64)
    rank[order] = np.arange(len(blocks))
    parcel_rank = rank[np.searchsorted(blocks, inventory.block_id)]
    chosen = np.lexsort((np.arange(len(inventory)), parcel_rank))[:count]
    return np.sort(chosen)


def parcel_attributes(
    inventory: ParcelInventory,
    chosen: np.ndarray,
    land_uses: Sequence[LandUse],
    wards: WardIndex,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Attributes of the ``chosen`` parcels, numbered the way a cadastral office would.

    Numbers and random attributes are drawn for the whole inventory before
    the subset is taken, so a parcel keeps its sheet, number and height
    whatever the scale.
    """
    by_code = {lu.code: lu for lu in land_uses}
    centroid = shapely.get_coordinates(shapely.centroid(inventory.geometry))
    ward = wards.locate(centroid[:, 0], centroid[:, 1])
    missing = ward < 0
    if missing.any():
        ward[missing] = wards.nearest(centroid[missing, 0], centroid[missing, 1])
    sheet, number = _numbering(inventory, ward)
    pick = rng.random(len(inventory))
    heights = inventory.floors * rng.uniform(*METRES_PER_FLOOR, len(inventory))
    owners = [by_code[c].owner_types for c in inventory.land_use[chosen]]
    return pd.DataFrame(
        {
            "parcel_no": number[chosen],
            "map_sheet": sheet[chosen],
            "land_use": inventory.land_use[chosen],
            "land_use_name": [by_code[c].name for c in inventory.land_use[chosen]],
            "area_m2": np.round(geodesic_areas(inventory.geometry[chosen]), 1),
            "floors": inventory.floors[chosen],
            "height_m": np.round(heights[chosen], 1),
            "ward": wards.names[ward[chosen]],
            "owner_type": [o[int(p * len(o))] for o, p in zip(owners, pick[chosen])],
        }
    )


def _numbering(inventory: ParcelInventory, ward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map sheets numbered per ward from north-west to south-east, parcels likewise within a sheet."""
    col = np.floor(inventory.x / MAP_SHEET_M).astype(np.int64)
    row = np.floor(-inventory.y / MAP_SHEET_M).astype(np.int64)
    frame = pd.DataFrame({"ward": ward, "row": row, "col": col, "y": -inventory.y, "x": inventory.x})
    sheets = frame[["ward", "row", "col"]].drop_duplicates().sort_values(["ward", "row", "col"])
    sheets["sheet"] = sheets.groupby("ward").cumcount() + 1
    frame = frame.merge(sheets, on=["ward", "row", "col"], how="left")
    frame["order"] = np.arange(len(frame))
    ordered = frame.sort_values(["ward", "sheet", "y", "x", "order"])
    ordered["number"] = ordered.groupby(["ward", "sheet"]).cumcount() + 1
    ordered = ordered.sort_values("order")
    return (
        ordered["sheet"].astype(str).to_numpy(dtype=object),
        ordered["number"].astype(str).to_numpy(dtype=object),
    )
