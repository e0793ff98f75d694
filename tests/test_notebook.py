"""``twin.notebook`` against a live ``twin serve`` with the sample city: geopandas reads, the deck's style,
the page's own tile reader, an offline page drawn by chromium, and the example notebook run headless."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from shapely.geometry import shape

pytest.importorskip("pydeck", reason="twin.notebook needs pydeck (pip install -e '.[notebook]')")

from twin.notebook import _TILE_READER, TwinMap

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "quy-nhon.ipynb"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The sample city (small, fixed clock) in one data folder for the module; ``server`` serves it."""
    data = tmp_path_factory.mktemp("notebook-var")
    environment = {k: v for k, v in os.environ.items() if k != "TWIN_DATABASE_URL"}
    environment |= {"TWIN_DATA_DIR": str(data), "TWIN_API_KEYS": '["k"]', "COLUMNS": "200"}
    command = [sys.executable, "-m", "twin", "samples", "--scale", "0.05", "--as-of", "2026-11-01"]
    subprocess.run(command, env=environment, check=True, capture_output=True)
    return environment


#: The admin key of the ``env`` fixture (TWIN_API_KEYS): incidents and sensors are not public.
KEY = {"X-API-Key": "k"}


def _items(server: str, layer: str, **params: str) -> tuple[list[dict[str, Any]], httpx.Response]:
    response = httpx.get(
        f"{server}/collections/{layer}/items", params={"limit": "10000", **params}, timeout=60, headers=KEY
    )
    response.raise_for_status()
    body = response.json()
    assert not any(link["rel"] == "next" for link in body["links"]), "the whole layer fits in one answer"
    return body["features"], response


def _rgba(colour: str, opacity: float) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)] + [round(255 * opacity)]


def test_geodataframe_is_what_items_answers(server: str) -> None:
    twin = TwinMap(server, api_key="k")
    wards = twin.to_geodataframe("wards")
    features, response = _items(server, "wards")
    assert response.headers["Content-Crs"] == f"<{CRS84}>"
    assert wards.crs is not None and wards.crs.to_string() == "OGC:CRS84"
    assert list(wards.index) == [f["id"] for f in features]
    assert list(wards.columns) == [*features[0]["properties"], "geometry"]
    for feature, (_, row) in zip(features, wards.iterrows(), strict=True):
        assert {k: row[k] for k in feature["properties"]} == feature["properties"]
        assert row.geometry.equals_exact(shape(feature["geometry"]), 1e-12)

    # filter and bbox are passed through, and next links are followed (pages of 3).
    box = (109.15, 13.70, 109.26, 13.85)
    bbox_text = ",".join(map(str, box))
    wanted, _ = _items(server, "incidents", filter="status='new'", bbox=bbox_text)
    assert wanted, "the sample city has new reports in the box"
    found, crs = twin.features("incidents", filter="status='new'", bbox=box, page_size=3)
    assert len(wanted) > 3 and [f["id"] for f in found] == [f["id"] for f in wanted] and crs == CRS84
    new = twin.to_geodataframe("incidents", filter="status='new'", bbox=box)
    assert list(new.index) == [f["id"] for f in wanted] and set(new["status"]) == {"new"}
    assert str(new["reported_at"].dtype).startswith("datetime64") and str(new["reported_at"].dt.tz) == "UTC"


def test_geodataframe_in_vn2000(server: str) -> None:
    """A projected VN-2000 answer keeps its coordinates; a latitude-first one is put back to x/y for geopandas."""
    twin = TwinMap(server, api_key="k")
    projected = twin.to_geodataframe("sensors", crs="http://www.opengis.net/def/crs/EPSG/0/9217")
    features, response = _items(server, "sensors", crs="http://www.opengis.net/def/crs/EPSG/0/9217")
    assert response.headers["Content-Crs"].endswith("/EPSG/0/9217>")
    assert projected.crs.to_epsg() == 9217
    assert [g.coords[0] for g in projected.geometry] == [tuple(f["geometry"]["coordinates"]) for f in features]
    lat_first = twin.to_geodataframe("sensors", crs="http://www.opengis.net/def/crs/EPSG/0/4326")
    plain = twin.to_geodataframe("sensors")
    assert lat_first.crs.to_epsg() == 4326
    assert all(a.equals_exact(b, 1e-9) for a, b in zip(lat_first.geometry, plain.geometry, strict=True))


