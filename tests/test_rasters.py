"""Raster layers: registration on both backends, image and terrain tiles over HTTP, the sample city DEM.

Tiles are decoded with rasterio's PNG/WebP drivers; the terrain checks compare
decoded heights with the DEM read by rasterio at the same places.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from layers.errors import ConflictError, InvalidInputError, NotFoundError
from layers.rasters import RasterCatalog, RasterDefinition, RasterKind, RasterLayer, write_cog_from
from layers.store import LayerStore
from tests.signin import ADMIN_KEY, signed_in
from twin.app import create_app
from twin.samplecity.dem import build_dem, register_sample_dem
from twin.samplecity.inputs import load_inputs
from twin.settings import TwinSettings

WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")
PROBLEM = "application/problem+json"
#: The z12 tile over central Quy Nhơn; the aligned test DEM covers it and its three neighbours.
Z = 12
CITY = WEB_MERCATOR.tile(109.22, 13.77, Z)


def _heights(rows: int, cols: int) -> np.ndarray:
    """A smooth surface with fractional values from about -5 to 600 m."""
    r, c = np.mgrid[0:rows, 0:cols].astype("float64")
    return (300 + 290 * np.sin(r / 97.0) * np.cos(c / 131.0) + 0.013 * r * c / 10).astype("float32")


def write_tiff(path: Path, data: np.ndarray, transform: rasterio.Affine, crs: str | None, **extra: object) -> Path:
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1, "dtype": data.dtype.name}
    profile.update({"transform": transform, "crs": crs, **extra})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rasterio warns about a GeoTIFF without a CRS: that is the point
        with rasterio.open(path, "w", **profile) as dataset:
            dataset.write(data, 1)
    return path


@pytest.fixture
def aligned_dem(tmp_path: Path) -> Path:
    """A COG in EPSG:3857 on the z12 pixel grid of WebMercatorQuad (2×2 tiles): tiles read it without resampling."""
    left, _, _, top = WEB_MERCATOR.xy_bounds(CITY)
    pixel = (WEB_MERCATOR.xy_bounds(CITY).right - left) / 256
    plain = write_tiff(
        tmp_path / "aligned-plain.tif",
        _heights(512, 512),
        from_origin(left, top, pixel, pixel),
        "EPSG:3857",
        nodata=-9999,
    )
    cog = tmp_path / "aligned.tif"
    write_cog_from(plain, cog, continuous=True)
    return cog


@pytest.fixture
def striped_tiff(tmp_path: Path) -> Path:
    """A plain striped GeoTIFF without overviews: not cloud-optimized."""
    return write_tiff(
        tmp_path / "striped.tif", _heights(900, 1100), from_origin(109.1, 13.9, 0.0003, 0.0003), "EPSG:4326"
    )


@pytest.fixture
def catalog(store: LayerStore, tmp_path: Path) -> Iterator[RasterCatalog]:
    """The raster catalog of the store on each backend, empty before and after (the PostGIS server is shared)."""
    opened = RasterCatalog(store.engine, tmp_path / "cogs")
    for layer in opened.list_rasters():
        opened.remove(layer.id)
    yield opened
    for layer in opened.list_rasters():
        opened.remove(layer.id)


# --- registration (both backends) --------------------------------------------


def test_a_cog_registers_in_place_and_every_catalog_sees_it(
    catalog: RasterCatalog, store: LayerStore, aligned_dem: Path, tmp_path: Path
) -> None:
    layer = catalog.register(
        RasterDefinition(id="dem", title="Mô hình số độ cao", kind=RasterKind.DEM, source=str(aligned_dem))
    )
    assert not layer.converted and layer.source == str(aligned_dem.resolve())
    assert layer.crs == "EPSG:3857" and (layer.width, layer.height, layer.band_count) == (512, 512, 1)
    west, _, _, north = WEB_MERCATOR.bounds(CITY)
    assert layer.bounds[0] == pytest.approx(west) and layer.bounds[3] == pytest.approx(north)
    assert layer.maxzoom == Z and layer.minzoom <= Z
    assert layer.value_range is not None and layer.value_range[0] < 50 < 550 < layer.value_range[1]
    assert layer.draw_colormap == "terrain" and layer.draw_rescale == layer.value_range
    other = RasterCatalog(store.engine, tmp_path / "elsewhere")  # another worker's catalog
    assert other.get("dem") == layer
    assert [r.id for r in other.list_rasters()] == ["dem"]


def test_a_geotiff_that_is_not_a_cog_is_converted_and_its_copy_removed_with_it(
    catalog: RasterCatalog, striped_tiff: Path
) -> None:
    assert not cog_validate(str(striped_tiff), strict=True, quiet=True)[0]
    layer = catalog.register(
        RasterDefinition(id="flood", title="Độ sâu ngập", kind=RasterKind.FLOOD_DEPTH, source=str(striped_tiff))
    )
    assert layer.converted and layer.original == str(striped_tiff.resolve())
    copy = Path(layer.source)
    assert copy.parent == catalog.cog_dir and cog_validate(str(copy), strict=True, quiet=True)[0]
    with rasterio.open(copy) as converted, rasterio.open(striped_tiff) as original:
        assert np.array_equal(converted.read(1), original.read(1))
        assert converted.overviews(1)
    assert layer.draw_colormap == "blues" and layer.draw_rescale is not None and layer.draw_rescale[0] == 0
    catalog.remove("flood")
    assert not copy.exists() and striped_tiff.exists()
    with pytest.raises(NotFoundError):
        catalog.get("flood")


def test_files_that_cannot_be_served_are_refused_and_leave_the_catalog_as_it_was(
    catalog: RasterCatalog, aligned_dem: Path, tmp_path: Path
) -> None:
    kept = catalog.register(RasterDefinition(id="dem", title="DEM", kind=RasterKind.DEM, source=str(aligned_dem)))
    text = tmp_path / "notes.tif"
    text.write_text("không phải ảnh", encoding="utf-8")
    no_crs = write_tiff(tmp_path / "no-crs.tif", _heights(64, 64), from_origin(0, 0, 1, 1), None)
    cases = {
        "not a raster": RasterDefinition(id="notes", title="x", source=str(text)),
        "no CRS": RasterDefinition(id="nocrs", title="x", source=str(no_crs)),
        "missing": RasterDefinition(id="missing", title="x", source=str(tmp_path / "absent.tif")),
    }
    for reason, definition in cases.items():
        with pytest.raises(InvalidInputError) as raised:
            catalog.register(definition)
        assert str(tmp_path) not in raised.value.detail, f"{reason}: the message shows a server path"
    with pytest.raises(ConflictError):
        catalog.register(RasterDefinition(id="dem", title="again", source=str(aligned_dem)))
    assert catalog.list_rasters() == [kept]
    assert not catalog.cog_dir.exists() or not any(catalog.cog_dir.iterdir())


def test_hints_are_validated_and_kept(catalog: RasterCatalog, aligned_dem: Path) -> None:
    with pytest.raises(ValueError, match="colormap"):
        RasterDefinition(id="x", title="x", source=str(aligned_dem), colormap="no-such-map")
    with pytest.raises(ValueError, match="rescale"):
        RasterDefinition(id="x", title="x", source=str(aligned_dem), rescale=(5, 1))
    layer = catalog.register(
        RasterDefinition(
            id="hinted",
            title="x",
            source=str(aligned_dem),
            rescale=(0, 100),
            colormap="viridis",
            minzoom=10,
            maxzoom=14,
        )
    )
    assert (layer.minzoom, layer.maxzoom, layer.draw_rescale, layer.draw_colormap) == (10, 14, (0, 100), "viridis")
    replaced = catalog.register(RasterDefinition(id="hinted", title="y", source=str(aligned_dem)), replace=True)
    assert catalog.get("hinted") == replaced and replaced.title == "y"


# --- HTTP --------------------------------------------------------------------


@pytest.fixture
def http(sqlite_store: LayerStore, tmp_path: Path) -> Iterator[tuple[TestClient, RasterCatalog]]:
    settings = TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path / "var")
    rasters = RasterCatalog(sqlite_store.engine, settings.data_dir / "rasters")
    with signed_in(TestClient(create_app(settings, store=sqlite_store))) as client:
        yield client, rasters


def _image(content: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # a tile image has no geotransform
        with MemoryFile(content) as memory, memory.open() as image:
            return image.read()


def _tile_url(raster: str, tile: morecantile.Tile, kind: str = "tiles", suffix: str = "") -> str:
    return f"/rasters/{raster}/{kind}/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}{suffix}"


def test_tiles_are_images_of_the_asked_size_with_cache_headers(
    http: tuple[TestClient, RasterCatalog], aligned_dem: Path, striped_tiff: Path
) -> None:
    client, rasters = http
    rasters.register(RasterDefinition(id="dem", title="DEM", kind=RasterKind.DEM, source=str(aligned_dem)))
    url = _tile_url("dem", CITY)
    png = client.get(url)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert _image(png.content).shape == (4, 256, 256)  # colormapped RGB + alpha
    assert "max-age" in png.headers["cache-control"]
    assert client.get(url, headers={"If-None-Match": png.headers["etag"]}).status_code == 304
    assert client.get(url + ".png").content == png.content
    webp = client.get(url + ".webp?tilesize=512")
    assert webp.headers["content-type"] == "image/webp" and _image(webp.content).shape[1:] == (512, 512)
    assert client.get(url + "?f=jpeg").headers["content-type"] == "image/jpeg"
    gray = client.get(url, params={"colormap_name": "gray", "rescale": "0,600"})
    assert gray.status_code == 200 and gray.content != png.content and gray.headers["etag"] != png.headers["etag"]
    for bad in ({"colormap_name": "nope"}, {"rescale": "600,0"}, {"rescale": "a"}, {"tilesize": "300"}):
        answer = client.get(url, params=bad)
        assert answer.status_code == 400 and answer.headers["content-type"] == PROBLEM, bad
    # A tile over the raster's edge is transparent where the raster is not.
    rasters.register(RasterDefinition(id="striped", title="x", source=str(striped_tiff)))
    edge = WEB_MERCATOR.tile(109.1 + 1e-4, 13.9 - 1e-4, 11)
    alpha = _image(client.get(_tile_url("striped", edge)).content)[3]
    assert alpha.min() == 0 and alpha.max() == 255


def test_terrarium_heights_match_the_dem(http: tuple[TestClient, RasterCatalog], aligned_dem: Path) -> None:
    client, rasters = http
    rasters.register(RasterDefinition(id="dem", title="DEM", kind=RasterKind.DEM, source=str(aligned_dem)))
    tile = client.get(_tile_url("dem", CITY, "terrain", ".png"), params={"tilesize": 256})
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png" and "etag" in tile.headers
    rgb = _image(tile.content).astype("float64")
    assert rgb.shape == (3, 256, 256)
    decoded = rgb[0] * 256 + rgb[1] + rgb[2] / 256 - 32768
    with rasterio.open(aligned_dem) as dem:
        expected = dem.read(1, window=((0, 256), (0, 256)))  # CITY is the DEM's top-left tile
        # One known place: the pixel under a point in the city, as rasterio samples it.
        lon, lat = 109.2234, 13.7712
        x, y = morecantile.tms.get("WebMercatorQuad").xy(lon, lat)
        (sampled,) = next(dem.sample([(x, y)]))
        row, col = dem.index(x, y)
    assert np.abs(decoded - expected).max() <= 1 / 256 + 1e-3
    assert decoded[row, col] == pytest.approx(float(sampled), abs=1 / 256 + 1e-3)

    mapbox = _image(client.get(_tile_url("dem", CITY, "terrain", ".png?encoding=mapbox&tilesize=256")).content)
    r, g, b = mapbox.astype("float64")
    assert np.abs(-10000 + (r * 65536 + g * 256 + b) * 0.1 - expected).max() <= 0.05 + 1e-3
    default = client.get(_tile_url("dem", CITY, "terrain", ".png"))
    assert _image(default.content).shape == (3, 512, 512)  # MapLibre's raster-dem default


def test_a_kept_tile_follows_its_file(
    http: tuple[TestClient, RasterCatalog], aligned_dem: Path, tmp_path: Path
) -> None:
    """Rendered tiles are kept in memory; a DEM rewritten in place is served anew, never from what was kept."""
    client, rasters = http
    rasters.register(RasterDefinition(id="dem", title="DEM", kind=RasterKind.DEM, source=str(aligned_dem)))
    url = _tile_url("dem", CITY, "terrain", ".png?tilesize=256")
    first = client.get(url)
    assert client.get(url).content == first.content
    with rasterio.open(aligned_dem) as dem:
        raised = dem.read(1) + 100
        profile = dem.profile
    plain = write_tiff(tmp_path / "raised.tif", raised, profile["transform"], "EPSG:3857", nodata=-9999)
    write_cog_from(plain, aligned_dem, continuous=True)
    second = client.get(url)
    assert second.headers["etag"] != first.headers["etag"]

    def heights(content: bytes) -> np.ndarray:
        rgb = _image(content).astype("float64")
        return rgb[0] * 256 + rgb[1] + rgb[2] / 256 - 32768

    assert np.abs(heights(second.content) - heights(first.content) - 100).max() <= 2 / 256 + 1e-3


def test_outside_the_raster_the_grid_or_its_zooms_is_a_problem(
    http: tuple[TestClient, RasterCatalog], aligned_dem: Path, striped_tiff: Path
) -> None:
    client, rasters = http
    layer = rasters.register(RasterDefinition(id="dem", title="DEM", kind=RasterKind.DEM, source=str(aligned_dem)))
    rasters.register(RasterDefinition(id="photo", title="x", kind=RasterKind.ORTHOPHOTO, source=str(striped_tiff)))
    far = WEB_MERCATOR.tile(105.85, 21.03, Z)  # Hà Nội
    cases = {
        _tile_url("dem", far): 404,
        _tile_url("dem", far, "terrain", ".png"): 404,
        f"/rasters/dem/tiles/WebMercatorQuad/{layer.maxzoom + 1}/0/0": 404,
        f"/rasters/dem/tiles/WebMercatorQuad/{Z}/{2**Z}/{CITY.y}": 404,
        "/rasters/dem/tiles/WebMercatorQuad/12/-1/5": 400,
        "/rasters/dem/tiles/WebMercatorQuad/z/1/1": 400,
        f"/rasters/dem/tiles/WorldCRS84Quad/{Z}/{CITY.x}/{CITY.y}": 404,
        _tile_url("nothing", CITY): 404,
        _tile_url("dem", CITY, suffix=".gif"): 404,
        _tile_url("photo", CITY, "terrain", ".png"): 404,
        "/rasters/photo/terrain/WebMercatorQuad/tilejson.json": 404,
        "/rasters/nothing": 404,
    }
    for url, status in cases.items():
        answer = client.get(url)
        assert answer.status_code == status, url
        assert answer.headers["content-type"] == PROBLEM, url
        assert answer.json()["status"] == status and "request_id" in answer.json()


def test_tilejson_and_the_raster_documents(http: tuple[TestClient, RasterCatalog], aligned_dem: Path) -> None:
    client, rasters = http
    layer = rasters.register(
        RasterDefinition(id="dem", title="Mô hình số độ cao", kind=RasterKind.DEM, source=str(aligned_dem))
    )
    tilejson = client.get("/rasters/dem/tiles/WebMercatorQuad/tilejson.json?colormap_name=gray").json()
    assert tilejson["tilejson"] == "3.0.0" and tilejson["name"] == "Mô hình số độ cao"
    assert tilejson["tiles"] == [
        "http://testserver/rasters/dem/tiles/WebMercatorQuad/{z}/{x}/{y}.png?colormap_name=gray"
    ]
    assert (tilejson["minzoom"], tilejson["maxzoom"]) == (layer.minzoom, layer.maxzoom)
    assert tilejson["bounds"] == pytest.approx(list(layer.bounds)) and len(tilejson["center"]) == 3
    terrain = client.get("/rasters/dem/terrain/WebMercatorQuad/tilejson.json").json()
    assert terrain["encoding"] == "terrarium" and terrain["tileSize"] == 512
    assert terrain["tiles"] == ["http://testserver/rasters/dem/terrain/WebMercatorQuad/{z}/{x}/{y}.png"]
    mapbox = client.get("/rasters/dem/terrain/WebMercatorQuad/tilejson.json?encoding=mapbox").json()
    assert mapbox["encoding"] == "mapbox" and mapbox["tiles"][0].endswith("{y}.png?encoding=mapbox")

    listing = client.get("/rasters")
    assert listing.status_code == 200 and "max-age" in listing.headers["cache-control"]
    (summary,) = listing.json()["rasters"]
    assert summary["id"] == "dem" and summary["bounds"] == pytest.approx(list(layer.bounds))
    assert (summary["minzoom"], summary["maxzoom"], summary["colormap"]) == (layer.minzoom, layer.maxzoom, "terrain")
    links = {link["rel"]: link["href"] for link in summary["links"]}
    assert links["self"].endswith("/rasters/dem") and links["tiles"].endswith("/tiles/WebMercatorQuad/tilejson.json")
    assert links["terrain"].endswith("/terrain/WebMercatorQuad/tilejson.json")
    assert client.get("/rasters/dem").json() == summary
    assert "/rasters/{raster_id}/terrain/{tms}/{z}/{x}/{y}.png" in client.get("/openapi.json").json()["paths"]


# --- the sample city DEM -----------------------------------------------------


@pytest.fixture(scope="module")
def sample_dem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample DEM as ``twin samples`` writes it (one arc-second), in its own SQLite store."""
    folder = tmp_path_factory.mktemp("samples")
    store = LayerStore.open(f"sqlite:///{folder / 'twin.sqlite'}")
    try:
        layer = register_sample_dem(
            RasterCatalog(store.engine, folder / "rasters"), folder, load_inputs().geography, 2025
        )
    finally:
        store.close()
    return folder, Path(layer.source)


