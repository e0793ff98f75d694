"""How the app serves the built client: ``/`` shared with the OGC landing page, ``/wall``, assets' media types.

No browser needed: a stand-in ``dist`` folder and FastAPI's test client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from twin.web import mount_client

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def _app(dist: Path | None) -> TestClient:
    app = FastAPI()

    @app.get("/")
    def landing(f: str | None = None) -> dict[str, str]:
        return {"title": "OGC landing", "f": f or ""}

    mount_client(app, dist)
    return TestClient(app)


def _dist(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets" / "glyphs" / "DejaVu Sans Book").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>planner</title>")
    (dist / "wall.html").write_text("<!doctype html><title>wall</title>")
    (dist / "assets" / "maplibre-gl-worker-CZtFQQIV.mjs").write_text("export {};")
    (dist / "assets" / "index-CfV9C0HJ.js").write_text("export {};")
    (dist / "assets" / "glyphs" / "DejaVu Sans Book" / "0-255.pbf").write_bytes(b"\x0a\x00")
    (dist / "assets" / "wall-scenes.json").write_text('{"scenes": []}')
    return dist


def test_root_is_the_planner_for_browsers_and_the_ogc_landing_for_gis_clients(tmp_path: Path) -> None:
    client = _app(_dist(tmp_path))
    page = client.get("/", headers=BROWSER)
    assert page.headers["content-type"].startswith("text/html") and "planner" in page.text
    assert client.get("/", headers={"Accept": "application/json"}).json()["title"] == "OGC landing"
    assert client.get("/").json()["title"] == "OGC landing"  # Accept: */*
    assert client.get("/?f=json", headers=BROWSER).json()["f"] == "json"
    assert client.get("/?f=html", headers=BROWSER).json()["f"] == "html"  # the OGC HTML landing stays reachable
    assert client.head("/", headers=BROWSER).status_code == 200


def test_wall_and_assets_with_their_media_types(tmp_path: Path) -> None:
    client = _app(_dist(tmp_path))
    assert "wall" in client.get("/wall").text
    worker = client.get("/assets/maplibre-gl-worker-CZtFQQIV.mjs")
    assert worker.headers["content-type"].startswith("text/javascript")
    assert "immutable" in worker.headers["cache-control"]
    assert client.get("/assets/index-CfV9C0HJ.js").headers["content-type"].startswith("text/javascript")
    glyphs = client.get("/assets/glyphs/DejaVu%20Sans%20Book/0-255.pbf")
    assert glyphs.status_code == 200 and glyphs.headers["content-type"] == "application/x-protobuf"
    assert client.get("/assets/wall-scenes.json").json() == {"scenes": []}
    assert client.get("/assets/missing.js").status_code == 404


def test_without_a_build_root_stays_ogc_and_wall_says_how_to_build(tmp_path: Path) -> None:
    client = _app(tmp_path / "nothing")
    assert client.get("/", headers=BROWSER).json()["title"] == "OGC landing"
    wall = client.get("/wall")
    assert wall.status_code == 503 and "npm run build" in wall.text
