"""Monitoring layers: environmental sensors and citizen feedback incidents."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import shapely

from twin.samplecity.clock import DAY, LOCAL_OFFSET_S, MINUTE
from twin.samplecity.definitions import INCIDENT_STATUSES
from twin.samplecity.geography import CityGeography, sample_along, xy_to_lonlat
from twin.samplecity.inputs import IncidentCategory, SensorKind
from twin.samplecity.layers_land import AddressAnchors
from twin.samplecity.output import LayerData
from twin.samplecity.wards import WardIndex

logger = logging.getLogger(__name__)

WATER_OFFSET_M = 30.0  # gauges stand a little off the shore, in the water
ESTUARY_M = 2500.0  # the last stretch of a river before the lagoon counts as estuary
RAINY_SEASON_DAYS = 61  # September and October, the start of the central-coast flood season
RAINY_SHARE = 0.6
# Status mix by age of the report: (max age in days, P(new, in_progress, resolved, closed)).
STATUS_BY_AGE = (
    (2.0, (0.55, 0.35, 0.10, 0.00)),
    (14.0, (0.15, 0.40, 0.35, 0.10)),
    (60.0, (0.04, 0.16, 0.40, 0.40)),
    (np.inf, (0.01, 0.04, 0.20, 0.75)),
)


def split_count(total: int, shares: Sequence[float]) -> list[int]:
    """Largest-remainder split, so the parts always add up to ``total``."""
    weights = np.asarray(shares, dtype=float)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return [int(c) for c in counts]


def sensors_layer(
    kinds: Sequence[SensorKind],
    anchors: AddressAnchors,
    city: CityGeography,
    wards: WardIndex,
    count: int,
    rng: np.random.Generator,
    reference_epoch: int,
) -> LayerData:
    names = ("sensor_id", "sensor_type", "name", "unit", "threshold", "last_value", "observed_at", "ward")
    columns: dict[str, list[object]] = {name: [] for name in names}
    points: list[np.ndarray] = []
    for kind, n in zip(kinds, split_count(count, [k.share for k in kinds])):
        placements = list(kind.placements)
        per_place = split_count(n, [kind.placements[p] for p in placements])
        x_parts, y_parts, place_parts = [], [], []
        for placement, m in zip(placements, per_place):
            x, y, place = _sensor_sites(placement, m, anchors, city, wards, rng)
            x_parts.append(x)
            y_parts.append(y)
            place_parts.extend(place)
        x, y = np.concatenate(x_parts), np.concatenate(y_parts)
        lon, lat = xy_to_lonlat(x, y)
        ward = wards.locate(lon, lat)
        on_land = shapely.contains_xy(city.land, lon, lat)
        station_names = _numbered([kind.name_pattern.format(place=p) for p in place_parts])
        columns["sensor_id"].extend(f"{kind.id_prefix}-{i + 1:04d}" for i in range(len(x)))
        columns["sensor_type"].extend([kind.type] * len(x))
        columns["name"].extend(station_names)
        columns["unit"].extend([kind.unit] * len(x))
        columns["threshold"].extend([kind.threshold] * len(x))
        columns["last_value"].extend(_readings(kind, len(x), rng))
        seconds = rng.integers(0, 24 * 60, len(x)) * MINUTE
        columns["observed_at"].extend(reference_epoch - seconds - MINUTE)
        columns["ward"].extend(np.where(on_land & (ward >= 0), wards.names[np.maximum(ward, 0)], ""))
        points.append(shapely.points(lon, lat))
    return LayerData("sensors", columns, np.concatenate(points))


def _readings(kind: SensorKind, n: int, rng: np.random.Generator) -> np.ndarray:
    """A fixed share of readings above the threshold, so the alert demo always has something to show."""
    exceed = np.zeros(n, dtype=bool)
    exceed[rng.choice(n, size=round(n * kind.exceed_share), replace=False)] = True
    values = np.where(exceed, rng.uniform(*kind.exceed_range, n), rng.uniform(*kind.normal_range, n))
    return np.round(values, kind.decimals)


def _numbered(names: list[str]) -> list[str]:
    """Append 'số 2', 'số 3'… where several stations share a place name."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} số {seen[name]}")
    return out