def _bilinear(dataset: rasterio.DatasetReader, lon: float, lat: float) -> float:
    """The DEM at a point between pixel centres, as a bilinear resampler sees it."""
    col, row = ~dataset.transform * (lon, lat)
    c0, r0 = int(np.floor(col - 0.5)), int(np.floor(row - 0.5))
    window = dataset.read(1, window=((r0, r0 + 2), (c0, c0 + 2))).astype("float64")
    fc, fr = col - 0.5 - c0, row - 0.5 - r0
    top = window[0, 0] * (1 - fc) + window[0, 1] * fc
    bottom = window[1, 0] * (1 - fc) + window[1, 1] * fc
    return float(top * (1 - fr) + bottom * fr)


def test_the_sample_dem_is_a_cog_with_sea_plains_and_hills(sample_dem: tuple[Path, Path]) -> None:
    _, path = sample_dem
    assert cog_validate(str(path), strict=True, quiet=True)[0]
    geo = load_inputs().geography
    with rasterio.open(path) as dem:
        assert dem.crs.to_epsg() == 4326 and dem.dtypes[0] == "float32" and dem.nodata is not None
        assert abs(dem.res[0] * 111_000 - 30) < 2  # about 30 m
        west, south, east, north = dem.bounds
        assert west <= 108.95 and east >= 109.40 and south <= 13.60 and north >= 14.00

        def at(lon: float, lat: float) -> float:
            return float(next(dem.sample([(lon, lat)]))[0])

        assert -15 < at(109.33, 13.75) < 0  # Quy Nhơn bay
        assert -4 < at(109.22, 13.84) < 0  # Thị Nại lagoon
        assert 0 < at(109.222, 13.765) < 15  # the city centre
        assert 400 < max(at(109.17 + dx, 13.745 + dy) for dx in (-0.01, 0, 0.01) for dy in (-0.01, 0, 0.01)) < 650
        assert at(109.02, 13.66) > 300  # hills to the west
        # The coastline is the sample city's: land pixels are above sea level, water pixels below.
        from rasterio.features import geometry_mask

        heights = dem.read(1)
        on_land = ~geometry_mask([geo.land], heights.shape, dem.transform)
        assert (heights[on_land] > 0).all()
        assert heights.min() > -15 and heights.max() < 1000


