"""OGC API – Tiles over HTTP: documents, tiles, the cache and its invalidation, GDAL reading the tiles.

Runs on both backends through the app; one test drives a live two-worker
server, where a write to one worker must never leave a stale tile in the other.
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import Point, box

import tiles.service
from layers.features import FeatureInput
from layers.model import LayerDefinition, LayerPatch
from layers.signal import SharedCounter
from layers.store import LayerStore
from tests.signin import ADMIN_KEY, signed_in
from tiles.grid import TileAddress, tile_spec
from tiles.service import RECHECK_SECONDS
from twin.app import create_app
from twin.settings import TwinSettings

Z, X, Y = 14, 13162, 7559  # central Quy Nhơn; URLs are /{z}/{row}/{col} = /{z}/{y}/{x}
TILE = f"WebMercatorQuad/{Z}/{Y}/{X}"
TO_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)
SPEC = tile_spec(TileAddress("WebMercatorQuad", Z, X, Y))
W, S, E, N = SPEC.lonlat_box(buffered=False)
CX, CY = (W + E) / 2, (S + N) / 2

LIGHTS = LayerDefinition.model_validate(
    {
        "id": "lights",
        "title": "Đèn đường",
        "kind": "infrastructure",
        "geometry_type": "Point",
        "fields": [{"name": "road", "type": "string"}, {"name": "power_w", "type": "integer"}],
        "style": {"min_zoom": 10, "max_zoom": 18, "color": "#ffcc00"},
    }
)
PARCELS = LayerDefinition.model_validate(
    {
        "id": "parcels",
        "title": "Thửa đất",
        "kind": "parcel",
        "geometry_type": "Polygon",
        "fields": [{"name": "code", "type": "string"}, {"name": "height_m", "type": "number"}],
        "style": {"min_zoom": 13, "extrude_field": "height_m"},
    }
)


def decode(data: bytes) -> dict[str, list[dict[str, Any]]]:
    return {name: layer["features"] for name, layer in mapbox_vector_tile.decode(data).items()}


@pytest.fixture
def populated(store: LayerStore) -> LayerStore:
    store.create_layer(LIGHTS)
    store.create_layer(PARCELS)
    step = (E - W) / 10
    store.insert_features(
        "lights",
        [FeatureInput(Point(W + step * (i + 0.5), CY), {"road": "Trần Hưng Đạo", "power_w": i}) for i in range(10)],
    )
    store.insert_features(
        "parcels",
        [
            FeatureInput(box(CX - step, CY - step, CX, CY), {"code": "QN-1", "height_m": 12.5}),
            FeatureInput(box(CX + 0.5, CY, CX + 0.51, CY + 0.01), {"code": "far away", "height_m": 3.0}),
        ],
    )
    return store


@pytest.fixture
def client(populated: LayerStore, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path, tile_cache_dir=tmp_path / "tiles"), store=populated
    )
    with signed_in(TestClient(app)) as test_client:
        yield test_client


def test_tile_documents(client: TestClient) -> None:
    sets = client.get("/tileMatrixSets").json()["tileMatrixSets"]
    assert [s["id"] for s in sets] == ["WebMercatorQuad"]
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["id"] == "WebMercatorQuad" and len(tms["tileMatrices"]) == 25
    tilesets = client.get("/collections/lights/tiles").json()["tilesets"]
    assert tilesets[0]["dataType"] == "vector"
    tileset = client.get("/collections/lights/tiles/WebMercatorQuad").json()
    item = next(link for link in tileset["links"] if link["rel"] == "item")
    assert item["href"].endswith("/collections/lights/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}")
    assert item["type"] == "application/vnd.mapbox-vector-tile"
    assert tileset["layers"][0]["geometryType"] == "points"
    tilejson = client.get("/collections/lights/tiles/WebMercatorQuad/tilejson.json").json()
    assert tilejson["tilejson"] == "3.0.0"
    assert tilejson["tiles"][0].endswith("/collections/lights/tiles/WebMercatorQuad/{z}/{y}/{x}")
    assert (tilejson["minzoom"], tilejson["maxzoom"]) == (10, 16)
    assert tilejson["vector_layers"][0]["fields"]["road"] == "String"
    assert tilejson["bounds"][0] == pytest.approx(W + (E - W) / 20, abs=1e-4)
    dataset = client.get("/tiles/WebMercatorQuad/tilejson.json?collections=parcels,lights").json()
    assert [v["id"] for v in dataset["vector_layers"]] == ["parcels", "lights"]
    assert "?collections=parcels,lights" in dataset["tiles"][0]
    conforms = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in conforms


def test_a_tile_holds_the_features_and_the_url_template_works(client: TestClient) -> None:
    template = client.get("/collections/lights/tiles/WebMercatorQuad/tilejson.json").json()["tiles"][0]
    url = template.replace("{z}", str(Z)).replace("{x}", str(X)).replace("{y}", str(Y))
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    features = decode(response.content)["lights"]
    assert sorted(f["properties"]["power_w"] for f in features) == list(range(10))
    assert all(f["properties"]["road"] == "Trần Hưng Đạo" for f in features)
    narrowed = decode(client.get(f"/collections/lights/tiles/{TILE}?properties=power_w").content)["lights"]
    assert all(set(f["properties"]) == {"power_w"} for f in narrowed)


def test_dataset_tiles_put_each_collection_in_its_own_layer(client: TestClient) -> None:
    response = client.get(f"/tiles/{TILE}?collections=lights,parcels")
    layers = decode(response.content)
    assert len(layers["lights"]) == 10
    assert [f["properties"] for f in layers["parcels"]] == [{"code": "QN-1", "height_m": 12.5}]
    # Below a layer's min zoom it is left out; other layers are still drawn.
    z12 = tile_spec(TileAddress("WebMercatorQuad", 12, X // 4, Y // 4))
    assert z12.z == 12
    low = decode(client.get(f"/tiles/WebMercatorQuad/12/{Y // 4}/{X // 4}?collections=lights,parcels").content)
    assert set(low) == {"lights"}


def test_gzip_etag_and_empty_tiles(client: TestClient) -> None:
    url = f"/collections/lights/tiles/{TILE}"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == plain.content  # httpx inflates
    etag = plain.headers["etag"]
    assert plain.headers["cache-control"] == "no-cache"
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    empty = client.get("/collections/lights/tiles/WebMercatorQuad/14/0/0")
    assert empty.status_code == 204 and empty.content == b""


def test_bad_tile_requests_are_problems(client: TestClient) -> None:
    cases = {
        "/collections/lights/tiles/WebMercatorQuad/25/0/0": 404,
        "/collections/lights/tiles/WebMercatorQuad/3/0/8": 404,
        "/collections/lights/tiles/WebMercatorQuad/x/0/0": 400,
        "/collections/lights/tiles/WebMercatorQuad/-1/0/0": 400,
        "/collections/lights/tiles/WorldCRS84Quad/3/0/0": 404,
        "/collections/lights/tiles/WebMercatorQuad/9/0/0": 404,  # below the layer's min zoom
        "/collections/nothing/tiles/WebMercatorQuad/14/0/0": 404,
        f"/collections/lights/tiles/{TILE}?properties=nope": 400,
        f"/collections/lights/tiles/{TILE}?colour=red": 400,
        f"/tiles/{TILE}?collections=lights,nothing": 404,
        f"/tiles/{TILE}?collections=lights,lights": 400,
        "/styles/nothing": 404,
    }
    for url, status in cases.items():
        response = client.get(url)
        assert response.status_code == status, url
        assert response.headers["content-type"] == "application/problem+json", url
        assert response.json()["detail"], url


def test_a_write_invalidates_only_the_tiles_it_touches(client: TestClient, populated: LayerStore) -> None:
    built: list[str] = []
    real = populated.vector_tile

    def counting(layer_id: str, spec: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(f"{spec.z}/{spec.x}/{spec.y}")
        return real(layer_id, spec, *args, **kwargs)

    populated.vector_tile = counting  # type: ignore[method-assign]
    here = f"/collections/lights/tiles/{TILE}"
    there = f"/collections/lights/tiles/WebMercatorQuad/{Z}/{Y}/{X + 3}"
    first_here, first_there = client.get(here), client.get(there)
    assert len(built) == 2
    client.get(here), client.get(there)
    assert len(built) == 2  # both cached

    # A light added in this tile: the next request sees it at once; the other tile stays cached.
    populated.insert_features("lights", [FeatureInput(Point(CX, CY + (N - S) / 4), {"road": "Mới", "power_w": 99})])
    after_here = client.get(here)
    assert len(decode(after_here.content)["lights"]) == 11 and after_here.headers["etag"] != first_here.headers["etag"]
    after_there = client.get(there)
    assert after_there.headers["etag"] == first_there.headers["etag"]
    assert built == [f"{Z}/{X}/{Y}", f"{Z}/{X + 3}/{Y}", f"{Z}/{X}/{Y}"]

    # Another store (another process) deletes it: still never stale.
    other = LayerStore.open(str(populated.engine.url.render_as_string(hide_password=False)))
    try:
        newest = max(f.id for f in other.query("lights"))
        other.delete_feature("lights", newest)
    finally:
        other.close()
    assert len(decode(client.get(here).content)["lights"]) == 10

    # Altering the layer changes the catalog: every tile of it is built again.
    from layers.model import LayerPatch

    populated.alter_layer("lights", LayerPatch(rename_fields={"road": "street"}))
    props = decode(client.get(here).content)["lights"][0]["properties"]
    assert "street" in props and "road" not in props


def test_the_disk_cache_survives_a_new_app(populated: LayerStore, tmp_path: Path) -> None:
    settings = TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path, tile_cache_dir=tmp_path / "tiles")
    url = f"/collections/parcels/tiles/{TILE}"
    with signed_in(TestClient(create_app(settings, store=populated))) as first:
        etag = first.get(url).headers["etag"]
    built: list[int] = []
    real = populated.vector_tile
    populated.vector_tile = lambda *a, **k: built.append(1) or real(*a, **k)  # type: ignore[method-assign]
    with signed_in(TestClient(create_app(settings, store=populated))) as second:
        assert second.get(url).headers["etag"] == etag
    assert built == []


def test_style_document_draws_every_layer(client: TestClient) -> None:
    response = client.get("/styles/default")
    assert response.headers["content-type"].startswith("application/vnd.mapbox.style+json")
    style = response.json()
    assert style["version"] == 8 and set(style["sources"]) == {"lights", "parcels"}
    assert style["sources"]["parcels"]["url"].endswith("/collections/parcels/tiles/WebMercatorQuad/tilejson.json")
    ids = [layer["id"] for layer in style["layers"]]
    assert ids.index("parcels-extrusion") < ids.index("lights-circle")  # areas under points
    extrusion = next(layer for layer in style["layers"] if layer["id"] == "parcels-extrusion")
    assert extrusion["paint"]["fill-extrusion-height"][1] == ["to-number", ["get", "height_m"]]
    assert extrusion["metadata"]["twin:layer"] == "parcels"
    circle = next(layer for layer in style["layers"] if layer["id"] == "lights-circle")
    assert circle["paint"]["circle-color"] == "#ffcc00" and circle["minzoom"] == 10


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed (apt install gdal-bin)")
def test_gdal_reads_a_served_tile(client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / f"{Z}-{X}-{Y}.mvt"
    path.write_bytes(client.get(f"/tiles/{TILE}?collections=lights,parcels").content)

    def ogrinfo(*options: str, layer: str | None = None) -> str:
        tile = ["-oo", f"Z={Z}", "-oo", f"X={X}", "-oo", f"Y={Y}"]
        command = ["ogrinfo", "-ro", *options, *tile, str(path), *([layer] if layer else [])]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    out = ogrinfo("-al", "-so")
    assert "Layer name: lights" in out and "Layer name: parcels" in out
    counts = [line for line in out.splitlines() if line.startswith("Feature Count")]
    assert counts == ["Feature Count: 10", "Feature Count: 1"]
    assert "code (String) = QN-1" in ogrinfo(layer="parcels")
    lights = ogrinfo(layer="lights")
    assert lights.count("road (String) = Trần Hưng Đạo") == 10
    assert sorted(int(v) for v in re.findall(r"power_w \(\w+\) = (\d+)", lights)) == list(range(10))
    # GDAL georeferences the tile (EPSG:3857): the parcel lands where it was stored, to a tile unit (0.6 m).
    extents = re.findall(r"Extent: \(([-\d.]+), ([-\d.]+)\) - \(([-\d.]+), ([-\d.]+)\)", out)
    west, south = TO_MERCATOR.transform(CX - (E - W) / 10, CY - (E - W) / 10)
    east, north = TO_MERCATOR.transform(CX, CY)
    assert [float(v) for v in extents[1]] == pytest.approx([west, south, east, north], abs=1.0)


def test_live_server_never_serves_a_stale_tile(server: str) -> None:
    key = {"X-API-Key": "k"}
    with httpx.Client(base_url=server, timeout=30, headers=key) as http:
        assert http.post("/admin/layers", json=LIGHTS.model_dump(mode="json")).status_code == 201
        url = f"/collections/lights/tiles/{TILE}"
        for n in range(1, 6):
            for _ in range(4):  # warm both workers' caches
                http.get(url)
            feature = {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [W + (E - W) * n / 7, CY]},
                "properties": {"road": f"đường {n}", "power_w": n},
            }
            assert http.post("/collections/lights/items", json=feature, headers=key).status_code == 201
            for _ in range(6):  # whichever worker answers, the new light is there
                response = http.get(url)
                assert response.status_code == 200
                assert len(decode(response.content)["lights"]) == n


@contextmanager
def one_machine(store_url: str, tmp_path: Path) -> Iterator[tuple[LayerStore, LayerStore]]:
    """Two stores sharing a counter file, as two processes on one machine, over a store of one light."""
    counter = tmp_path / "writes.counter"
    reader = LayerStore.open(store_url, SharedCounter(counter))
    writer = LayerStore.open(store_url, SharedCounter(counter))
    try:
        for layer in reader.list_layers():
            reader.drop_layer(layer.id)
        writer.create_layer(LIGHTS)
        writer.insert_features("lights", [FeatureInput(Point(CX, CY), {"road": "A", "power_w": 1})])
        yield reader, writer
    finally:
        for layer in writer.list_layers():
            writer.drop_layer(layer.id)
        reader.close()
        writer.close()


def test_with_a_shared_write_counter_cached_tiles_skip_the_database(store_url: str, tmp_path: Path) -> None:
    """Two stores sharing a counter file, as two processes on one machine: a write by either is seen at once."""
    with one_machine(store_url, tmp_path) as (reader, writer):
        checks: list[int] = []
        real = reader.data_versions
        reader.data_versions = lambda ids: checks.append(1) or real(ids)  # type: ignore[method-assign]
        url = f"/collections/lights/tiles/{TILE}"
        with signed_in(
            TestClient(create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path), store=reader))
        ) as client:
            built = client.get(url)
            assert len(decode(built.content)["lights"]) == 1
            for _ in range(5):
                again = client.get(url)  # answered before routing, from the cache
                assert again.content == built.content and again.headers["etag"] == built.headers["etag"]
                assert again.headers["content-type"] == built.headers["content-type"]
                assert again.headers["x-request-id"]
            assert len(checks) == 1  # once when built; then the counter vouches for it
            assert client.get(url, headers={"If-None-Match": built.headers["etag"]}).status_code == 304
            zipped = client.get(url, headers={"Accept-Encoding": "gzip"})  # compressed once, by the route
            assert client.get(url, headers={"Accept-Encoding": "gzip"}).content == zipped.content == built.content
            assert client.get(f"{url}?colour=red").status_code == 400  # the route still judges odd requests
            writer.insert_features("lights", [FeatureInput(Point(CX, CY + 1e-4), {"road": "B", "power_w": 2})])
            assert len(decode(client.get(url).content)["lights"]) == 2
            assert len(checks) == 2
            # A writer the counter cannot see (another machine on the same PostGIS): seen within RECHECK_SECONDS.
            elsewhere = LayerStore.open(store_url)
            try:
                elsewhere.insert_features("lights", [FeatureInput(Point(CX, CY + 2e-4), {"road": "C", "power_w": 3})])
            finally:
                elsewhere.close()
            time.sleep(RECHECK_SECONDS + 0.1)
            assert len(decode(client.get(url).content)["lights"]) == 3


def test_with_the_cache_off_tiles_skip_the_catalog_until_something_changes(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Cold tiles read the layer definitions only when the counter moves; a layer changed by another
    machine in between (one the counter cannot see) is drawn as it is now, not refused."""
    monkeypatch.setattr(tiles.service, "RECHECK_SECONDS", 60.0)  # no periodic re-read during the test
    with one_machine(store_url, tmp_path) as (reader, writer):
        catalog_reads: list[int] = []
        real = reader.registry.version
        reader.registry.version = lambda conn: catalog_reads.append(1) or real(conn)  # type: ignore[method-assign]
        url = f"/collections/lights/tiles/{TILE}"
        with signed_in(
            TestClient(create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path, tile_cache_mb=0), store=reader))
        ) as client:
            assert decode(client.get(url).content)["lights"][0]["properties"] == {"road": "A", "power_w": 1}
            first = len(catalog_reads)
            for _ in range(3):
                assert client.get(url).status_code == 200
            assert len(catalog_reads) == first  # built three times from the definitions at hand
            zipped = client.get(url, headers={"Accept-Encoding": "gzip"})  # built and compressed for this request
            assert zipped.headers["content-encoding"] == "gzip"
            assert decode(zipped.content)["lights"][0]["properties"] == {"road": "A", "power_w": 1}
            elsewhere = LayerStore.open(store_url)
            try:
                elsewhere.alter_layer("lights", LayerPatch(rename_fields={"road": "duong"}, drop_fields=["power_w"]))
            finally:
                elsewhere.close()
            caplog.set_level(logging.INFO, logger="tiles.service")
            assert decode(client.get(url).content)["lights"][0]["properties"] == {"duong": "A"}
            assert "read again" in caplog.text  # the first build, with the old columns, failed
            before = len(catalog_reads)
            writer.insert_features("lights", [FeatureInput(Point(CX, CY + 1e-4), {"duong": "B"})])
            assert len(decode(client.get(url).content)["lights"]) == 2
            assert len(catalog_reads) > before  # the counter moved: read again


