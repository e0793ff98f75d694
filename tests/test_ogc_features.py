"""OGC API – Features core: the documents, paging, parameters, and real clients (GDAL, OWSLib)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyogrio
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point

from layers.features import FeatureInput
from layers.model import LayerDefinition
from layers.store import LayerStore
from tests.signin import ADMIN_KEY, signed_in
from tiles.api import CONFORMANCE as TILES_CONFORMANCE
from twin.app import create_app
from twin.settings import TwinSettings

STREETS = LayerDefinition.model_validate(
    {
        "id": "lights",
        "title": "Đèn đường Quy Nhơn",
        "kind": "infrastructure",
        "geometry_type": "Point",
        "fields": [
            {"name": "road", "type": "string", "title": "Tuyến đường"},
            {"name": "power_w", "type": "integer"},
            {"name": "status", "type": "string", "choices": ["on", "off", "fault"]},
            {"name": "installed_at", "type": "datetime"},
        ],
        "time_field": "installed_at",
    }
)
ROADS = ["Trần Hưng Đạo", "Lê Hồng Phong", "Nguyễn Huệ", "Xuân Diệu"]


@pytest.fixture
def populated(store: LayerStore) -> LayerStore:
    store.create_layer(STREETS)
    store.insert_features(
        "lights",
        [
            FeatureInput(
                Point(109.20 + i * 0.001, 13.76 + (i % 7) * 0.001),
                {
                    "road": ROADS[i % 4],
                    "power_w": 100 + i,
                    "status": ["on", "off", "fault"][i % 3],
                    "installed_at": f"2026-{1 + i % 12:02d}-15T08:00:00+07:00",
                },
            )
            for i in range(57)
        ],
    )
    return store


@pytest.fixture
def client(populated: LayerStore, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path), store=populated)
    with signed_in(TestClient(app)) as test_client:
        yield test_client


def test_landing_conformance_and_collections(client: TestClient) -> None:
    landing = client.get("/").json()
    rels = {link["rel"]: link for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    conforms = set(client.get(rels["conformance"]["href"]).json()["conformsTo"])
    spec = "http://www.opengis.net/spec/"
    assert conforms == {
        f"{spec}ogcapi-features-1/1.0/conf/core",
        f"{spec}ogcapi-features-1/1.0/conf/geojson",
        f"{spec}ogcapi-features-1/1.0/conf/html",
        f"{spec}ogcapi-features-2/1.0/conf/crs",
        f"{spec}ogcapi-features-3/1.0/conf/filter",
        f"{spec}ogcapi-features-3/1.0/conf/features-filter",
        f"{spec}ogcapi-features-3/1.0/conf/queryables",
        f"{spec}ogcapi-features-3/1.0/conf/queryables-query-parameters",
        f"{spec}cql2/1.0/conf/cql2-text",
        f"{spec}cql2/1.0/conf/cql2-json",
        f"{spec}cql2/1.0/conf/basic-cql2",
        f"{spec}cql2/1.0/conf/advanced-comparison-operators",
        f"{spec}cql2/1.0/conf/basic-spatial-functions",
        f"{spec}cql2/1.0/conf/spatial-functions",
        f"{spec}cql2/1.0/conf/temporal-functions",
        f"{spec}cql2/1.0/conf/basic-spatial-functions-plus",
        f"{spec}cql2/1.0/conf/case-insensitive-comparison",
        f"{spec}cql2/1.0/conf/accent-insensitive-comparison",
        f"{spec}cql2/1.0/conf/property-property",
        f"{spec}cql2/1.0/conf/arithmetic",
        f"{spec}ogcapi-records-1/1.0/conf/sorting",
        f"{spec}ogcapi-features-4/1.0/conf/create-replace-delete",
        f"{spec}ogcapi-features-4/1.0/conf/update",
        *TILES_CONFORMANCE,
    }
    [collection] = client.get("/collections").json()["collections"]
    assert collection["id"] == "lights" and collection["title"] == "Đèn đường Quy Nhơn"
    assert collection["itemType"] == "feature"
    bbox = collection["extent"]["spatial"]["bbox"][0]
    assert bbox == pytest.approx([109.20, 13.76, 109.256, 13.766], abs=1e-4)
    assert collection["extent"]["temporal"]["interval"][0][0].startswith("2026-01-15T01:00:00")
    schema = client.get("/collections/lights/schema").json()
    assert schema["properties"]["status"] == {"type": "string", "enum": ["on", "off", "fault"]}
    assert schema["properties"]["road"]["title"] == "Tuyến đường"
    queryables = client.get("/collections/lights/queryables")
    assert queryables.headers["content-type"] == "application/schema+json"
    assert queryables.json()["properties"]["installed_at"] == {"type": "string", "format": "date-time"}


def test_paging_with_next_links_visits_every_feature_once(client: TestClient) -> None:
    url: str | None = "/collections/lights/items?limit=10"
    seen: list[int] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.headers["content-type"] == "application/geo+json"
        body = response.json()
        assert body["type"] == "FeatureCollection" and body["numberReturned"] == len(body["features"])
        seen += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        pages += 1
    assert pages == 6 and len(seen) == 57 and len(set(seen)) == 57


def test_bbox_datetime_and_properties(client: TestClient) -> None:
    body = client.get("/collections/lights/items", params={"bbox": "109.2045,13.75,109.2105,13.77"}).json()
    assert [f["properties"]["power_w"] for f in body["features"]] == [105, 106, 107, 108, 109, 110]
    june = client.get(
        "/collections/lights/items", params={"datetime": "2026-06-01T00:00:00Z/2026-06-30T00:00:00Z", "limit": 100}
    ).json()
    assert {f["properties"]["installed_at"][:7] for f in june["features"]} == {"2026-06"}
    assert len(june["features"]) == 5
    slim = client.get("/collections/lights/items", params={"properties": "road", "limit": 1}).json()
    assert slim["features"][0]["properties"] == {"road": "Trần Hưng Đạo"}


def test_single_feature(client: TestClient) -> None:
    first = client.get("/collections/lights/items?limit=1").json()["features"][0]
    response = client.get(f"/collections/lights/items/{first['id']}")
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["etag"] == f'"{first["id"]}-1"'
    feature = response.json()
    assert feature["properties"] == first["properties"] and feature["geometry"] == first["geometry"]
    assert {link["rel"] for link in feature["links"]} == {"self", "collection"}


@pytest.mark.parametrize(
    ("url", "status", "detail"),
    [
        ("/collections/nowhere", 404, "layer 'nowhere' does not exist"),
        ("/collections/nowhere/items", 404, "does not exist"),
        ("/collections/lights/items/99999", 404, "has no feature 99999"),
        ("/collections/lights/items/abc", 404, "has no feature 'abc'"),
        ("/collections/lights/items/%C2%B9", 404, "has no feature '¹'"),  # "¹".isdigit() is true; found by schemathesis
        ("/collections/lights/items?bbox=1,2,3", 400, "bbox: expected 4 (or 6) numbers"),
        ("/collections/lights/items?bbox=200,0,210,10", 400, "bbox: bbox longitudes"),
        ("/collections/lights/items?datetime=yesterday", 400, "datetime: 'yesterday' is not an RFC 3339"),
        ("/collections/lights/items?limit=0", 400, "limit: must be at least 1"),
        ("/collections/lights/items?limit=many", 400, "limit: 'many' is not an integer"),
        ("/collections/lights/items?properties=colour", 400, "no property 'colour'"),
        ("/collections/lights/items?cursor=x", 400, "cursor"),
        ("/collections/lights/items?f=xml", 400, "unsupported format"),
    ],
)
def test_bad_requests_get_problem_documents(client: TestClient, url: str, status: int, detail: str) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in str(response.json())


def test_limit_is_capped(client: TestClient) -> None:
    assert client.get("/collections/lights/items?limit=1000000").json()["numberReturned"] == 57


# --- real clients against a live server -----------------------------------------------------


@pytest.fixture
def live(server: str, env: dict[str, str], tmp_path: Path) -> str:
    """A running server holding the sample city at a small scale."""
    done = subprocess.run(
        [sys.executable, "-m", "twin", "samples", "--scale", "0.01"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return server


@pytest.fixture
def gis_key(live: str, env: dict[str, str]) -> dict[str, str]:
    """A read-only key for external tools, made as an operator would (``twin keys add``)."""
    done = subprocess.run(
        [sys.executable, "-m", "twin", "keys", "add", "qgis", "--role", "gis_client"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return {"X-API-Key": done.stdout.strip().splitlines()[-1]}


@pytest.mark.skipif(
    shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed (apt-get install gdal-bin)"
)
def test_gdal_reads_every_collection(live: str, gis_key: dict[str, str], tmp_path: Path) -> None:
    layers = httpx.get(f"{live}/admin/layers", headers=gis_key).json()
    assert {layer["id"] for layer in layers} >= {"wards", "incidents", "vessels"}
    key = gis_key["X-API-Key"]
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "30", "GDAL_HTTP_HEADERS": f"X-API-Key: {key}"}
    for layer in layers:
        out = subprocess.run(
            ["ogrinfo", "-ro", "-so", f"OAPIF:{live}/", layer["id"]],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        ).stdout
        expected = httpx.get(f"{live}/admin/layers/{layer['id']}", headers=gis_key).json()["feature_count"]
        assert f"Feature Count: {expected}" in out, out
        for field in layer["fields"]:
            assert f"{field['name']}:" in out
    copy = tmp_path / "wards.gpkg"
    subprocess.run(["ogr2ogr", "-f", "GPKG", str(copy), f"OAPIF:{live}/", "wards"], check=True, env=env, timeout=120)
    copied = pyogrio.read_dataframe(copy)
    assert len(copied) == httpx.get(f"{live}/admin/layers/wards", headers=gis_key).json()["feature_count"]
    assert "Ghềnh Ráng" in set(copied["name"])


def test_owslib_reads_collections_items_and_queryables(live: str, gis_key: dict[str, str]) -> None:
    from owslib.ogcapi.features import Features

    assert "vessels" not in [c["id"] for c in Features(live).collections()["collections"]]  # not public
    api = Features(live, headers=gis_key)
    ids = [c["id"] for c in api.collections()["collections"]]
    assert "parcels" in ids and "vessels" in ids
    page = api.collection_items("incidents", bbox=[109.0, 13.5, 109.4, 14.0], limit=5)
    assert page["numberReturned"] == 5 and all(f["geometry"]["type"] == "Point" for f in page["features"])
    fid = page["features"][0]["id"]
    assert api.collection_item("incidents", fid)["id"] == fid
    queryables = api.collection_queryables("incidents")["properties"]
    assert "urgency" in queryables and "reporter_phone" not in queryables  # sensitive: not the GIS client's


# --- Part 4: transactions ---------------------------------------------------------------------

KEY = {"X-API-Key": "k"}


@pytest.fixture
def writer(populated: LayerStore, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(TwinSettings(data_dir=tmp_path, api_keys=["k", ADMIN_KEY]), store=populated)
    with signed_in(TestClient(app)) as test_client:
        yield test_client


def new_light(**properties: object) -> dict[str, object]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [109.221, 13.771]},
        "properties": {"road": "Ngô Mây", "power_w": 150, "status": "on", **properties},
    }


def test_create_read_replace_patch_delete(writer: TestClient, populated: LayerStore) -> None:
    created = writer.post("/collections/lights/items", json=new_light(), headers=KEY)
    assert created.status_code == 201
    location = created.headers["location"]
    fid = int(location.rsplit("/", 1)[1])
    assert writer.get(location).json()["properties"]["road"] == "Ngô Mây"
    tag = writer.get(location).headers["etag"]

    replaced = writer.put(location, json=new_light(road="Lê Lợi", power_w=90), headers={**KEY, "If-Match": tag})
    assert replaced.status_code == 204 and replaced.headers["etag"] != tag
    stale = writer.put(location, json=new_light(), headers={**KEY, "If-Match": tag})
    assert stale.status_code == 412 and stale.headers["content-type"] == "application/problem+json"

    patched = writer.patch(location, json={"properties": {"status": "fault", "power_w": None}}, headers=KEY)
    assert patched.status_code == 204
    after = writer.get(location).json()["properties"]
    assert after == {"road": "Lê Lợi", "power_w": None, "status": "fault", "installed_at": None}
    assert [v.version for v in populated.history("lights", fid)] == [1, 2, 3]  # every change kept

    assert writer.delete(location, headers={**KEY, "If-Match": tag}).status_code == 412
    assert writer.delete(location, headers=KEY).status_code == 204
    assert writer.get(location).status_code == 404
    assert len(populated.history("lights", fid)) == 3


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({**new_light(), "geometry": {"type": "LineString", "coordinates": [[109, 13], [109.1, 13.1]]}}, "LineString"),
        (new_light(status="broken"), "must be one of on, off, fault"),
        (new_light(power_w="lots"), "field 'power_w' expects an integer"),
        (new_light(colour="red"), "unknown property 'colour'"),
        ({"type": "FeatureCollection", "features": []}, "must be a GeoJSON Feature"),
        ({**new_light(), "geometry": {"type": "Point"}}, "geometry: not a GeoJSON Point"),
        ({**new_light(), "geometry": {"type": "Circle", "coordinates": [109, 13]}}, "'Circle' is not a GeoJSON"),
    ],
)
def test_invalid_writes_name_the_problem(writer: TestClient, body: dict[str, object], detail: str) -> None:
    before = writer.get("/collections/lights/items?limit=1000").json()["numberReturned"]
    response = writer.post("/collections/lights/items", json=body, headers=KEY)
    assert response.status_code == 400 and detail in response.json()["detail"]
    assert writer.get("/collections/lights/items?limit=1000").json()["numberReturned"] == before


def test_writes_need_an_api_key(writer: TestClient) -> None:
    writer.headers.pop("X-API-Key")  # signed out
    assert writer.post("/collections/lights/items", json=new_light()).status_code == 401
    assert writer.delete("/collections/lights/items/1").status_code == 401
    assert writer.delete("/collections/lights/items/%C2%B9", headers=KEY).status_code == 400
    assert writer.get("/collections/lights/items/1", headers=KEY).status_code == 200


# --- Part 2: coordinate reference systems ----------------------------------------------------

EPSG = "http://www.opengis.net/def/crs/EPSG/0/"


@pytest.mark.parametrize("code", ["9217", "3405", "3406", "3857", "4756"])
def test_points_in_vn2000_and_back_land_within_a_centimetre(client: TestClient, code: str) -> None:
    from pyproj import Geod, Transformer

    stored = client.get("/collections/lights/items?limit=5").json()["features"]
    response = client.get(f"/collections/lights/items?limit=5&crs={EPSG}{code}")
    assert response.headers["content-crs"] == f"<{EPSG}{code}>"
    back = Transformer.from_crs(f"EPSG:{code}", "OGC:CRS84")
    for original, projected in zip(stored, response.json()["features"], strict=True):
        lon, lat = back.transform(*projected["geometry"]["coordinates"])
        x, y = original["geometry"]["coordinates"]
        assert Geod(ellps="WGS84").inv(x, y, lon, lat)[2] < 0.01


def test_epsg_4326_is_latitude_first_and_bbox_crs(client: TestClient) -> None:
    plain = client.get("/collections/lights/items?limit=1").json()["features"][0]["geometry"]["coordinates"]
    swapped = client.get(f"/collections/lights/items?limit=1&crs={EPSG}4326").json()
    assert swapped["features"][0]["geometry"]["coordinates"] == pytest.approx(plain[::-1])
    in_lat_lon = client.get(
        "/collections/lights/items", params={"bbox": "13.75,109.2045,13.77,109.2105", "bbox-crs": f"{EPSG}4326"}
    ).json()
    assert [f["properties"]["power_w"] for f in in_lat_lon["features"]] == [105, 106, 107, 108, 109, 110]
    collection = client.get("/collections/lights").json()
    assert f"{EPSG}9217" in collection["crs"] and collection["storageCrs"].endswith("CRS84")


def test_unknown_crs_is_refused(client: TestClient) -> None:
    response = client.get(f"/collections/lights/items?crs={EPSG}2154")
    assert response.status_code == 400 and "is not offered" in response.json()["detail"]


# --- Part 3: CQL2 filters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cql2", "expected"),
    [
        ("power_w > 150", list(range(151, 157))),
        ("150 < power_w", list(range(151, 157))),
        ("power_w BETWEEN 110 AND 112", [110, 111, 112]),
        ("power_w IN (100, 103, 999)", [100, 103]),
        ("road = 'Xuân Diệu' AND power_w < 115", [103, 107, 111]),
        ("road LIKE 'Lê%' AND NOT power_w >= 110", [101, 105, 109]),
        ("status = 'fault' AND power_w <= 108", [102, 105, 108]),
        ("power_w > 110.5 AND power_w < 113", [111, 112]),
        ("S_INTERSECTS(geometry, BBOX(109.2045, 13.75, 109.2105, 13.77))", [105, 106, 107, 108, 109, 110]),
        (
            "S_WITHIN(geometry, POLYGON((109.2045 13.75, 109.2075 13.75, 109.2075 13.77, 109.2045 13.77, "
            "109.2045 13.75)))",
            [105, 106, 107],
        ),
        ("installed_at > TIMESTAMP('2026-12-01T00:00:00Z')", [111, 123, 135, 147]),
        ("road IS NULL", []),
    ],
)
def test_cql2_text_filters(client: TestClient, cql2: str, expected: list[int]) -> None:
    body = client.get("/collections/lights/items", params={"filter": cql2, "limit": 100}).json()
    assert sorted(f["properties"]["power_w"] for f in body["features"]) == expected


def test_cql2_json_filter_and_paging_keep_the_filter(client: TestClient) -> None:
    tree = json.dumps(
        {
            "op": "and",
            "args": [
                {"op": ">=", "args": [{"property": "power_w"}, 120]},
                {"op": "=", "args": [{"property": "status"}, "on"]},
            ],
        }
    )
    url: str | None = f"/collections/lights/items?filter-lang=cql2-json&limit=3&filter={tree}"
    seen: list[int] = []
    while url:
        body = client.get(url).json()
        seen += [f["properties"]["power_w"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert sorted(seen) == [p for p in range(120, 157) if (p - 100) % 3 == 0]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"filter": "power_w >"}, "filter: not valid cql2-text"),
        ({"filter": "colour = 'red'"}, "has no property 'colour'"),
        ({"filter": "power_w = 'lots'"}, "cannot compare field 'power_w' (number) with 'lots' (text)"),
        ({"filter": "power_w = 1; DROP TABLE l_lights"}, "filter: not valid cql2-text"),
        ({"filter": "road = 'x'", "filter-lang": "sql"}, "filter-lang"),
        ({"filter": "{not json", "filter-lang": "cql2-json"}, "not valid cql2-json"),
        ({"filter": "A_CONTAINS(road, ('Xuân Diệu'))"}, "is not supported"),
    ],
)
def test_bad_filters_are_refused_by_name(client: TestClient, params: dict[str, str], detail: str) -> None:
    response = client.get("/collections/lights/items", params=params)
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert client.get("/collections/lights/items?limit=100").json()["numberReturned"] == 57


def test_unknown_query_parameters_are_refused(client: TestClient) -> None:
    response = client.get("/collections/lights/items?ooga=booga")
    assert response.status_code == 400 and "unknown query parameter 'ooga'" in response.json()["detail"]


def test_api_is_valid_openapi_30_and_lists_each_collections_properties(client: TestClient) -> None:
    from openapi_spec_validator import validate

    landing = client.get("/").json()
    [desc] = [link for link in landing["links"] if link["rel"] == "service-desc"]
    assert desc["type"] == "application/vnd.oai.openapi+json;version=3.0"
    response = client.get(desc["href"])
    assert response.headers["content-type"] == desc["type"]
    document = response.json()
    validate(document)  # raises on anything OpenAPI 3.0 does not allow
    assert document["openapi"] == "3.0.3"
    assert "/collections/lights/items" in document["paths"]
    feature = document["components"]["schemas"]["lights_feature"]["properties"]["properties"]["properties"]
    assert set(feature) == {"road", "power_w", "status", "installed_at"}
    assert feature["status"]["enum"] == ["on", "off", "fault"]
    assert "400" in document["paths"]["/collections/{collection_id}/items"]["get"]["responses"]


OGCTESTS_VENV = Path(__file__).resolve().parents[1] / ".venv-ogctests"


def _ogctests_python() -> Path:
    """ogctests pins httpx<0.28 and pytest<9, so it lives in a venv of its own, made on first use."""
    python = OGCTESTS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(OGCTESTS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "ogctests==0.1.15"], check=True, timeout=600)
    return python


def test_ogc_test_suite_core(live: str) -> None:
    result = subprocess.run(
        [str(_ogctests_python()), "-m", "ogctests", "features/core", "-i", live],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=OGCTESTS_VENV,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary and "29 passed" in summary, result.stdout[-3000:]


def test_queryables_as_query_parameters_and_link_header(client: TestClient) -> None:
    response = client.get("/collections/lights/items", params={"road": "Xuân Diệu", "status": "on", "limit": 100})
    assert sorted(f["properties"]["power_w"] for f in response.json()["features"]) == [103, 115, 127, 139, 151]
    assert 'rel="http://www.opengis.net/def/rel/ogc/1.0/queryables"' in response.headers["link"]
    bad = client.get("/collections/lights/items", params={"power_w": "lots"})
    assert bad.status_code == 400 and "expects an integer" in bad.json()["detail"]


def test_number_matched_when_cheap(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    first = client.get("/collections/lights/items", params={"limit": 10, "filter": "power_w >= 120"}).json()
    assert first["numberMatched"] == 37 and first["numberReturned"] == 10
    following = next(link["href"] for link in first["links"] if link["rel"] == "next")
    assert "numberMatched" not in client.get(following).json()  # later pages do not count again
    import ogc.features

    monkeypatch.setattr(ogc.features, "COUNT_CAP", 20)
    assert "numberMatched" not in client.get("/collections/lights/items?limit=10").json()  # too many to count
    assert client.get("/collections/lights/items?limit=100").json()["numberMatched"] == 57  # one page: no count


def test_items_as_csv(client: TestClient) -> None:
    import csv
    import io

    response = client.get("/collections/lights/items", params={"f": "csv", "limit": 3, "filter": "power_w < 103"})
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["power_w"] for r in rows] == ["100", "101", "102"]
    assert rows[0]["road"] == "Trần Hưng Đạo" and rows[0]["geometry"].startswith("POINT (109.2")
    assert set(rows[0]) == {"id", "road", "power_w", "status", "installed_at", "geometry"}


def test_database_encoding_matches_python_encoding(client: TestClient, populated: LayerStore) -> None:
    """PostGIS writes the GeoJSON of a page itself; it must say what Python's encoder says."""
    from layers.features import FeatureQuery
    from ogc.geojson import encode_features

    served = client.get("/collections/lights/items?limit=100").json()["features"]
    expected = [json.loads(text) for text in encode_features(populated.query("lights", FeatureQuery(limit=100)))]
    assert len(served) == len(expected) == 57
    for got, want in zip(served, expected, strict=True):
        assert got["id"] == want["id"] and got["properties"] == want["properties"]
        assert got["geometry"]["type"] == want["geometry"]["type"]
        assert got["geometry"]["coordinates"] == pytest.approx(want["geometry"]["coordinates"], abs=1e-12)