def test_deck_layers_carry_the_server_style(server: str) -> None:
    style = httpx.get(f"{server}/styles/default", timeout=30, headers=KEY).json()
    paint = {entry["id"]: entry.get("paint", {}) for entry in style["layers"]}
    twin = TwinMap(server, api_key="k").add("wards").add("parcels").add("roads")
    twin.add("incidents", filter="status='new'")
    deck = json.loads(twin.deck().to_json())
    layers = {layer["id"]: layer for layer in deck["layers"]}

    wards = layers["wards"]
    assert wards["@@type"] == "MVTLayer" and wards["getFillColor"] == _rgba(
        paint["wards-fill"]["fill-color"], paint["wards-fill"]["fill-opacity"]
    )
    assert wards["getLineColor"] == _rgba(paint["wards-line"]["line-color"], paint["wards-line"]["line-opacity"])
    assert wards["getLineWidth"] == paint["wards-line"]["line-width"] and wards["lineWidthUnits"] == "pixels"
    assert wards["fetch"] == {"@@function": "twinTileFetch", "headers": {"X-API-Key": "k"}}

    parcels = layers["parcels"]
    extrusion = paint["parcels-extrusion"]
    assert extrusion["fill-extrusion-height"] == ["coalesce", ["to-number", ["get", "height_m"]], 0]
    assert parcels["extruded"] is True and parcels["getElevation"] == "@@=properties.height_m || 0"
    assert parcels["getFillColor"] == _rgba(extrusion["fill-extrusion-color"], extrusion["fill-extrusion-opacity"])
    assert parcels["minZoom"] == next(e["minzoom"] for e in style["layers"] if e["id"] == "parcels-extrusion")
    assert layers["roads"]["getLineWidth"] == paint["roads-line"]["line-width"]
    assert layers["roads"]["filled"] is False

    # The tile template is Twin's tile route: a tile inside the layer answers MVT.
    template = parcels["data"]
    assert template == f"{server}/collections/parcels/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"
    z, row, col = _tile_inside(server, "parcels", 14)
    tile = httpx.get(template.format(z=z, y=row, x=col), timeout=30, headers=KEY)
    assert tile.status_code == 200 and tile.headers["content-type"] == "application/vnd.mapbox-vector-tile"

    # A filter cannot go to the tiles (they take only ``properties``): the layer holds what /items selects.
    refused = httpx.get(template.format(z=z, y=row, x=col), params={"filter": "status='new'"}, timeout=30, headers=KEY)
    assert refused.status_code == 400
    incidents = layers["incidents"]
    wanted, _ = _items(server, "incidents", filter="status='new'")
    assert incidents["@@type"] == "GeoJsonLayer"
    assert [f["id"] for f in incidents["data"]["features"]] == [f["id"] for f in wanted]
    circle = paint["incidents-circle"]
    assert incidents["getFillColor"] == _rgba(circle["circle-color"], circle["circle-opacity"])
    assert incidents["getPointRadius"].endswith(f": {float(circle['circle-radius'])}")

    view = deck["initialViewState"]
    assert view["pitch"] == 45 and view["zoom"] >= parcels["minZoom"]