def test_the_style_uses_a_dem_as_terrain(client: TestClient, populated: LayerStore, tmp_path: Path) -> None:
    import numpy as np
    from rasterio.transform import from_origin

    from layers.rasters import RasterCatalog, RasterDefinition
    from tests.test_rasters import write_tiff

    heights = np.linspace(0, 500, 64 * 64, dtype="float32").reshape(64, 64)
    path = write_tiff(tmp_path / "dem.tif", heights, from_origin(109.1, 13.9, 0.005, 0.005), "EPSG:4326", nodata=-9999)
    RasterCatalog(populated.engine, tmp_path / "rasters").register(
        RasterDefinition(id="dem", title="Độ cao", kind="dem", source=str(path))
    )
    style = client.get("/styles/default").json()
    assert style["terrain"] == {"source": "terrain", "exaggeration": 1.0}
    terrain = style["sources"]["terrain"]
    assert terrain["type"] == "raster-dem" and terrain["encoding"] == "terrarium"
    tilejson = client.get(terrain["url"].removeprefix("http://testserver")).json()
    assert tilejson["encoding"] == "terrarium"
    assert [layer["id"] for layer in style["layers"]][:2] == ["background", "hillshade"]


def test_a_pmtiles_archive_holds_the_served_tiles(client: TestClient, populated: LayerStore, tmp_path: Path) -> None:
    from pmtiles.reader import MmapSource, Reader

    from tiles.archive import export_pmtiles

    path = tmp_path / "city.pmtiles"
    report = export_pmtiles(populated, ["lights", "parcels"], path, 12, 15)
    assert report.tiles > 0 and path.exists() and not list(tmp_path.glob("*.part"))
    with path.open("rb") as f:
        reader = Reader(MmapSource(f))
        header = reader.header()
        assert (header["min_zoom"], header["max_zoom"]) == (12, 15)
        metadata = reader.metadata()
        assert [v["id"] for v in metadata["vector_layers"]] == ["lights", "parcels"]
        archived = gzip.decompress(reader.get(Z, X, Y))
    served = client.get(f"/tiles/{TILE}?collections=lights,parcels", headers={"Accept-Encoding": "identity"})
    assert archived == served.content
    # GDAL (through pyogrio's bundled GDAL) reads the archive too.
    import pyogrio

    found = pyogrio.read_dataframe(path, layer="lights")
    assert len(found) >= 10 and set(found["road"]) == {"Trần Hưng Đạo"}


def test_a_failed_export_leaves_nothing(populated: LayerStore, tmp_path: Path) -> None:
    out = tmp_path / "exports"
    from layers.errors import InvalidInputError, NotFoundError
    from tiles.archive import export_pmtiles

    with pytest.raises(InvalidInputError):
        export_pmtiles(populated, ["lights"], out / "x.pmtiles", 15, 12)
    with pytest.raises(NotFoundError):
        export_pmtiles(populated, ["lights", "nothing"], out / "x.pmtiles", 12, 13)

    def interrupted(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_pmtiles(populated, ["lights"], out / "x.pmtiles", 12, 15, progress=interrupted)
    assert list(out.iterdir()) == []  # neither the archive nor its temporary file