def test_html_pages_for_browsers(client: TestClient) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for path in ["/", "/conformance", "/collections", "/collections/lights"]:
        response = client.get(path, headers=browser)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), path
    page = client.get("/collections/lights/items?limit=5", headers=browser)
    assert page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and page.text.count("<circle") == 5 and "Trần Hưng Đạo" in page.text
    assert "?limit=5&amp;cursor=" in page.text and "f=html" in page.text  # the next page stays HTML
    by_parameter = client.get("/collections/lights/items?limit=5&f=html").text
    assert by_parameter.split("<svg", 1)[1] == page.text.split("<svg", 1)[1]  # same map and table
    assert client.get("/collections/lights/items?limit=5").headers["content-type"] == "application/geo+json"
    fid = client.get("/collections/lights/items?limit=1").json()["features"][0]["id"]
    assert "<circle" in client.get(f"/collections/lights/items/{fid}?f=html").text


def test_html_escapes_what_it_shows(writer: TestClient) -> None:
    created = writer.post("/collections/lights/items", json=new_light(road="<script>alert(1)</script>"), headers=KEY)
    page = writer.get(f"{created.headers['location']}?f=html").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_counts_per_value_are_computed_by_the_server(client: TestClient, populated: LayerStore) -> None:
    everything = populated.query("lights")
    answer = client.get("/collections/lights/counts?groupBy=road").json()
    expected = {road: sum(1 for f in everything if f.properties["road"] == road) for road in ROADS}
    assert {row["value"]: row["count"] for row in answer["counts"]} == expected
    assert answer["total"] == len(everything) and answer["groupBy"] == "road"
    filtered = client.get("/collections/lights/counts", params={"groupBy": "status", "filter": "power_w >= 130"}).json()
    truth = {
        s: sum(1 for f in everything if f.properties["status"] == s and f.properties["power_w"] >= 130)
        for s in ("on", "off", "fault")
    }
    assert {row["value"]: row["count"] for row in filtered["counts"]} == {k: v for k, v in truth.items() if v}
    for bad in ("groupBy=nope", "groupBy=road&filter=nope >", "groupBy=road&colour=red", ""):
        response = client.get(f"/collections/lights/counts?{bad}")
        assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json", bad
    assert client.get("/collections/nothing/counts?groupBy=road").status_code == 404
