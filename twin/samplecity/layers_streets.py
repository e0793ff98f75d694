"""Infrastructure along the street network: roads, street lights, drains and cameras."""

from __future__ import annotations

import logging

import numpy as np
import shapely

from twin.samplecity.definitions import CAMERA_STATUSES, DRAIN_CONDITIONS, DRAIN_MATERIALS, LIGHT_STATUSES
from twin.samplecity.geography import CityGeography, geoms_to_lonlat, sample_along, xy_to_lonlat
from twin.samplecity.inputs import RoadClass
from twin.samplecity.output import LayerData
from twin.samplecity.streets import CLASS_RANK, StreetNetwork
from twin.samplecity.wards import WardIndex

logger = logging.getLogger(__name__)

DRAIN_SEGMENT_M = 180.0
DRAIN_WEIGHT = {"primary": 4.0, "secondary": 2.5, "residential": 1.0}
FLOOD_CAMERA_RANGE_M = 400.0  # cameras this close to water may watch for flooding
CAMERA_HOST = "camera.quynhon.local"


def roads_layer(network: StreetNetwork, count: int) -> LayerData:
    """A scaled-down city keeps its main avenues first."""
    streets = network.streets
    rank = np.array([CLASS_RANK[c] for c in streets.road_class])
    order = np.lexsort((np.arange(len(streets)), -shapely.length(streets.geometry), -rank))
    chosen = np.sort(order[:count])
    return LayerData(
        "roads",
        {
            "name": streets.name[chosen],
            "road_class": streets.road_class[chosen],
            "width_m": streets.width_m[chosen],
            "lanes": streets.lanes[chosen],
        },
        geoms_to_lonlat(streets.geometry[chosen]),
    )


def street_lights_layer(
    network: StreetNetwork,
    city: CityGeography,
    classes: dict[str, RoadClass],
    count: int,
    rng: np.random.Generator,
) -> LayerData:
    """Whole streets are lit in order of importance until the budget is spent.

    Lighting entire streets at their regular spacing (rather than thinning
    lamps at random) keeps the 30–40 m rhythm a user expects on the map.
    The first district (the city centre) gets its lights one class ahead of
    the suburbs.
    """
    streets = network.streets
    lit = np.flatnonzero(streets.lit)
    rank = np.array([CLASS_RANK[c] for c in streets.road_class[lit]]) + (streets.district[lit] == 0)
    lit = lit[np.lexsort((rng.permutation(len(lit)), -rank))]
    spacing = np.array([classes[c].light_spacing_m for c in streets.road_class[lit]])
    length = shapely.length(streets.geometry[lit])
    per_street = np.floor(length / spacing).astype(np.int64) + 1
    owner = np.repeat(np.arange(len(lit)), per_street)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(per_street) - per_street, per_street)
    start = (length - (per_street - 1) * spacing) / 2
    d = start[owner] + k * spacing[owner]
    street = lit[owner]
    staggered = (streets.road_class[street] == "primary") & (k % 2 == 1)
    side = np.where(staggered, -1.0, 1.0)
    x, y = sample_along(streets.geometry[street], d, side * (streets.width_m[street] / 2 - 0.8))
    valid = np.flatnonzero(shapely.contains_xy(city.land_inner_utm, x, y))[:count]
    street = street[valid]
    lon, lat = xy_to_lonlat(x[valid], y[valid])
    lamp = np.where(rng.random(len(valid)) < 0.7, "LED", "Sodium")
    power = np.array(
        [rng.choice(classes[c].lamp_power_w[t]) for c, t in zip(streets.road_class[street], lamp)],
        dtype=np.int64,
    )
    return LayerData(
        "street_lights",
        {
            "light_id": [f"DCS-{i + 1:05d}" for i in range(len(valid))],
            "power_w": power,
            "lamp_type": lamp.astype(object),
            "status": rng.choice(LIGHT_STATUSES, size=len(valid), p=[0.9, 0.06, 0.04]).astype(object),
            "road": streets.name[street],
        },
        shapely.points(lon, lat),
    )


