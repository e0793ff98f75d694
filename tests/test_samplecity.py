"""Behaviour of the Quy Nhơn sample city generator (twin.samplecity), at scale 0.02."""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from twin.samplecity import (
    BASE_COUNTS,
    DEFAULT_INPUTS_DIR,
    LAYER_ORDER,
    REFERENCE_TIME,
    SampleLayer,
    generate_city,
    load_inputs,
    scaled_count,
)
from twin.samplecity.__main__ import main as cli_main

SCALE = 0.02
SEED = 2025
LAND_LAYERS = ("address_points", "parcels", "roads", "street_lights", "drainage", "cameras", "incidents")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
KINDS = {
    "admin_area",
    "address_point",
    "parcel",
    "infrastructure",
    "camera",
    "sensor",
    "vessel",
    "incident",
    "generic",
}
GEOMETRY_TYPES = {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"}
FIELD_TYPES = {"string", "integer", "number", "boolean", "date", "datetime"}
STYLE_KEYS = {
    "color",
    "fill_color",
    "opacity",
    "line_width",
    "radius",
    "min_zoom",
    "max_zoom",
    "label_field",
    "extrude_field",
    "icon",
}
DEFINITION_KEYS = {
    "id",
    "title",
    "description",
    "kind",
    "geometry_type",
    "fields",
    "time_field",
    "end_time_field",
    "source_crs",
    "style",
    "access",
}
REFERENCE = pd.Timestamp(REFERENCE_TIME)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SampleLayer]]:
    out = tmp_path_factory.mktemp("city")
    return out, generate_city(out, seed=SEED, scale=SCALE)


@pytest.fixture(scope="module")
def city_dir(city: tuple[Path, list[SampleLayer]]) -> Path:
    return city[0]


@pytest.fixture(scope="module")
def frames(city_dir: Path) -> dict[str, Any]:
    return {layer_id: pyogrio.read_dataframe(city_dir / f"{layer_id}.gpkg") for layer_id in LAYER_ORDER}


@pytest.fixture(scope="module")
def definitions(city_dir: Path) -> dict[str, dict[str, Any]]:
    raw = json.loads((city_dir / "layers.json").read_text(encoding="utf-8"))
    return {d["id"]: d for d in raw}


@pytest.fixture(scope="module")
def land() -> shapely.Geometry:
    geometry = load_inputs().geography.land
    shapely.prepare(geometry)
    return geometry


def test_returns_one_sample_layer_per_gpkg_in_load_order(city: tuple[Path, list[SampleLayer]]) -> None:
    out, layers = city
    assert [layer.definition["id"] for layer in layers] == list(LAYER_ORDER)
    listed = json.loads((out / "layers.json").read_text(encoding="utf-8"))
    assert [d["id"] for d in listed] == list(LAYER_ORDER)
    for layer, definition in zip(layers, listed):
        assert layer.path == out / f"{definition['id']}.gpkg"
        assert layer.path.exists()
        assert layer.definition == definition
    with pytest.raises(AttributeError):
        layers[0].path = out  # type: ignore[misc]  # frozen


def test_layers_json_follows_the_definition_format(definitions: dict[str, dict[str, Any]]) -> None:
    for layer_id, d in definitions.items():
        assert set(d) == DEFINITION_KEYS, layer_id
        assert ID_PATTERN.match(d["id"])
        assert d["kind"] in KINDS
        assert d["geometry_type"] in GEOMETRY_TYPES
        assert d["source_crs"] == "EPSG:4326"
        assert isinstance(d["title"], str) and d["title"].strip()
        assert isinstance(d["description"], str) and d["description"].strip()
        names = [f["name"] for f in d["fields"]]
        assert len(names) == len(set(names)) and names
        for f in d["fields"]:
            assert set(f) == {"name", "type", "title", "required", "choices", "sensitive"}
            assert ID_PATTERN.match(f["name"])
            assert f["type"] in FIELD_TYPES
            assert isinstance(f["title"], str) and f["title"]
            assert isinstance(f["required"], bool)
            choices = f["choices"]
            assert choices is None or (
                isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices)
            )
        types = {f["name"]: f["type"] for f in d["fields"]}
        for key in ("time_field", "end_time_field"):
            assert d[key] is None or types.get(d[key]) == "datetime", (layer_id, key)
        assert set(d["style"]) == STYLE_KEYS
        for key in ("label_field", "extrude_field"):
            assert d["style"][key] is None or d["style"][key] in types
    assert definitions["parcels"]["style"]["extrude_field"] == "height_m"
    assert definitions["vessel_tracks"]["time_field"] == "started_at"
    assert definitions["vessel_tracks"]["end_time_field"] == "ended_at"
    assert definitions["wards"]["style"]["opacity"] < 0.5