def test_the_sample_dem_is_deterministic() -> None:
    geo = load_inputs().geography
    coarse = {"bounds": (109.1, 13.65, 109.3, 13.85), "pixel_deg": 6 / 3600}
    first, _ = build_dem(geo, 7, **coarse)  # type: ignore[arg-type]
    again, _ = build_dem(geo, 7, **coarse)  # type: ignore[arg-type]
    other, _ = build_dem(geo, 8, **coarse)  # type: ignore[arg-type]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_sample_terrain_tiles_decode_to_the_sample_dem(sample_dem: tuple[Path, Path], tmp_path: Path) -> None:
    folder, path = sample_dem
    store = LayerStore.open(f"sqlite:///{folder / 'twin.sqlite'}")
    try:
        layer: RasterLayer = RasterCatalog(store.engine, folder / "rasters").get("dem")
        assert layer.title == "Mô hình số độ cao Quy Nhơn" and layer.kind is RasterKind.DEM
        with (
            signed_in(
                TestClient(create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path), store=store))
            ) as client,
            rasterio.open(path) as dem,
        ):
            for lon, lat in ((109.1712, 13.7431), (109.2218, 13.7655), (109.3305, 13.7512)):  # hill, city, bay
                tile = WEB_MERCATOR.tile(lon, lat, Z)
                rgb = _image(client.get(_tile_url("dem", tile, "terrain", ".png")).content).astype("float64")
                left, bottom, right, top = WEB_MERCATOR.xy_bounds(tile)
                x, y = WEB_MERCATOR.xy(lon, lat)
                col, row = int((x - left) / (right - left) * 512), int((top - y) / (top - bottom) * 512)
                height = rgb[0, row, col] * 256 + rgb[1, row, col] + rgb[2, row, col] / 256 - 32768
                centre = WEB_MERCATOR.lnglat(
                    left + (col + 0.5) * (right - left) / 512, top - (row + 0.5) * (top - bottom) / 512
                )
                assert height == pytest.approx(_bilinear(dem, centre.x, centre.y), abs=0.5), (lon, lat)
    finally:
        store.close()


# --- the command -------------------------------------------------------------


def test_the_rasters_command_adds_lists_and_removes(
    tmp_path: Path, striped_tiff: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin.cli import app

    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("TWIN_DATABASE_URL", raising=False)
    runner = CliRunner()
    added = runner.invoke(
        app, ["rasters", "add", str(striped_tiff), "--id", "flood", "--title", "Độ sâu ngập", "--kind", "flood_depth"]
    )
    assert added.exit_code == 0, added.output
    assert "converted" in added.output and any((tmp_path / "var" / "rasters").iterdir())
    refused = runner.invoke(app, ["rasters", "add", str(tmp_path), "--id", "bad", "--title", "x"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    listed = runner.invoke(app, ["rasters", "list"])
    assert "flood" in listed.output and "bad" not in listed.output
    assert runner.invoke(app, ["rasters", "remove", "flood", "--yes"]).exit_code == 0
    assert not any((tmp_path / "var" / "rasters").iterdir())