def drainage_layer(
    network: StreetNetwork,
    city: CityGeography,
    classes: dict[str, RoadClass],
    count: int,
    rng: np.random.Generator,
) -> LayerData:
    """Drain segments under the kerb of some streets, drawn in the direction the water flows."""
    streets = network.streets
    length = shapely.length(streets.geometry)
    pieces = np.maximum(np.round(length / DRAIN_SEGMENT_M), 1).astype(np.int64)
    owner = np.repeat(np.arange(len(streets)), pieces)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    step = length[owner] / pieces[owner]
    side = np.where(rng.random(len(owner)) < 0.5, 1.0, -1.0)
    offset = side * np.maximum(streets.width_m[owner] / 2 - 1.0, 1.0)
    t = np.linspace(0.0, 1.0, 5)
    d = (k[:, None] + t[None, :]) * step[:, None]
    x, y = sample_along(np.repeat(streets.geometry[owner], len(t)), d.ravel(), np.repeat(offset, len(t)))
    coords = np.stack([x.reshape(d.shape), y.reshape(d.shape)], axis=-1)
    # Water runs to the nearer of sea, lagoon or river: draw each segment pointing there.
    ends = shapely.points(coords[:, [0, -1], :].reshape(-1, 2)).reshape(-1, 2)
    to_water = shapely.distance(ends, city.water_utm)
    coords = np.where((to_water[:, 0] < to_water[:, 1])[:, None, None], coords[:, ::-1, :], coords)
    lines = shapely.linestrings(coords)
    valid = np.flatnonzero(shapely.within(lines, city.land_inner_utm))
    weight = np.array([DRAIN_WEIGHT[c] for c in streets.road_class[owner[valid]]])
    weight = np.where(streets.rural[owner[valid]], weight * 0.3, weight)
    count = min(count, len(valid))
    chosen = np.sort(rng.choice(valid, size=count, replace=False, p=weight / weight.sum()))
    diameter = np.array([rng.choice(classes[c].drain_diameter_mm) for c in streets.road_class[owner[chosen]]])
    material = np.where(
        diameter >= 800,
        rng.choice(DRAIN_MATERIALS, size=count, p=[0.85, 0.05, 0.10]),
        rng.choice(DRAIN_MATERIALS, size=count, p=[0.45, 0.35, 0.20]),
    )
    return LayerData(
        "drainage",
        {
            "drain_id": [f"CTN-{i + 1:04d}" for i in range(count)],
            "diameter_mm": diameter.astype(np.int64),
            "material": material.astype(object),
            "condition": rng.choice(DRAIN_CONDITIONS, size=count, p=[0.55, 0.3, 0.15]).astype(object),
        },
        geoms_to_lonlat(lines[chosen]),
    )


def cameras_layer(
    network: StreetNetwork, city: CityGeography, wards: WardIndex, count: int, rng: np.random.Generator
) -> LayerData:
    """Cameras favour junctions of main roads; those near water may watch for flooding."""
    crossings = network.intersections
    lon, lat = xy_to_lonlat(crossings.x, crossings.y)
    ward = wards.locate(lon, lat)
    valid = np.flatnonzero((ward >= 0) & shapely.contains_xy(city.land_inner_utm, crossings.x, crossings.y))
    weight = crossings.rank[valid].astype(float) ** 2
    count = min(count, len(valid))
    chosen = np.sort(rng.choice(valid, size=count, replace=False, p=weight / weight.sum()))
    near_water = (
        shapely.distance(shapely.points(crossings.x[chosen], crossings.y[chosen]), city.water_utm)
        < FLOOD_CAMERA_RANGE_M
    )
    main_road = crossings.rank[chosen] >= 4
    draw = rng.random(count)
    camera_type = np.where(
        near_water & (draw < 0.5), "flood", np.where(main_road & (draw < 0.85), "traffic", "security")
    )
    ids = [f"cam-{i + 1:04d}" for i in range(count)]
    return LayerData(
        "cameras",
        {
            "camera_id": [i.upper() for i in ids],
            "name": [f"Camera ngã tư {a} – {b}" for a, b in zip(crossings.name_a[chosen], crossings.name_b[chosen])],
            "camera_type": camera_type.astype(object),
            "stream_url": [f"rtsp://{i}.{CAMERA_HOST}/stream" for i in ids],
            "snapshot_url": [f"http://{i}.{CAMERA_HOST}/snapshot.jpg" for i in ids],
            "status": rng.choice(CAMERA_STATUSES, size=count, p=[0.93, 0.07]).astype(object),
            "ward": wards.names[ward[chosen]],
        },
        shapely.points(lon[chosen], lat[chosen]),
    )