def test_every_file_reads_back_with_declared_fields_and_geometry(
    city_dir: Path, definitions: dict[str, dict[str, Any]], frames: dict[str, Any]
) -> None:
    for layer_id, d in definitions.items():
        info = pyogrio.read_info(city_dir / f"{layer_id}.gpkg")
        assert pyogrio.list_layers(city_dir / f"{layer_id}.gpkg")[:, 0].tolist() == [layer_id]
        assert info["crs"] == "EPSG:4326"
        assert info["geometry_type"] == d["geometry_type"]
        assert list(info["fields"]) == [f["name"] for f in d["fields"]]
        frame = frames[layer_id]
        assert set(frame.geom_type) == {d["geometry_type"]}, layer_id
        for f in d["fields"]:
            column = frame[f["name"]]
            if f["type"] == "integer":
                assert column.dtype == np.int64, (layer_id, f["name"])
            elif f["type"] == "number":
                assert column.dtype == np.float64, (layer_id, f["name"])
            elif f["type"] == "datetime":
                assert isinstance(column.dtype, pd.DatetimeTZDtype), (layer_id, f["name"])
            else:
                assert column.dropna().map(type).eq(str).all(), (layer_id, f["name"])
            if f["required"]:
                assert column.notna().all(), (layer_id, f["name"])
            if f["choices"] is not None:
                assert set(column.dropna()) <= set(f["choices"]), (layer_id, f["name"])


def test_feature_counts_follow_the_scale(frames: dict[str, Any]) -> None:
    assert len(frames["wards"]) == len(load_inputs().wards)  # never scaled
    for layer_id, count in BASE_COUNTS.items():
        assert len(frames[layer_id]) == scaled_count(count, SCALE), layer_id
    assert len(frames["vessel_tracks"]) == len(frames["vessels"])
    assert len(frames["parcels"]) >= 20_000 * SCALE
    assert len(frames["roads"]) >= 1


def test_same_seed_gives_identical_layers(city_dir: Path, tmp_path: Path) -> None:
    generate_city(tmp_path, seed=SEED, scale=SCALE)
    for layer_id in LAYER_ORDER:
        first = pyogrio.read_dataframe(city_dir / f"{layer_id}.gpkg")
        second = pyogrio.read_dataframe(tmp_path / f"{layer_id}.gpkg")
        pd.testing.assert_frame_equal(first.drop(columns="geometry"), second.drop(columns="geometry"))
        assert shapely.equals_exact(first.geometry.values, second.geometry.values, tolerance=0).all()
        assert (city_dir / f"{layer_id}.gpkg").read_bytes() == (tmp_path / f"{layer_id}.gpkg").read_bytes()
    assert (city_dir / "layers.json").read_bytes() == (tmp_path / "layers.json").read_bytes()


def test_another_seed_gives_another_city(frames: dict[str, Any], tmp_path: Path) -> None:
    generate_city(tmp_path, seed=SEED + 1, scale=SCALE)
    for layer_id in ("address_points", "parcels", "vessels", "incidents"):
        other = pyogrio.read_dataframe(tmp_path / f"{layer_id}.gpkg")
        same_size = len(other) == len(frames[layer_id])
        same_geometry = (
            same_size and shapely.equals_exact(other.geometry.values, frames[layer_id].geometry.values).all()
        )
        assert not same_geometry, layer_id


def test_land_features_lie_within_the_land_polygon(frames: dict[str, Any], land: shapely.Geometry) -> None:
    for layer_id in LAND_LAYERS:
        assert shapely.within(frames[layer_id].geometry.values, land).all(), layer_id
    sensors = frames["sensors"]
    on_land = sensors["ward"] != ""
    assert shapely.within(sensors.geometry.values[on_land], land).all()
    assert not shapely.intersects(sensors.geometry.values[~on_land], land).any()
    assert (sensors.loc[sensors["sensor_type"] == "pm25", "ward"] != "").all()  # air sensors are on land