def _sensor_sites(
    placement: str,
    n: int,
    anchors: AddressAnchors,
    city: CityGeography,
    wards: WardIndex,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if n == 0:
        return np.empty(0), np.empty(0), []
    if placement == "land":
        pick = rng.choice(len(anchors), size=n, replace=n > len(anchors))
        labels = [f"{wards.specs[w].ward_type.lower()} {wards.specs[w].name}" for w in anchors.ward[pick]]
        return anchors.x[pick], anchors.y[pick], labels
    if placement in ("river", "estuary"):
        return _river_sites(placement == "estuary", n, city, rng)
    shore = city.coastline_utm if placement == "coast" else city.lagoon_shore_utm
    x, y = _offshore_points(shore, n, city, rng)
    lon, lat = xy_to_lonlat(x, y)
    nearest = wards.nearest(lon, lat)
    if placement == "coast":
        return x, y, [f"ven biển {wards.specs[w].name}" for w in nearest]
    return x, y, [f"{city.inputs.lagoon.name}, {wards.specs[w].name}" for w in nearest]


def _offshore_points(
    shore: shapely.Geometry, n: int, city: CityGeography, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points a little off a shoreline, on whichever side is water."""
    parts = shapely.get_parts(shore)
    lengths = shapely.length(parts)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    found = 0
    while found < n:
        part = rng.choice(len(parts), size=2 * n, p=lengths / lengths.sum())
        d = rng.uniform(0.05, 0.95, 2 * n) * lengths[part]
        for side in (1.0, -1.0):
            x, y = sample_along(parts[part], d, np.full(2 * n, side * WATER_OFFSET_M))
            wet = ~shapely.contains_xy(city.land_utm, x, y)
            xs.append(x[wet])
            ys.append(y[wet])
        found = sum(len(a) for a in xs)
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _river_sites(
    estuary: bool, n: int, city: CityGeography, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rivers = [(name, line) for name, line in city.rivers_utm if not shapely.is_empty(line)]
    lines = np.array([shapely.line_merge(line) for _, line in rivers], dtype=object)
    which = rng.integers(0, len(rivers), n)
    length = shapely.length(lines[which])
    # Rivers are drawn from the hills towards the lagoon, so the mouth is the far end.
    # Stay clear of both ends: one is the map's edge, the other the shore.
    low = np.maximum(length - ESTUARY_M, 0.0) if estuary else np.full(n, 200.0)
    high = length - 50.0 if estuary else np.maximum(length - ESTUARY_M, 201.0)
    d = rng.uniform(low, high)
    x, y = sample_along(lines[which], d, np.zeros(n))
    prefix = "cửa " if estuary else ""
    return x, y, [prefix + rivers[i][0] for i in which]


def incidents_layer(
    categories: Sequence[IncidentCategory],
    anchors: AddressAnchors,
    city: CityGeography,
    wards: WardIndex,
    count: int,
    rng: np.random.Generator,
    reference_epoch: int,
) -> LayerData:
    """Citizen reports near published addresses over the year before the reference date."""
    lon, lat, ward, street = _incident_sites(anchors, city, wards, count, rng)
    weights = np.array([c.weight for c in categories])
    category = rng.choice(len(categories), size=count, p=weights / weights.sum())
    urgent = rng.random(count) < np.array([c.urgent_share for c in categories])[category]
    rainy = np.array([c.rainy_season for c in categories])[category] & (rng.random(count) < RAINY_SHARE)
    window = np.where(rainy, RAINY_SEASON_DAYS, 365) * DAY
    age = np.maximum(np.floor(rng.random(count) * window), 5 * MINUTE)
    reported = reference_epoch - age
    order = np.argsort(reported, kind="stable")
    status, resolved = _lifecycle(age, urgent, rng)
    titles = [
        _title(categories[c].title_templates[int(t * len(categories[c].title_templates))], s)
        for c, t, s in zip(category, rng.random(count), street)
    ]
    years = (reported + LOCAL_OFFSET_S).astype("datetime64[s]").astype("datetime64[Y]").astype(int) + 1970
    reporter, phone = _reporters(count, rng)  # drawn last: the other columns stay as they were
    sequence = np.empty(count, dtype=np.int64)
    sequence[order] = np.arange(1, count + 1)
    return LayerData(
        "incidents",
        {
            "incident_id": [f"PAHT-{yr}-{seq:06d}" for yr, seq in zip(years, sequence)],
            "category": [categories[c].name for c in category],
            "title": titles,
            "urgency": np.where(urgent, "urgent", "routine").astype(object),
            "status": status,
            "ward": wards.names[ward],
            "reported_at": reported.astype(float),
            "due_at": (reported + np.where(urgent, 3, 10) * DAY).astype(float),
            "resolved_at": resolved + reported,
            "reporter_name": reporter,
            "reporter_phone": phone,
        },
        shapely.points(lon, lat),
    )


_FAMILY_NAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Hoàng", "Phan", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô")
_MIDDLE_NAMES = ("Văn", "Thị", "Minh", "Quốc", "Thanh", "Ngọc", "Hữu", "Đức", "Thu", "Hoài")
_GIVEN_NAMES = (
    "An", "Bình", "Cường", "Dũng", "Hà", "Hải", "Hạnh", "Hoa", "Hùng", "Hương", "Khánh", "Lan",
    "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Quang", "Sơn", "Tâm", "Thảo", "Trang", "Tuấn", "Vy", "Yến",
)  # fmt: skip


def _reporters(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fictitious reporters: a Vietnamese name and a phone number in 0900 000 000–0900 999 999, a block
    no operator has issued; a fifth of reporters give no contact."""
    names = np.array(
        [
            f"{_FAMILY_NAMES[a]} {_MIDDLE_NAMES[b]} {_GIVEN_NAMES[c]}"
            for a, b, c in zip(
                rng.integers(0, len(_FAMILY_NAMES), count),
                rng.integers(0, len(_MIDDLE_NAMES), count),
                rng.integers(0, len(_GIVEN_NAMES), count),
            )
        ],
        dtype=object,
    )
    phones = np.array([f"0900 {n // 1000:03d} {n % 1000:03d}" for n in rng.integers(0, 1_000_000, count)], dtype=object)
    anonymous = rng.random(count) < 0.2
    names[anonymous] = None
    phones[anonymous] = None
    return names, phones


def _title(template: str, street: str) -> str:
    """Fill a title template without writing 'đường Đường số 5' for numbered streets."""
    return template.format(street=street).replace("đường Đường", "Đường")


def _incident_sites(
    anchors: AddressAnchors, city: CityGeography, wards: WardIndex, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Lon/lat, ward and street a few metres from random addresses, re-drawn where the jitter left land."""
    lons: list[np.ndarray] = []
    lats: list[np.ndarray] = []
    ws: list[np.ndarray] = []
    streets: list[np.ndarray] = []
    found = 0
    while found < count:
        pick = rng.integers(0, len(anchors), 2 * count)
        angle = rng.uniform(0, 2 * np.pi, 2 * count)
        radius = rng.uniform(0, 12.0, 2 * count)
        x = anchors.x[pick] + radius * np.cos(angle)
        y = anchors.y[pick] + radius * np.sin(angle)
        lon, lat = xy_to_lonlat(x, y)
        ward = wards.locate(lon, lat)
        ok = (ward >= 0) & shapely.contains_xy(city.land_inner_utm, x, y)
        values = (lon, lat, ward, anchors.street[pick])
        for bucket, value in zip((lons, lats, ws, streets), values):
            bucket.append(value[ok])
        found += int(ok.sum())
    return tuple(np.concatenate(parts)[:count] for parts in (lons, lats, ws, streets))


def _lifecycle(age: np.ndarray, urgent: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Status by age (recent reports are more often open) and resolution delay (NaN if open)."""
    limits = np.array([limit for limit, _ in STATUS_BY_AGE])
    probabilities = np.cumsum(np.array([p for _, p in STATUS_BY_AGE]), axis=1)
    bucket = np.searchsorted(limits, age / DAY, side="right")
    bucket = np.minimum(bucket, len(limits) - 1)
    draw = rng.random(len(age))
    status_index = (draw[:, None] >= probabilities[bucket]).sum(axis=1)
    status_index = np.minimum(status_index, len(INCIDENT_STATUSES) - 1)
    status = np.array(INCIDENT_STATUSES, dtype=object)[status_index]
    median = np.where(urgent, 0.8 * DAY, 5 * DAY)
    delay = np.round(median * rng.lognormal(0.0, 0.7, len(age)))
    too_late = delay >= age
    delay = np.where(too_late, np.floor(age * rng.uniform(0.2, 0.95, len(age))), delay)
    delay = np.maximum(delay, 10 * MINUTE)
    done = np.isin(status, ["resolved", "closed"])
    return status, np.where(done, np.minimum(delay, age), np.nan)
