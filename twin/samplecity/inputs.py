"""Loading of the hand-written sample inputs in ``data/samples``.

The generator keeps no geography or vocabulary of its own: everything a
reviewer may want to correct (a coastline vertex, a ward name, a street name,
a land-use weight) lives in a data file, so it can be fixed without touching
code.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape

logger = logging.getLogger(__name__)

#: The inputs in the installed package (a wheel carries them there, see pyproject.toml), else in the checkout.
_PACKAGED_INPUTS_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_INPUTS_DIR = (
    _PACKAGED_INPUTS_DIR
    if (_PACKAGED_INPUTS_DIR / "wards.csv").is_file()
    else Path(__file__).resolve().parents[2] / "data" / "samples"
)

LonLat = tuple[float, float]


@dataclass(frozen=True)
class District:
    """An area that receives one rotated street grid."""

    name: str
    kind: str  # "urban" or "rural"
    lit: bool
    polygon: shapely.Geometry  # lon/lat, as drawn (clipped later)
    align_line: tuple[LonLat, ...] | None
    bearing_deg: float | None
    depth_spacing_m: tuple[float, float]
    length_spacing_m: tuple[float, float]
    frontage_m: tuple[float, float]  # width of a typical lot along its street
    wide_lot_share: float  # share of lots two to three plots wide (shops, villas)
    primary_every: int
    secondary_every: int
    special_block_share: float
    street_prefix: str | None


@dataclass(frozen=True)
class NamedLine:
    name: str
    line: shapely.Geometry  # lon/lat LineString
    road_class: str | None


@dataclass(frozen=True)
class NamedArea:
    name: str
    polygon: shapely.Geometry  # lon/lat


@dataclass(frozen=True)
class Geography:
    land: shapely.Geometry
    lagoon: NamedArea
    sea_outline: shapely.Geometry
    vessel_area: shapely.Geometry
    hills: tuple[NamedArea, ...]
    districts: tuple[District, ...]
    arterials: tuple[NamedLine, ...]
    rivers: tuple[NamedLine, ...]


@dataclass(frozen=True)
class WardSpec:
    code: str
    name: str
    ward_type: str  # "Phường" or "Xã"
    district: str  # the city or district the ward belongs to, for addresses
    population: int
    postcode: str
    seeds: tuple[LonLat, ...]


@dataclass(frozen=True)
class StreetName:
    name: str
    tier: str  # primary | secondary | residential


@dataclass(frozen=True)
class LandUse:
    code: str
    name: str
    built: bool
    floors_min: int
    floors_max: int
    owner_types: tuple[str, ...]
    w_street: float
    w_primary: float
    w_block: float
    w_rural: float


@dataclass(frozen=True)
class RoadClass:
    name: str
    title: str
    width_m: tuple[float, float]
    lanes: tuple[int, int]
    light_spacing_m: float
    lamp_power_w: dict[str, tuple[int, ...]]
    drain_diameter_mm: tuple[int, ...]


@dataclass(frozen=True)
class IncidentCategory:
    code: str
    name: str
    weight: float
    urgent_share: float
    rainy_season: bool
    title_templates: tuple[str, ...]


@dataclass(frozen=True)
class SensorKind:
    type: str
    title: str
    unit: str
    threshold: float
    share: float
    normal_range: tuple[float, float]
    exceed_range: tuple[float, float]
    exceed_share: float
    decimals: int
    placements: dict[str, float]
    name_pattern: str
    id_prefix: str


@dataclass(frozen=True)
class VesselStatus:
    name: str
    weight: float
    speed_kn: tuple[float, float]


@dataclass(frozen=True)
class HomePort:
    name: str
    weight: float
    province_code: str


@dataclass(frozen=True)
class VesselVocabulary:
    home_ports: tuple[HomePort, ...]
    name_first: tuple[str, ...]
    name_second: tuple[str, ...]
    named_share: float
    statuses: tuple[VesselStatus, ...]
    length_m: tuple[float, float]


@dataclass(frozen=True)
class SampleInputs:
    geography: Geography
    wards: tuple[WardSpec, ...]
    streets: tuple[StreetName, ...]
    land_uses: tuple[LandUse, ...]
    road_classes: dict[str, RoadClass]
    incident_categories: tuple[IncidentCategory, ...]
    sensor_kinds: tuple[SensorKind, ...]
    vessels: VesselVocabulary


def load_inputs(inputs_dir: Path | None = None) -> SampleInputs:
    """Read every input file; fail loudly on a broken file rather than produce a wrong city."""
    folder = Path(inputs_dir) if inputs_dir is not None else DEFAULT_INPUTS_DIR
    logger.debug("reading sample inputs from %s", folder)
    inputs = SampleInputs(
        geography=_load_geography(folder / "geography.geojson"),
        wards=_load_wards(folder / "wards.csv"),
        streets=tuple(
            StreetName(row["name"].strip(), row["tier"].strip()) for row in _read_csv(folder / "streets.csv")
        ),
        land_uses=_load_land_uses(folder / "land_use.csv"),
        road_classes=_load_road_classes(folder / "road_classes.json"),
        incident_categories=_load_incident_categories(folder / "incident_categories.csv"),
        sensor_kinds=_load_sensor_kinds(folder / "sensor_kinds.json"),
        vessels=_load_vessels(folder / "vessels.json"),
    )
    _check_consistency(inputs)
    return inputs


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _pair(values: Any) -> tuple[float, float]:
    low, high = values
    return float(low), float(high)


def _load_geography(path: Path) -> Geography:
    by_role: dict[str, list[dict[str, Any]]] = {}
    for feature in _read_json(path)["features"]:
        by_role.setdefault(feature["properties"]["role"], []).append(feature)

    def geometry(feature: dict[str, Any]) -> shapely.Geometry:
        geom = shape(feature["geometry"])
        if not geom.is_valid:
            raise ValueError(f"{path.name}: invalid geometry for {feature['properties']['name']!r}")
        return geom

    def single(role: str) -> dict[str, Any]:
        features = by_role.get(role, [])
        if len(features) != 1:
            raise ValueError(f"{path.name}: expected exactly one feature with role {role!r}")
        return features[0]

    lagoon = single("lagoon")
    return Geography(
        land=geometry(single("land")),
        lagoon=NamedArea(lagoon["properties"]["name"], geometry(lagoon)),
        sea_outline=geometry(single("sea_outline")),
        vessel_area=geometry(single("vessel_area")),
        hills=tuple(NamedArea(f["properties"]["name"], geometry(f)) for f in by_role.get("hill", [])),
        districts=tuple(_district(f, geometry(f)) for f in by_role.get("district", [])),
        arterials=tuple(
            NamedLine(f["properties"]["name"], geometry(f), f["properties"].get("road_class"))
            for f in by_role.get("arterial", [])
        ),
        rivers=tuple(NamedLine(f["properties"]["name"], geometry(f), None) for f in by_role.get("river", [])),
    )


def _district(feature: dict[str, Any], polygon: shapely.Geometry) -> District:
    props = feature["properties"]
    align = props.get("align_line")
    bearing = props.get("bearing_deg")
    if align is None and bearing is None:
        raise ValueError(f"district {props['name']!r} needs align_line or bearing_deg")
    return District(
        name=props["name"],
        kind=props["kind"],
        lit=bool(props.get("lit", False)),
        polygon=polygon,
        align_line=tuple((float(x), float(y)) for x, y in align) if align else None,
        bearing_deg=float(bearing) if bearing is not None else None,
        depth_spacing_m=_pair(props["depth_spacing_m"]),
        length_spacing_m=_pair(props["length_spacing_m"]),
        frontage_m=_pair(props["frontage_m"]),
        wide_lot_share=float(props.get("wide_lot_share", 0.0)),
        primary_every=int(props.get("primary_every", 0)),
        secondary_every=int(props.get("secondary_every", 0)),
        special_block_share=float(props.get("special_block_share", 0.0)),
        street_prefix=props.get("street_prefix"),
    )


def _load_wards(path: Path) -> tuple[WardSpec, ...]:
    wards = []
    for row in _read_csv(path):
        seeds = tuple((float(lon), float(lat)) for lon, lat in (item.split() for item in row["seeds"].split("|")))
        wards.append(
            WardSpec(
                code=row["code"].strip(),
                name=row["name"].strip(),
                ward_type=row["ward_type"].strip(),
                district=row["district"].strip(),
                population=int(row["population"]),
                postcode=row["postcode"].strip(),
                seeds=seeds,
            )
        )
    return tuple(wards)


def _load_land_uses(path: Path) -> tuple[LandUse, ...]:
    return tuple(
        LandUse(
            code=row["code"].strip(),
            name=row["name"].strip(),
            built=row["built"].strip().lower() == "true",
            floors_min=int(row["floors_min"]),
            floors_max=int(row["floors_max"]),
            owner_types=tuple(part.strip() for part in row["owner_types"].split("|")),
            w_street=float(row["w_street"]),
            w_primary=float(row["w_primary"]),
            w_block=float(row["w_block"]),
            w_rural=float(row["w_rural"]),
        )
        for row in _read_csv(path)
    )


def _load_road_classes(path: Path) -> dict[str, RoadClass]:
    classes = {}
    for name, spec in _read_json(path).items():
        classes[name] = RoadClass(
            name=name,
            title=spec["title"],
            width_m=_pair(spec["width_m"]),
            lanes=(int(spec["lanes"][0]), int(spec["lanes"][1])),
            light_spacing_m=float(spec["light_spacing_m"]),
            lamp_power_w={k: tuple(int(v) for v in vals) for k, vals in spec["lamp_power_w"].items()},
            drain_diameter_mm=tuple(int(v) for v in spec["drain_diameter_mm"]),
        )
    return classes


def _load_incident_categories(path: Path) -> tuple[IncidentCategory, ...]:
    return tuple(
        IncidentCategory(
            code=row["code"].strip(),
            name=row["name"].strip(),
            weight=float(row["weight"]),
            urgent_share=float(row["urgent_share"]),
            rainy_season=row["rainy_season"].strip().lower() == "true",
            title_templates=tuple(t.strip() for t in row["title_templates"].split("|")),
        )
        for row in _read_csv(path)
    )


def _load_sensor_kinds(path: Path) -> tuple[SensorKind, ...]:
    return tuple(
        SensorKind(
            type=item["type"],
            title=item["title"],
            unit=item["unit"],
            threshold=float(item["threshold"]),
            share=float(item["share"]),
            normal_range=_pair(item["normal_range"]),
            exceed_range=_pair(item["exceed_range"]),
            exceed_share=float(item["exceed_share"]),
            decimals=int(item["decimals"]),
            placements={k: float(v) for k, v in item["placements"].items()},
            name_pattern=item["name_pattern"],
            id_prefix=item["id_prefix"],
        )
        for item in _read_json(path)
    )


def _load_vessels(path: Path) -> VesselVocabulary:
    raw = _read_json(path)
    return VesselVocabulary(
        home_ports=tuple(HomePort(p["name"], float(p["weight"]), p["province_code"]) for p in raw["home_ports"]),
        name_first=tuple(raw["name_first"]),
        name_second=tuple(raw["name_second"]),
        named_share=float(raw["named_share"]),
        statuses=tuple(
            VesselStatus(name, float(s["weight"]), _pair(s["speed_kn"])) for name, s in raw["statuses"].items()
        ),
        length_m=_pair(raw["length_m"]),
    )


def _check_consistency(inputs: SampleInputs) -> None:
    """Catch drawing mistakes that would make features land in the wrong place."""
    geo = inputs.geography
    land = geo.land
    if geo.vessel_area.intersects(land) or geo.vessel_area.intersects(geo.lagoon.polygon):
        raise ValueError("vessel_area must not touch the land or the lagoon")
    if geo.lagoon.polygon.intersection(land).area > 1e-12:
        raise ValueError("the lagoon overlaps the land polygon")
    for ward in inputs.wards:
        for lon, lat in ward.seeds:
            if not land.contains(shapely.Point(lon, lat)):
                raise ValueError(f"seed {lon} {lat} of ward {ward.name!r} is not on land")
    unknown = {d.kind for d in geo.districts} - {"urban", "rural"}
    if unknown:
        raise ValueError(f"unknown district kinds: {sorted(unknown)}")
    missing = {a.road_class for a in geo.arterials} - set(inputs.road_classes)
    if missing:
        raise ValueError(f"arterials use undefined road classes: {sorted(map(str, missing))}")
