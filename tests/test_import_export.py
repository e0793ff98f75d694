"""Importing and exporting real file formats, on both backends; bad files leave the store untouched."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from pyproj import Transformer
from shapely.geometry import Point, Polygon

from layers.errors import InvalidInputError
from layers.features import FeatureQuery
from layers.io.exporter import export_layer
from layers.io.importer import import_file
from layers.io.sources import ReadOptions
from layers.model import FieldType, LayerDefinition
from layers.store import LayerStore, LoadMode
from tests.conftest import real_data

NAMES = ["Trần Hưng Đạo", "Lê Hồng Phong", "Nguyễn Huệ", "Xuân Diệu", "Ghềnh Ráng"]
LONLAT = [(109.2201, 13.7702), (109.2123, 13.7651), (109.2299, 13.7587), (109.2345, 13.7689), (109.2155, 13.7334)]


def frame(crs: str = "EPSG:4326") -> gpd.GeoDataFrame:
    df = gpd.GeoDataFrame(
        {"ten_duong": NAMES, "so_nha": [12, 45, 7, 101, 3], "dien_tich": [80.5, 120.0, 60.25, 300.0, 95.0]},
        geometry=[Point(x, y) for x, y in LONLAT],
        crs="EPSG:4326",
    )
    return df.to_crs(crs)


def snapshot(store: LayerStore) -> dict[str, int]:
    return {d.id: store.count(d.id) for d in store.list_layers()}


def assert_same_points(store: LayerStore, layer: str, tolerance_deg: float = 1e-7) -> None:
    features = store.query(layer)
    got = sorted((f.properties["ten_duong"], round(f.geometry.x, 9), round(f.geometry.y, 9)) for f in features)
    want = sorted(zip(NAMES, *zip(*LONLAT)))
    assert [g[0] for g in got] == [w[0] for w in want]
    for (_, x, y), (_, wx, wy) in zip(got, want):
        assert abs(x - wx) < tolerance_deg and abs(y - wy) < tolerance_deg


def test_geojson_creates_a_typed_layer(store: LayerStore, tmp_path: Path) -> None:
    path = tmp_path / "duong.geojson"
    frame().to_file(path, driver="GeoJSON")
    report = import_file(store, path, "streets", title="Đường phố")
    assert (report.created, report.inserted) == (True, 5)
    layer = store.get_layer("streets")
    assert layer.title == "Đường phố"
    assert {f.name: f.type for f in layer.fields} == {
        "ten_duong": FieldType.STRING,
        "so_nha": FieldType.INTEGER,
        "dien_tich": FieldType.NUMBER,
    }
    assert_same_points(store, "streets")


@pytest.mark.parametrize("crs", ["EPSG:9217", "EPSG:3405", "EPSG:3406", "EPSG:3857"])
def test_geopackage_in_vn2000_is_reprojected_within_a_centimetre(store: LayerStore, tmp_path: Path, crs: str) -> None:
    path = tmp_path / "points.gpkg"
    frame(crs).to_file(path, driver="GPKG")
    report = import_file(store, path, "points")
    assert report.source_crs == crs
    assert_same_points(store, "points", tolerance_deg=1e-7)  # 1e-7° ≈ 1 cm


def test_zipped_shapefile(store: LayerStore, tmp_path: Path) -> None:
    folder = tmp_path / "shp"
    folder.mkdir()
    frame("EPSG:9217").to_file(folder / "duong.shp", encoding="UTF-8")
    archive = tmp_path / "duong.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in folder.iterdir():
            z.write(part, part.name)
    assert import_file(store, archive, "streets").inserted == 5
    assert_same_points(store, "streets")


def test_csv_with_byte_order_mark_and_lon_lat(store: LayerStore, tmp_path: Path) -> None:
    path = tmp_path / "diem.csv"
    rows = [f"{n},{s},{a},{x},{y}" for n, s, a, (x, y) in zip(NAMES, [12, 45, 7, 101, 3], [1, 2, 3, 4, 5], LONLAT)]
    path.write_bytes(("\ufeffTên đường,so_nha,dien_tich,longitude,latitude\n" + "\n".join(rows) + "\n").encode())
    import_file(store, path, "streets")
    layer = store.get_layer("streets")
    assert layer.fields[0].name == "ten_duong" and layer.fields[0].title == "Tên đường"
    assert_same_points(store, "streets")


def test_csv_in_vn2000_metres(store: LayerStore, tmp_path: Path) -> None:
    to_tm3 = Transformer.from_crs("EPSG:4326", "EPSG:9217", always_xy=True)
    lines = ["ten_duong,x,y"]
    for name, (lon, lat) in zip(NAMES, LONLAT):
        x, y = to_tm3.transform(lon, lat)
        lines.append(f"{name},{x:.4f},{y:.4f}")
    path = tmp_path / "vn2000.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not longitude/latitude"):
        import_file(store, path, "streets")  # no CRS given: metres read as degrees
    assert store.list_layers() == []
    import_file(store, path, "streets", options=ReadOptions(crs="EPSG:9217"))
    assert_same_points(store, "streets")


def test_kml(store: LayerStore, tmp_path: Path) -> None:
    placemarks = "".join(
        f"<Placemark><name>{n}</name><ExtendedData><Data name='so_nha'><value>{i}</value></Data></ExtendedData>"
        f"<Point><coordinates>{x},{y}</coordinates></Point></Placemark>"
        for i, (n, (x, y)) in enumerate(zip(NAMES, LONLAT))
    )
    path = tmp_path / "diem.kml"
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        f"{placemarks}</Document></kml>",
        encoding="utf-8",
    )
    import_file(store, path, "places")
    features = store.query("places")
    assert sorted(f.properties["Name"] for f in features) == sorted(NAMES)  # KML's own spelling
    assert "altitudeMode" not in {f.name for f in store.get_layer("places").fields}


def test_real_ais_csv_with_bom(store: LayerStore) -> None:
    path = real_data("ais-suez-2021-positions.csv")
    report = import_file(store, path, "ais", options=ReadOptions(lon_field="longitude", lat_field="latitude"))
    assert report.inserted == 22_287
    assert [f.name for f in store.get_layer("ais").fields] == ["source_id", "ais_pos_timestamp"]


# --- bad files: a clear message naming the problem, and the store exactly as it was ---------------


@pytest.fixture
def populated(store: LayerStore, tmp_path: Path) -> LayerStore:
    path = tmp_path / "seed.geojson"
    frame().to_file(path, driver="GeoJSON")
    import_file(store, path, "streets")
    return store


def _write_csv(tmp_path: Path, rows: list[str], name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text("ten_duong,so_nha,dien_tich,lon,lat\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "x.geojson").write_text("this is not json") and d / "x.geojson", "x.geojson: cannot read"),
        (lambda d: (d / "x.txt").write_text("a") and d / "x.txt", "unknown file type '.txt'"),
        (lambda d: d / "missing.gpkg", "no such file"),
        (
            lambda d: _write_csv(d, ["A,1,2.5,109.2,13.7", "B,2,2.5,109.2,13.7", "C,three,2.5,109.2,13.7"]),
            r"bad.csv: feature 3: field 'so_nha' expects an integer, got 'three'",
        ),
        (
            lambda d: _write_csv(d, ["A,1,2.5,109.2,13.7", "B,2,2.5,580000,1520000"]),
            r"feature 2: coordinates \(580000, 1.52e\+06\) are not longitude/latitude",
        ),
        (
            lambda d: (
                _write_csv(d, ["A,1,2.5,109.2,13.7"])
                .with_name("bad.csv")
                .write_text("ten_duong,mau,lon,lat\nA,do,109.2,13.7\n")
                and d / "bad.csv"
            ),
            r"column 'mau' is not a field of layer 'streets'",
        ),
    ],
    ids=["unreadable", "unknown-type", "missing", "type-mismatch", "wrong-crs", "unknown-column"],
)
def test_bad_files_change_nothing(populated: LayerStore, tmp_path: Path, make: object, message: str) -> None:
    before = snapshot(populated)
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(InvalidInputError, match=message):
        import_file(populated, path, "streets", mode=LoadMode.REPLACE)
    assert snapshot(populated) == before


def test_wrong_crs_outside_its_area_of_use(populated: LayerStore, tmp_path: Path) -> None:
    path = _write_csv(tmp_path, ["A,1,2.5,109.2,13.7"])  # degrees, declared as VN-2000 metres
    with pytest.raises(InvalidInputError, match="outside where EPSG:9217 is used"):
        import_file(populated, path, "streets", options=ReadOptions(crs="EPSG:9217"))
    assert populated.count("streets") == 5


def test_encoding_problem_and_its_fix(store: LayerStore, tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("ten,lon,lat\nCà Mau,109.2,13.7\n".encode("cp1258"))
    with pytest.raises(InvalidInputError, match="UTF-8"):
        import_file(store, path, "places")
    assert store.list_layers() == []
    import_file(store, path, "places", options=ReadOptions(encoding="cp1258"))
    assert store.query("places")[0].properties["ten"] == "Cà Mau"


def test_invalid_geometry_is_refused_or_repaired(store: LayerStore, tmp_path: Path) -> None:
    bowtie = Polygon([(109.2, 13.7), (109.3, 13.8), (109.3, 13.7), (109.2, 13.8)])
    good = Polygon([(109.0, 13.0), (109.1, 13.0), (109.1, 13.1)])
    path = tmp_path / "zones.geojson"
    gpd.GeoDataFrame({"ten": ["Tốt", "Xấu"]}, geometry=[good, bowtie], crs="EPSG:4326").to_file(path)
    with pytest.raises(InvalidInputError, match=r"zones.geojson: feature 2: invalid geometry: self-intersection at \("):
        import_file(store, path, "zones")
    assert store.list_layers() == []
    import_file(store, path, "zones", repair=True)
    [repaired] = [f.geometry for f in store.query("zones") if f.properties["ten"] == "Xấu"]
    assert repaired.is_valid and len(repaired.geoms) == 2  # both triangles of the bow-tie
    assert repaired.area == pytest.approx(2 * (0.1 * 0.05 / 2))


def test_replace_mode_keeps_the_old_content_in_history(populated: LayerStore, tmp_path: Path) -> None:
    path = _write_csv(tmp_path, ["Mới,1,2.5,109.2,13.7"], name="new.csv")
    report = import_file(populated, path, "streets", mode=LoadMode.REPLACE)
    assert (report.inserted, report.archived) == (1, 5)
    assert [f.properties["ten_duong"] for f in populated.query("streets")] == ["Mới"]
    assert (
        populated.count("streets", FeatureQuery(as_of=populated.query("streets")[0].valid_from.replace(year=2000))) == 0
    )


# --- export ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".csv"])
def test_export_round_trip(populated: LayerStore, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"streets{suffix}"
    assert export_layer(populated, "streets", out) == 5
    assert not list(tmp_path.glob(".*partial*"))
    info = (
        pyogrio.read_info(out, X_POSSIBLE_NAMES="X", Y_POSSIBLE_NAMES="Y")
        if suffix == ".csv"
        else pyogrio.read_info(out)
    )
    assert info["features"] == 5
    import_file(populated, out, "copy", options=ReadOptions())
    assert_same_points(populated, "copy")
    copy = {f.properties["ten_duong"]: f.properties for f in populated.query("copy")}
    assert copy["Trần Hưng Đạo"]["so_nha"] == 12 and copy["Xuân Diệu"]["dien_tich"] == 300.0


def test_export_to_an_unknown_format_is_refused(populated: LayerStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"cannot export to '\.shp'"):
        export_layer(populated, "streets", tmp_path / "x.shp")


def test_definition_given_explicitly(store: LayerStore, tmp_path: Path) -> None:
    path = tmp_path / "duong.geojson"
    frame().to_file(path, driver="GeoJSON")
    definition = LayerDefinition.model_validate(
        {
            "id": "streets",
            "title": "Đường",
            "geometry_type": "Point",
            "fields": [
                {"name": "ten_duong", "type": "string", "required": True},
                {"name": "so_nha", "type": "string"},
                {"name": "dien_tich", "type": "number"},
            ],
        }
    )
    import_file(store, path, "streets", definition=definition)
    assert store.get_layer("streets") == definition
    assert sorted(f.properties["so_nha"] for f in store.query("streets")) == sorted(["12", "45", "7", "101", "3"])
    assert np.isclose(sum(f.properties["dien_tich"] for f in store.query("streets")), 655.75)
    assert json.loads(definition.model_dump_json())["id"] == "streets"