def test_wards_tile_the_land_without_gaps_or_overlaps(frames: dict[str, Any], land: shapely.Geometry) -> None:
    wards = frames["wards"].geometry.values
    union = shapely.union_all(wards)
    assert shapely.difference(union, land).area < 1e-12
    assert shapely.difference(land, union).area < 1e-12
    assert shapely.area(wards).sum() == pytest.approx(land.area, rel=1e-9)
    assert (frames["wards"]["area_km2"] > 0).all()


def test_vessels_and_tracks_are_at_sea(frames: dict[str, Any], land: shapely.Geometry) -> None:
    lagoon = load_inputs().geography.lagoon.polygon
    vessels, tracks = frames["vessels"], frames["vessel_tracks"]
    for geometries in (vessels.geometry.values, tracks.geometry.values):
        assert not shapely.intersects(geometries, land).any()
        assert not shapely.intersects(geometries, lagoon).any()
        assert shapely.within(geometries, shapely.box(109.26, 13.55, 109.60, 14.05)).all()
    assert (shapely.get_num_points(tracks.geometry.values) == 145).all()
    ends = shapely.get_point(tracks.geometry.values, -1)
    assert shapely.equals(ends, vessels.geometry.values).all()
    assert (tracks["registration_no"].to_numpy() == vessels["registration_no"].to_numpy()).all()
    assert ((tracks["ended_at"] - tracks["started_at"]) == pd.Timedelta(hours=24)).all()
    assert (tracks["ended_at"] == vessels["observed_at"]).all()
    assert vessels["registration_no"].str.match(r"^[A-ZĐ][A-Za-zĐ]*-\d{5}-TS$").all()
    assert vessels["mmsi"].str.match(r"^574\d{6}$").all()


def test_every_address_carries_the_ward_that_contains_it(frames: dict[str, Any]) -> None:
    wards, points = frames["wards"], frames["address_points"]
    x, y = points.geometry.x.to_numpy(), points.geometry.y.to_numpy()
    containing = np.full(len(points), "", dtype=object)
    for name, polygon in zip(wards["name"], wards.geometry.values):
        containing[shapely.contains_xy(polygon, x, y)] = name
    assert (containing == points["ward"].to_numpy()).all()
    for ward_layer in ("parcels", "cameras", "incidents"):
        assert set(frames[ward_layer]["ward"]) <= set(wards["name"])


def test_parcels_do_not_overlap(frames: dict[str, Any]) -> None:
    parcels = frames["parcels"].geometry.values
    assert shapely.is_valid(parcels).all()
    assert shapely.union_all(parcels).area == pytest.approx(shapely.area(parcels).sum(), rel=1e-9)
    tree = shapely.STRtree(parcels)
    pairs = tree.query(parcels, predicate="overlaps")
    assert pairs.shape[1] == 0
    built = frames["parcels"]["floors"] > 0
    assert (frames["parcels"].loc[~built, "height_m"] == 0).all()
    ratio = frames["parcels"].loc[built, "height_m"] / frames["parcels"].loc[built, "floors"]
    assert ratio.between(3.0, 4.0).all()


def test_vietnamese_text_survives_the_round_trip(frames: dict[str, Any]) -> None:
    with (DEFAULT_INPUTS_DIR / "wards.csv").open(encoding="utf-8", newline="") as handle:
        ward_names = [row["name"] for row in csv.DictReader(handle)]
    assert frames["wards"]["name"].tolist() == ward_names
    expected = {"Hải Cảng", "Thị Nại", "Ghềnh Ráng", "Nhơn Bình", "Lê Hồng Phong", "Trần Hưng Đạo"}
    assert expected <= set(ward_names)
    addresses = frames["address_points"]
    suffix = r", (?:phường|xã) .+, (?:Quy Nhơn|Tuy Phước)$"
    assert addresses["full_address"].str.contains(suffix).all()
    for house, street, ward, full in zip(
        addresses["house_number"], addresses["street"], addresses["ward"], addresses["full_address"]
    ):
        assert full.startswith(f"{house} {street}, ") and ward in full
    assert addresses["house_number"].str.match(r"^\d+([AB]|/\d+)?$").all()
    assert frames["cameras"]["name"].str.startswith("Camera ngã tư ").all()
    assert frames["parcels"]["land_use_name"].str.startswith("Đất").all()