def _tile_inside(server: str, layer: str, z: int) -> tuple[int, int, int]:
    """The tile under a feature of the layer, at zoom ``z``."""
    import morecantile

    feature = httpx.get(f"{server}/collections/{layer}/items", params={"limit": "1"}, timeout=30, headers=KEY).json()[
        "features"
    ][0]
    point = shape(feature["geometry"]).representative_point()
    tile = morecantile.tms.get("WebMercatorQuad").tile(point.x, point.y, z)
    return tile.z, tile.y, tile.x


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (the page's tile reader runs in JS)")
def test_page_tile_reader_decodes_what_mapbox_vector_tile_decodes(server: str, tmp_path: Path) -> None:
    """The JS reader in every page, run by node over real tiles of each geometry kind, against the Python decoder."""
    import mapbox_vector_tile

    tiles: dict[str, tuple[tuple[int, int, int], bytes]] = {}
    for layer, z in (("wards", 13), ("parcels", 15), ("roads", 14), ("address_points", 15), ("vessel_tracks", 10)):
        z, row, col = _tile_inside(server, layer, z)
        body = httpx.get(
            f"{server}/collections/{layer}/tiles/WebMercatorQuad/{z}/{row}/{col}", timeout=30, headers=KEY
        ).content
        assert body, f"{layer} has features in its tile"
        tiles[layer] = ((z, row, col), body)
        (tmp_path / f"{layer}.mvt").write_bytes(body)
    script = tmp_path / "reader.js"
    script.write_text("var window = globalThis;\n" + _TILE_READER + "\nmodule.exports = window.TwinDeck;\n")
    runner = (
        "const T = require(process.argv[1]); const fs = require('fs'); const out = {};"
        "for (const name of process.argv.slice(2)) { const b = fs.readFileSync(name + '.mvt');"
        " out[name] = T.decode(b.buffer.slice(b.byteOffset, b.byteOffset + b.length), null); }"
        "console.log(JSON.stringify(out));"
    )
    result = subprocess.run(
        ["node", "-e", runner, str(script), *tiles], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    decoded = json.loads(result.stdout)
    for layer, (_, body) in tiles.items():
        expected = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})[layer]
        extent = expected["extent"]
        got = decoded[layer]
        assert [f["id"] for f in got] == [f["id"] for f in expected["features"]]
        for mine, theirs in zip(got, expected["features"], strict=True):
            assert mine["properties"] == theirs["properties"]
            reference = shapely.transform(shape(theirs["geometry"]), lambda xy, e=extent: xy / e)
            assert shape(mine["geometry"]).normalize().equals_exact(reference.normalize(), 1e-12), layer


_CDN = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=[\"']?https?://", re.IGNORECASE)


def test_page_needs_no_network_but_twin(server: str, browser: Any, tmp_path: Path) -> None:
    """The page written by ``to_html`` is drawn by chromium with every request off the server refused."""
    twin = TwinMap(server, api_key="k").add("wards").add("parcels").add("incidents", filter="status='new'")
    page = twin.to_html(str(tmp_path / "map.html"))
    assert not _CDN.search(page), "no script or stylesheet from a CDN"
    assert "window.TwinDeck" in page and (tmp_path / "map.html").read_text(encoding="utf-8") == page
    assert twin._repr_html_().startswith("<iframe")

    outside: list[str] = []
    errors: list[str] = []
    tab = browser.new_page(viewport={"width": 900, "height": 600})
    try:

        def route(request: Any) -> None:
            url = request.request.url
            if url == f"{server}/notebook-map.html":  # served from Twin's origin, as Twin would need CORS otherwise
                request.fulfill(body=page, content_type="text/html")
            elif url.startswith(server) or url.startswith(("data:", "blob:")):
                request.continue_()
            else:
                outside.append(url)
                request.abort()

        tab.route("**/*", route)
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        tab.goto(f"{server}/notebook-map.html")
        tab.wait_for_function("window.twinTilesDrawn >= 4", timeout=60_000)
        tab.wait_for_timeout(2000)
        shot = tab.screenshot()
    finally:
        tab.close()
    assert outside == [] and errors == []
    from io import BytesIO

    from PIL import Image

    colours = Image.open(BytesIO(shot)).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the map is drawn, not a blank page"
    artifacts = REPO / "test-artifacts" / "screenshots"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "notebook-map.png").write_bytes(shot)


def test_example_notebook_runs_headless(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install nbclient)")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install nbclient ipykernel)")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install ipykernel)")
    monkeypatch.setenv("TWIN_URL", server)
    monkeypatch.setenv("TWIN_API_KEY", "k")  # the notebook reads the layers that are not public with it
    monkeypatch.setenv("TWIN_MAP_HTML", str(tmp_path / "quy-nhon.html"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # a cell that raises fails the test with its traceback
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "OGC:CRS84 21 wards" in text
    assert any("<iframe" in o.get("data", {}).get("text/html", "") for o in outputs), "the map cell shows the map"
    assert not _CDN.search((tmp_path / "quy-nhon.html").read_text(encoding="utf-8"))
    assert "np.float64(1.0)" in str(notebook.cells[-1].outputs[0]["data"]["text/plain"]), "each report is in its ward"
