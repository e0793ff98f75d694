"""Fishing vessels at sea and their last 24 hours of track.

Tracks are simulated forward in time as a smooth random walk (heading and
speed change a little every 10 minutes) that turns back towards the
vessel's fishing ground when it strays too far. The vessel's reported
position, speed and heading are then read off the end of its own track, so
the two layers always agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import shapely

from twin.samplecity.clock import DAY, MINUTE
from twin.samplecity.geography import (
    GEOD,
    CityGeography,
    geodesic_track_lengths,
    geoms_to_utm,
    xy_to_lonlat,
)
from twin.samplecity.inputs import VesselVocabulary
from twin.samplecity.output import LayerData

logger = logging.getLogger(__name__)

STEP_S = 600  # one position every 10 minutes
STEPS = DAY // STEP_S  # 144 legs, 145 positions
KNOT_MS = 1852.0 / 3600.0
MAX_ROUNDS = 12


@dataclass(frozen=True)
class Behaviour:
    """How a vessel in a given final status moves over the day."""

    roam_m: float  # radius of the area its waypoints are drawn from
    turn_sigma: float  # radians per step of random heading change
    leg_steps: float  # mean number of steps before it heads for another waypoint
    anchored_steps: tuple[int, int]  # range of final steps spent at anchor (0 = never)


BEHAVIOUR = {
    "fishing": Behaviour(roam_m=8000.0, turn_sigma=0.10, leg_steps=40.0, anchored_steps=(0, 0)),
    "underway": Behaviour(roam_m=15000.0, turn_sigma=0.03, leg_steps=80.0, anchored_steps=(0, 0)),
    "anchored": Behaviour(roam_m=6000.0, turn_sigma=0.10, leg_steps=40.0, anchored_steps=(12, 60)),
}
WAYPOINTS = 48
MAX_TURN = np.radians(60.0)  # per 10 minutes: time enough for a fishing boat to come about


def vessel_layers(
    vocab: VesselVocabulary, city: CityGeography, count: int, rng: np.random.Generator, reference_epoch: int
) -> tuple[LayerData, LayerData]:
    statuses = [s.name for s in vocab.statuses]
    weights = np.array([s.weight for s in vocab.statuses])
    status = rng.choice(len(statuses), size=count, p=weights / weights.sum())
    lon, lat = _tracks(vocab, city, status, rng)
    registration = _registrations(vocab, count, rng)
    ended = reference_epoch - rng.integers(1, 30, count) * MINUTE
    heading, legs = GEOD.inv(lon[:, -2], lat[:, -2], lon[:, -1], lat[:, -1])[0::2]
    vessels = LayerData(
        "vessels",
        {
            "registration_no": registration,
            "name": _names(vocab, registration, rng),
            "mmsi": [f"574{m:06d}" for m in rng.choice(1_000_000, size=count, replace=False)],
            "length_m": np.round(rng.uniform(*vocab.length_m, count), 1),
            "home_port": _home_ports(vocab, registration, rng),
            "status": np.array(statuses, dtype=object)[status],
            "speed_kn": np.round(np.asarray(legs) / STEP_S / KNOT_MS, 1),
            "heading": np.round(np.mod(np.asarray(heading), 360.0), 1) % 360.0,
            "observed_at": ended.astype(float),
        },
        shapely.points(lon[:, -1], lat[:, -1]),
    )
    tracks = LayerData(
        "vessel_tracks",
        {
            "registration_no": registration,
            "started_at": (ended - DAY).astype(float),
            "ended_at": ended.astype(float),
            "distance_km": np.round(geodesic_track_lengths(lon, lat) / 1000.0, 2),
        },
        shapely.linestrings(np.stack([lon, lat], axis=-1)),
    )
    return vessels, tracks


def _tracks(
    vocab: VesselVocabulary, city: CityGeography, status: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate, then re-draw any track that touches land or the lagoon; shrink the stubborn few."""
    names = [s.name for s in vocab.statuses]
    area_utm = geoms_to_utm(city.vessel_area)
    lon = np.empty((len(status), STEPS + 1))
    lat = np.empty_like(lon)
    pending = np.arange(len(status))
    last: tuple[np.ndarray, ...] = ()
    for _ in range(MAX_ROUNDS):
        if len(pending) == 0:
            break
        cx, cy = _grounds(area_utm, [BEHAVIOUR[names[s]] for s in status[pending]], rng)
        x, y = _simulate(vocab, [names[s] for s in status[pending]], cx, cy, rng)
        lo, la = xy_to_lonlat(x, y)
        ok = shapely.within(shapely.linestrings(np.stack([lo, la], axis=-1)), city.vessel_area)
        lon[pending[ok]], lat[pending[ok]] = lo[ok], la[ok]
        pending = pending[~ok]
        last = (x[~ok], y[~ok], cx[~ok], cy[~ok])
    if len(pending):
        logger.debug("shrinking %d vessel tracks towards their grounds", len(pending))
        lon[pending], lat[pending] = _shrink(city, *last)
    return lon, lat


