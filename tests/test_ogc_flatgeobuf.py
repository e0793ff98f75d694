"""``f=fgb``: a page of items as FlatGeobuf, read back by GDAL (pyogrio), on both backends."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pyogrio import raw
from pyproj import CRS, Transformer

from tests.test_ogc_features import client, populated  # noqa: F401  (fixtures)


def read(body: bytes) -> tuple[dict[str, object], list[shapely.Geometry], dict[str, np.ndarray]]:
    meta, _, geometry, columns = raw.read(io.BytesIO(body))
    return meta, list(shapely.from_wkb(geometry)), dict(zip(meta["fields"], columns, strict=True))


def test_a_page_as_flatgeobuf_keeps_order_values_and_the_next_link(client: TestClient) -> None:  # noqa: F811
    params = {"limit": 10, "filter": "power_w >= 103", "sortby": "-power_w"}
    geojson = client.get("/collections/lights/items", params=params).json()
    response = client.get("/collections/lights/items", params={**params, "f": "fgb"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/flatgeobuf"
    meta, geometries, columns = read(response.content)
    assert CRS.from_user_input(meta["crs"]).equals(CRS.from_user_input("OGC:CRS84"))
    features = geojson["features"]
    assert list(columns["fid"]) == [f["id"] for f in features]  # the page's (sorted) order
    assert list(columns["road"]) == [f["properties"]["road"] for f in features]  # Vietnamese text intact
    assert list(columns["power_w"]) == [f["properties"]["power_w"] for f in features]
    stamps = [datetime.fromisoformat(f["properties"]["installed_at"]) for f in features]
    assert [np.datetime64(s.astimezone(UTC).replace(tzinfo=None), "ms") for s in stamps] == list(
        columns["installed_at"]
    )
    assert [(g.x, g.y) for g in geometries] == [tuple(f["geometry"]["coordinates"]) for f in features]
    assert 'rel="next"' in response.headers["link"]
    assert any(link["type"] == "application/flatgeobuf" for link in geojson["links"])


def test_flatgeobuf_in_vn2000(client: TestClient) -> None:  # noqa: F811
    uri = "http://www.opengis.net/def/crs/EPSG/0/9217"
    geojson = client.get("/collections/lights/items", params={"limit": 3}).json()
    response = client.get("/collections/lights/items", params={"limit": 3, "f": "fgb", "crs": uri})
    meta, geometries, _ = read(response.content)
    assert CRS.from_user_input(meta["crs"]).to_epsg() == 9217
    to_vn2000 = Transformer.from_crs("OGC:CRS84", "EPSG:9217")
    for geometry, feature in zip(geometries, geojson["features"], strict=True):
        x, y = to_vn2000.transform(*feature["geometry"]["coordinates"])
        assert (geometry.x, geometry.y) == pytest.approx((x, y), abs=1e-6)


def test_flatgeobuf_in_epsg_4326_keeps_longitude_first_as_files_do(client: TestClient) -> None:  # noqa: F811
    geojson = client.get("/collections/lights/items", params={"limit": 3}).json()
    uri = "http://www.opengis.net/def/crs/EPSG/0/4326"
    meta, geometries, _ = read(
        client.get("/collections/lights/items", params={"limit": 3, "f": "fgb", "crs": uri}).content
    )
    assert CRS.from_user_input(meta["crs"]).to_epsg() == 4326
    assert [(g.x, g.y) for g in geometries] == [tuple(f["geometry"]["coordinates"]) for f in geojson["features"]]
