"""Imports of files made by other people: Natural Earth, an OpenStreetMap extract converted by GDAL,
curved GeoPackages, a GeoJSON of mixed types. They come with installed packages (pyogrio's own test
fixtures, GDAL's ogr2ogr from Debian's gdal-bin) and with the CQL2 test data in ``../shared/data``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from layers.errors import InvalidInputError
from layers.features import FeatureQuery
from layers.io.importer import import_file
from layers.io.sources import ReadOptions
from layers.store import LayerStore
from ogc.params import parse_filter
from tests.signin import ADMIN_KEY, signed_in
from twin.app import create_app
from twin.settings import TwinSettings

FIXTURES = Path(pyogrio.__file__).parent / "tests" / "fixtures"
NATURAL_EARTH = FIXTURES / "naturalearth_lowres" / "naturalearth_lowres.shp"
REAL_DATA = Path(os.environ.get("TWIN_REAL_DATA", Path(__file__).parents[2] / "shared" / "data"))
CQL2_DATA = REAL_DATA / "cql2-examples" / "data" / "ne110m4cql2.gpkg"


def _osm_extract(tmp_path: Path, **config: str) -> Path:
    """pyogrio's sample.osm.pbf converted by GDAL's OSM driver, as a user would with ogr2ogr."""
    if shutil.which("ogr2ogr") is None:
        pytest.skip("ogr2ogr (Debian gdal-bin) is not installed")
    out = tmp_path / "osm.gpkg"
    subprocess.run(
        ["ogr2ogr", "-f", "GPKG", str(out), str(FIXTURES / "sample.osm.pbf"), "multipolygons"],
        check=True,
        capture_output=True,
        env={**os.environ, **config},
    )
    return out


def _matching(store: LayerStore, layer: str, cql2: str) -> int:
    return store.count(layer, FeatureQuery(filter=parse_filter(cql2, "cql2-text", None)))


def test_natural_earth_countries_reach_the_antimeridian(store: LayerStore) -> None:
    report = import_file(store, NATURAL_EARTH, "countries")
    assert report.inserted == 177
    russia = store.query("countries", FeatureQuery(filter=parse_filter("name = 'Russia'", "cql2-text", None)))[0]
    west, _, east, _ = russia.geometry.bounds
    assert (west, east) == (-180, 180)  # 180.00000000000006 in the file: rounding, taken as the edge
    assert _matching(store, "countries", "S_INTERSECTS(geometry, BBOX(170, -90, -170, 90))") >= 3


@pytest.mark.skipif(not CQL2_DATA.exists(), reason=f"the CQL2 test data is not at {CQL2_DATA}")
def test_field_names_keep_the_spelling_of_the_file(store: LayerStore) -> None:
    options = ReadOptions(source_layer="ne_110m_admin_0_countries")
    import_file(store, CQL2_DATA, "countries", options=options)
    names = [f.name for f in store.get_layer("countries").fields]
    assert "NAME" in names and "POP_EST" in names and "name" not in names
    assert _matching(store, "countries", "NAME='Luxembourg'") == 1
    assert _matching(store, "countries", "POP_EST>=37589262") == 39
    # Another case finds the same field: a layer's names differ in more than case.
    assert _matching(store, "countries", "name='Luxembourg'") == 1
    luxembourg = store.query("countries", FeatureQuery(filter=parse_filter("NAME='Luxembourg'", "cql2-text", None)))
    assert luxembourg[0].properties["NAME"] == "Luxembourg"
    # A file spelling its columns otherwise fills the same fields.
    report = import_file(store, CQL2_DATA, "countries", options=options)
    assert report.inserted == 177 and store.count("countries") == 354


def test_an_osm_ring_of_two_points_is_named_and_can_be_left_out(store: LayerStore, tmp_path: Path) -> None:
    # Without OSM_USE_CUSTOM_INDEXING=NO, GDAL's OSM driver loses nodes of this file ("Non increasing
    # node id") and writes a multipolygon whose ring has 2 points: real output a user gets.
    extract = _osm_extract(tmp_path)
    with pytest.raises(InvalidInputError, match=r"osm.gpkg: feature 1: invalid geometry: a ring with 2 points"):
        import_file(store, extract, "osm")
    with pytest.raises(InvalidInputError, match="a ring with 2 points; fix it in the source or import with skip"):
        import_file(store, extract, "osm", repair=True)  # nothing make_valid can mend
    assert "osm" not in {layer.id for layer in store.list_layers()}  # all or nothing: not even the layer
    report = import_file(store, extract, "osm", skip_invalid=True)
    assert (report.inserted, report.skipped) == (0, 1)
    assert report.skipped_features[0].feature == 1 and "ring with 2 points" in report.skipped_features[0].reason


def test_the_same_extract_converted_right_imports_whole(store: LayerStore, tmp_path: Path) -> None:
    extract = _osm_extract(tmp_path, OSM_USE_CUSTOM_INDEXING="NO")
    report = import_file(store, extract, "osm")
    assert report.inserted == pyogrio.read_info(extract)["features"] == 8 and report.skipped == 0


@pytest.mark.parametrize(("name", "kind"), [("curvepolygon", "CurvePolygon"), ("multisurface", "MultiSurface")])
def test_curved_geometries_are_named_with_the_way_to_straighten_them(store: LayerStore, name: str, kind: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"feature 1: geometry is a {kind}, a curved type.*CONVERT_TO_LINEAR"):
        import_file(store, FIXTURES / f"{name}.gpkg", name)


def test_repair_reports_what_it_dropped_with_skip_invalid(store: LayerStore, tmp_path: Path) -> None:
    ring = [[109.0, 13.0], [109.1, 13.0], [109.1, 13.1], [109.0, 13.1], [109.0, 13.0]]
    line = [[109.0, 13.0], [109.1, 13.1], [109.0, 13.0], [109.1, 13.1], [109.0, 13.0]]  # no area at all
    bowtie = [[109.0, 13.0], [109.1, 13.1], [109.1, 13.0], [109.0, 13.1], [109.0, 13.0]]
    features = [
        {"type": "Feature", "properties": {"n": i}, "geometry": {"type": "Polygon", "coordinates": [rings]}}
        for i, rings in enumerate([ring, bowtie, line, ring])
    ]
    features.append({"type": "Feature", "properties": {"n": 4}, "geometry": None})
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(InvalidInputError, match="feature 3: invalid geometry"):
        import_file(store, path, "zones", repair=True)
    report = import_file(store, path, "zones", repair=True, skip_invalid=True)
    assert report.inserted == 3  # the two squares and the repaired bow-tie
    assert [(s.feature, s.reason.split(" (")[0]) for s in report.skipped_features] == [
        (3, "invalid geometry"),
        (5, "geometry is missing"),
    ]
    assert all(shapely.is_valid(f.geometry) for f in store.query("zones"))


def test_a_bad_value_far_in_a_geojson_names_its_feature(store: LayerStore, tmp_path: Path) -> None:
    features = [
        {"type": "Feature", "properties": {"so_nha": i}, "geometry": {"type": "Point", "coordinates": [109.2, 13.7]}}
        for i in range(10_000)
    ]
    path = tmp_path / "diem.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    import_file(store, path, "diem")
    assert store.get_layer("diem").field("so_nha").type.value == "integer"  # type: ignore[union-attr]
    features[9_998]["properties"]["so_nha"] = "abc"  # GDAL now reads the column as JSON of mixed types
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(InvalidInputError, match=r"diem.geojson: feature 9999: field 'so_nha' expects an integer"):
        import_file(store, path, "diem")
    assert store.count("diem") == 10_000


def test_an_unknown_encoding_and_too_many_fields_are_refused_by_name(store: LayerStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="'no-such-codec' is not a text encoding"):
        import_file(store, NATURAL_EARTH, "ne", options=ReadOptions(encoding="no-such-codec"))
    wide = tmp_path / "wide.csv"
    columns = ["lon", "lat", *(f"c{i}" for i in range(1_500))]
    wide.write_text(",".join(columns) + "\n" + ",".join(["109.2", "13.7", *("1" * 1_500)]) + "\n")
    with pytest.raises(InvalidInputError, match="1,500 fields; a layer may have at most 1,000"):
        import_file(store, wide, "wide")
    assert "wide" not in {layer.id for layer in store.list_layers()}


def test_http_imports_refuse_by_name_and_never_show_a_server_path(store: LayerStore, tmp_path: Path) -> None:
    extract = _osm_extract(tmp_path)
    data = tmp_path / "var"
    app = create_app(TwinSettings(data_dir=data, api_keys=["k", ADMIN_KEY]), store=store)
    key = {"X-API-Key": "k"}
    with signed_in(TestClient(app)) as client:

        def send(layer: str, name: str, content: bytes, **form: str) -> httpx.Response:
            return client.post(f"/admin/layers/{layer}/import", files={"file": (name, content)}, data=form, headers=key)

        refused = send("osm", "osm.gpkg", extract.read_bytes())
        assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"].startswith("osm.gpkg: feature 1: invalid geometry: a ring with 2 points")
        skipped = send("osm", "osm.gpkg", extract.read_bytes(), skip_invalid="true")
        assert skipped.status_code == 200, skipped.text
        assert skipped.json()["skipped_features"] == [
            {"feature": 1, "reason": "invalid geometry: a ring with 2 points"}
        ]
        for answer in (
            send("bad%0A", "a.geojson", b"{}"),
            send("ne", "ne.geojson", b'{"type": "FeatureCollection"', encoding="no-such-codec"),
            send("junk", "junk.gpkg", b"not a geopackage at all"),
        ):
            assert answer.status_code == 400, answer.text
            assert str(data) not in answer.text and str(tmp_path) not in answer.text, answer.text
        assert "is not a valid layer id" in send("bad%0A", "a.geojson", b"{}").json()["detail"]
