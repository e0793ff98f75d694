"""Administrative and cadastral layers: wards, address points, parcels."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from twin.samplecity.geography import CityGeography, geodesic_areas, sample_along, xy_to_lonlat
from twin.samplecity.inputs import LandUse
from twin.samplecity.output import LayerData
from twin.samplecity.parcels import ParcelInventory, parcel_attributes, select_blocks
from twin.samplecity.streets import StreetNetwork
from twin.samplecity.wards import WardIndex

logger = logging.getLogger(__name__)

RURAL_ADDRESS_WEIGHT = 0.25  # houses are sparse along field roads
ALLEY_SHARE = 0.10  # "45/3": a house in the alley behind number 45
SUFFIX_SHARE = 0.05  # "12A": a lot split off number 12


@dataclass(frozen=True)
class AddressAnchors:
    """Published address points, reused to place incidents and air sensors where people live."""

    x: np.ndarray  # UTM
    y: np.ndarray
    street: np.ndarray
    ward: np.ndarray  # ward index

    def __len__(self) -> int:
        return len(self.x)


def wards_layer(wards: WardIndex) -> LayerData:
    return LayerData(
        "wards",
        {
            "code": [w.code for w in wards.specs],
            "name": [w.name for w in wards.specs],
            "ward_type": [w.ward_type for w in wards.specs],
            "population": [w.population for w in wards.specs],
            "area_km2": np.round(geodesic_areas(wards.polygons) / 1e6, 3),
        },
        np.array(wards.polygons, dtype=object),
    )


def address_layer(
    network: StreetNetwork,
    city: CityGeography,
    wards: WardIndex,
    full_count: int,
    count: int,
    rng: np.random.Generator,
) -> tuple[LayerData, AddressAnchors]:
    """Addresses along both sides of every street, odd numbers left and even numbers right.

    Candidates are laid out for the full city (or denser, above scale 1) so
    house numbers look the same at any smaller scale; a scaled-down run
    publishes a random subset.
    """
    x, y, street_of, number, kind = _address_candidates(network, max(full_count, count), rng)
    valid = shapely.contains_xy(city.land_inner_utm, x, y)
    lon, lat = xy_to_lonlat(x[valid], y[valid])
    ward = wards.locate(lon, lat)
    inside = ward >= 0
    keep = np.flatnonzero(valid)[inside]
    lon, lat, ward = lon[inside], lat[inside], ward[inside]
    if count > len(keep):
        logger.warning("only %d address candidates for %d requested", len(keep), count)
        count = len(keep)
    chosen = np.sort(rng.choice(len(keep), size=count, replace=False))
    source = keep[chosen]
    street = network.streets.name[street_of[source]]
    house = _house_numbers(number[source], kind[source], rng)
    ward_idx = ward[chosen]
    postcodes = np.array([w.postcode for w in wards.specs], dtype=object)
    full = [f"{h} {s}, {label}" for h, s, label in zip(house, street, wards.address_label(ward_idx))]
    layer = LayerData(
        "address_points",
        {
            "house_number": house,
            "street": street,
            "ward": wards.names[ward_idx],
            "full_address": full,
            "postcode": postcodes[ward_idx],
        },
        shapely.points(lon[chosen], lat[chosen]),
    )
    anchors = AddressAnchors(x=x[source], y=y[source], street=street, ward=ward_idx)
    return layer, anchors


def _address_candidates(network: StreetNetwork, full_count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Positions (UTM), street index, house number and kind (0 plain, 1 alley, 2 suffixed)."""
    streets = network.streets
    length = shapely.length(streets.geometry)
    weight = np.where(streets.rural, RURAL_ADDRESS_WEIGHT, 1.0)
    # 15 % spare candidates: some fall in the sea or on a ward boundary and are dropped.
    spacing = 2.0 * (length * weight).sum() / (full_count * 1.15) / weight
    per_side = np.floor(length / spacing).astype(np.int64)
    xs, ys, owners, numbers, kinds = [], [], [], [], []
    for side, parity in ((1.0, 1), (-1.0, 0)):
        owner = np.repeat(np.arange(len(streets)), per_side)
        start = np.repeat(np.cumsum(per_side) - per_side, per_side)
        k = np.arange(len(owner)) - start
        step = length[owner] / per_side[owner]
        d = (k + 0.5 + rng.uniform(-0.3, 0.3, len(owner))) * step
        kind = rng.choice(3, size=len(owner), p=[1 - ALLEY_SHARE - SUFFIX_SHARE, ALLEY_SHARE, SUFFIX_SHARE])
        setback = streets.width_m[owner] / 2 + rng.uniform(1.5, 3.5, len(owner))
        setback += np.where(kind == 1, rng.uniform(8.0, 25.0, len(owner)), 0.0)
        x, y = sample_along(streets.geometry[owner], d, side * setback)
        rank = _rank_along_street(streets.name[owner], owner, d)
        xs.append(x)
        ys.append(y)
        owners.append(owner)
        numbers.append(2 * rank + 2 - parity)
        kinds.append(kind)
    return tuple(np.concatenate(parts) for parts in (xs, ys, owners, numbers, kinds))


def _rank_along_street(names: np.ndarray, piece: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """0-based order of each house along its named street, across all pieces of that street."""
    frame = pd.DataFrame({"name": names, "piece": piece, "d": distance, "i": np.arange(len(names))})
    ordered = frame.sort_values(["name", "piece", "d", "i"])
    rank = np.empty(len(frame), dtype=np.int64)
    rank[ordered["i"].to_numpy()] = ordered.groupby("name", sort=False).cumcount().to_numpy()
    return rank


def _house_numbers(number: np.ndarray, kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    alley = rng.integers(1, 40, len(number))
    suffix = np.where(rng.random(len(number)) < 0.8, "A", "B")
    out = np.empty(len(number), dtype=object)
    for i, (n, k) in enumerate(zip(number, kind)):
        out[i] = f"{n}/{alley[i]}" if k == 1 else f"{n}{suffix[i]}" if k == 2 else str(n)
    return out


def parcels_layer(
    inventory: ParcelInventory,
    land_uses: Sequence[LandUse],
    wards: WardIndex,
    count: int,
    rng: np.random.Generator,
) -> LayerData:
    chosen = select_blocks(inventory, count, rng)
    attributes = parcel_attributes(inventory, chosen, land_uses, wards, rng)
    return LayerData(
        "parcels",
        {column: attributes[column].to_numpy() for column in attributes.columns},
        inventory.geometry[chosen],
    )