def test_timestamps_derive_from_the_reference_date(frames: dict[str, Any]) -> None:
    day = pd.Timedelta(days=1)
    sensors = frames["sensors"]["observed_at"]
    assert ((sensors <= REFERENCE) & (sensors >= REFERENCE - day)).all()
    incidents = frames["incidents"]
    reported = incidents["reported_at"]
    assert ((reported < REFERENCE) & (reported >= REFERENCE - 365 * day)).all()
    expected_due = incidents["reported_at"] + pd.to_timedelta(
        np.where(incidents["urgency"] == "urgent", 3, 10), unit="D"
    )
    assert (incidents["due_at"] == expected_due).all()
    done = incidents["status"].isin(["resolved", "closed"])
    assert incidents.loc[done, "resolved_at"].notna().all()
    assert incidents.loc[~done, "resolved_at"].isna().all()
    resolved = incidents.loc[done]
    assert (resolved["resolved_at"] >= resolved["reported_at"]).all()
    assert (resolved["resolved_at"] <= REFERENCE).all()
    assert (frames["vessels"]["observed_at"] <= REFERENCE).all()


def test_another_clock_moves_every_timestamp_and_nothing_else(frames: dict[str, Any], tmp_path: Path) -> None:
    """``twin samples`` sets the clock to the current minute: the same city, its times moved with it."""
    later = REFERENCE_TIME + timedelta(days=400, hours=9, minutes=30)
    moved = {
        layer.definition["id"]: pyogrio.read_dataframe(layer.path)
        for layer in generate_city(tmp_path, seed=SEED, scale=SCALE, reference=later)
    }
    shift = pd.Timedelta(later - REFERENCE_TIME)
    for layer_id, columns in {
        "sensors": ["observed_at"],
        "vessels": ["observed_at"],
        "incidents": ["reported_at", "due_at", "resolved_at"],
    }.items():
        before, after = frames[layer_id], moved[layer_id]
        for column in columns:
            pd.testing.assert_series_equal(after[column], (before[column] + shift).astype(after[column].dtype))
        same = [c for c in before.columns if c not in columns and c != "incident_id"]
        pd.testing.assert_frame_equal(after[same], before[same])
    # Report numbers carry the year they were reported in.
    years = moved["incidents"]["reported_at"].dt.tz_convert("+07:00").dt.year.astype(str)
    assert (moved["incidents"]["incident_id"].str.split("-").str[1] == years).all()


def test_inputs_dir_override_is_used(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    shutil.copytree(DEFAULT_INPUTS_DIR, inputs)
    wards_csv = inputs / "wards.csv"
    text = wards_csv.read_text(encoding="utf-8")
    wards_csv.write_text(text.replace("Hải Cảng", "Hải Cảng Mới"), encoding="utf-8")
    generate_city(tmp_path / "out", seed=SEED, scale=SCALE, inputs_dir=inputs)
    wards = pyogrio.read_dataframe(tmp_path / "out" / "wards.gpkg")
    assert "Hải Cảng Mới" in set(wards["name"])


def test_command_line_prints_a_count_per_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main([str(tmp_path), "--seed", "7", "--scale", str(SCALE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    counts = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in lines[: len(LAYER_ORDER)]}
    assert list(counts) == list(LAYER_ORDER)
    assert counts["incidents"] == scaled_count(BASE_COUNTS["incidents"], SCALE)
    assert (tmp_path / "layers.json").exists()


def test_command_line_sets_the_clock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main([str(tmp_path), "--scale", str(SCALE), "--as-of", "2027-03-05T08:30"]) == 0
    clock = pd.Timestamp("2027-03-05T01:30", tz="UTC")  # 08:30 in Quy Nhơn
    observed = pyogrio.read_dataframe(tmp_path / "sensors.gpkg")["observed_at"]
    assert ((observed <= clock) & (observed >= clock - pd.Timedelta(days=1))).all()
    assert "as of 2027-03-05 08:30:00+07:00" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        cli_main([str(tmp_path), "--as-of", "tomorrow"])
    assert refused.value.code == 2
    assert "'tomorrow' is not a date or time like 2026-11-01" in capsys.readouterr().err


def test_the_sample_publishes_its_base_map_and_keeps_reporters_confidential(
    definitions: dict[str, dict[str, Any]],
) -> None:
    public = {layer_id for layer_id, d in definitions.items() if d["access"].get("public")}
    assert public == {"wards", "address_points", "parcels", "roads"}
    sensitive = {f["name"] for f in definitions["incidents"]["fields"] if f["sensitive"]}
    assert sensitive == {"reporter_name", "reporter_phone"}
    assert set(definitions["incidents"]["access"]["sensitive"]) == {"province", "ward_officer"}
    assert not any(f["sensitive"] for d in definitions.values() if d["id"] != "incidents" for f in d["fields"])