def _grounds(
    area_utm: shapely.Geometry, behaviours: list[Behaviour], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Centres of fishing grounds, at least 3 km off the edge of the fishing area."""
    core = shapely.buffer(area_utm, -3000.0)
    x, y = _points_in(core, len(behaviours), rng)
    return x, y


def _points_in(polygon: shapely.Geometry, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shapely.prepare(polygon)
    minx, miny, maxx, maxy = polygon.bounds
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    while sum(len(a) for a in xs) < n:
        x = rng.uniform(minx, maxx, 2 * n + 8)
        y = rng.uniform(miny, maxy, 2 * n + 8)
        inside = shapely.contains_xy(polygon, x, y)
        xs.append(x[inside])
        ys.append(y[inside])
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _simulate(
    vocab: VesselVocabulary, status: list[str], cx: np.ndarray, cy: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Legs from waypoint to waypoint around the ground, with smooth turns and varying speed."""
    n = len(status)
    speeds = {s.name: s.speed_kn for s in vocab.statuses}
    behaviour = [BEHAVIOUR[s] for s in status]
    # Anchored vessels fished first and dropped anchor for the last few hours.
    day_speed = [speeds["fishing"] if s == "anchored" else speeds[s] for s in status]
    base = rng.uniform([lo for lo, _ in day_speed], [hi for _, hi in day_speed])
    roam = np.array([b.roam_m for b in behaviour])
    sigma = np.array([b.turn_sigma for b in behaviour])
    switch = 1.0 / np.array([b.leg_steps for b in behaviour])
    anchor_from = STEPS - np.array([rng.integers(b.anchored_steps[0], b.anchored_steps[1] + 1) for b in behaviour])
    anchor_speed = rng.uniform(*speeds["anchored"], n)
    angle = rng.uniform(0, 2 * np.pi, (n, WAYPOINTS + 1))
    radius = roam[:, None] * np.sqrt(rng.random((n, WAYPOINTS + 1)))
    wx, wy = cx[:, None] + radius * np.sin(angle), cy[:, None] + radius * np.cos(angle)
    x = np.empty((n, STEPS + 1))
    y = np.empty((n, STEPS + 1))
    x[:, 0], y[:, 0] = wx[:, 0], wy[:, 0]
    target = np.ones(n, dtype=np.int64)
    heading = rng.uniform(0, 2 * np.pi, n)
    wobble = np.zeros(n)
    rows = np.arange(n)
    # Close enough to a waypoint once inside the turning circle, or it would orbit it.
    reach = np.maximum(800.0, 1.2 * base * KNOT_MS * STEP_S / MAX_TURN)
    for t in range(STEPS):
        dx, dy = wx[rows, target] - x[:, t], wy[rows, target] - y[:, t]
        arrived = (np.hypot(dx, dy) < reach) | (rng.random(n) < switch)
        target = (target + arrived) % (WAYPOINTS + 1)
        dx, dy = wx[rows, target] - x[:, t], wy[rows, target] - y[:, t]
        error = np.angle(np.exp(1j * (np.arctan2(dx, dy) - heading)))
        heading = heading + np.clip(error, -MAX_TURN, MAX_TURN) + rng.normal(0.0, sigma)
        wobble = 0.9 * wobble + 0.1 * rng.normal(0.0, 1.0, n)
        speed = np.where(t >= anchor_from, anchor_speed, base * (1.0 + 0.8 * wobble))
        step = np.maximum(speed, 0.0) * KNOT_MS * STEP_S
        x[:, t + 1] = x[:, t] + step * np.sin(heading)
        y[:, t + 1] = y[:, t] + step * np.cos(heading)
    return x, y


def _shrink(
    city: CityGeography, x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pull a track towards its ground centre until it is entirely at sea (the centre is)."""
    factor = np.ones(len(x))
    while True:
        lon, lat = xy_to_lonlat(
            cx[:, None] + (x - cx[:, None]) * factor[:, None], cy[:, None] + (y - cy[:, None]) * factor[:, None]
        )
        ok = shapely.within(shapely.linestrings(np.stack([lon, lat], axis=-1)), city.vessel_area)
        if ok.all():
            return lon, lat
        factor[~ok] *= 0.7


def _registrations(vocab: VesselVocabulary, count: int, rng: np.random.Generator) -> np.ndarray:
    """'BĐ-91234-TS': province code, five-digit number, TS for thủy sản (fishery)."""
    weights = np.array([p.weight for p in vocab.home_ports])
    port = rng.choice(len(vocab.home_ports), size=count, p=weights / weights.sum())
    numbers = 90000 + rng.choice(10000, size=count, replace=False)
    return np.array([f"{vocab.home_ports[p].province_code}-{n}-TS" for p, n in zip(port, numbers)], dtype=object)


def _home_ports(vocab: VesselVocabulary, registration: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A home port of the province the vessel is registered in."""
    ports = np.empty(len(registration), dtype=object)
    for i, reg in enumerate(registration):
        code = reg.split("-")[0]
        candidates = [p for p in vocab.home_ports if p.province_code == code]
        weights = np.array([p.weight for p in candidates])
        ports[i] = candidates[rng.choice(len(candidates), p=weights / weights.sum())].name
    return ports


def _names(vocab: VesselVocabulary, registration: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    named = rng.random(len(registration)) < vocab.named_share
    first = rng.choice(len(vocab.name_first), len(registration))
    second = rng.choice(len(vocab.name_second), len(registration))
    number = rng.integers(1, 100, len(registration))
    return np.array(
        [
            f"{vocab.name_first[a]} {vocab.name_second[b]} {k:02d}" if is_named else f"Tàu cá {reg}"
            for is_named, a, b, k, reg in zip(named, first, second, number, registration)
        ],
        dtype=object,
    )
