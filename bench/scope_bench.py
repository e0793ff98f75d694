"""Scope benchmark: the same requests as a ward officer (narrowed to one ward's polygon) and unscoped.

    .venv/bin/python bench/scope_bench.py [--points 1000000] [--seconds 10]

One PostGIS, one layer of points that is not public, and an ``admin_area`` layer holding the real
polygon of phường Quy Nhơn (2025 boundaries, ``../shared/data/gia-lai-binh-dinh-wards-2025.geojson``;
a 48-side polygon of the same place if the file is absent). The same server (one uvicorn worker)
answers each request twice: with a province key (no area: the unscoped path) and with a ward
officer key of that ward (every statement carries ``ST_Intersects(geom, :scope_mask)``). Both keys
are resolved the same way, so the difference is the scope alone. Rows: items ``limit=100``, items
in a bbox inside the ward, cold tiles (a server with the tile cache off, z14 tiles over the ward)
and warm tiles (cache on, the same tiles). Before timing, the officer's answers are checked to
hold only features inside the ward. ``wrk`` (Debian) at 8 connections; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import httpx
import morecantile
import shapely
from shapely.geometry import Point, shape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.items_bench import free_port, uvicorn  # noqa: E402
from bench.store_bench import DEFINITION, PG_TUNING, make_points  # noqa: E402
from bench.tiles_bench import run_wrk  # noqa: E402
from layers.features import FeatureInput  # noqa: E402
from layers.io.importer import import_file  # noqa: E402
from layers.model import LayerDefinition  # noqa: E402
from layers.store import LayerStore  # noqa: E402
from tests.pgserver import postgres_server  # noqa: E402

WARDS_FILE = ROOT.parent / "shared" / "data" / "gia-lai-binh-dinh-wards-2025.geojson"
WARD = "Quy Nhơn"
ADMIN_KEY = "bench-admin"
WARDS = LayerDefinition.model_validate(
    {
        "id": "wards",
        "title": "Phường, xã",
        "kind": "admin_area",
        "geometry_type": "MultiPolygon",
        "fields": [{"name": "name", "type": "string"}],
        "access": {"public": True},
    }
)


def ward_polygon() -> shapely.Geometry:
    if WARDS_FILE.exists():
        for feature in json.loads(WARDS_FILE.read_text(encoding="utf-8"))["features"]:
            if feature["properties"]["name"] == WARD:
                return shape(feature["geometry"])
    return Point(109.233, 13.78).buffer(0.025, quad_segs=12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    ward = ward_polygon()
    west, south, east, north = ward.bounds
    inner = ward.representative_point()
    bbox = f"{inner.x - 0.005:.4f},{inner.y - 0.005:.4f},{inner.x + 0.005:.4f},{inner.y + 0.005:.4f}"
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = [t for t in tms.tiles(west, south, east, north, [14]) if ward.intersects(shapely.box(*tms.bounds(t)))]
    with tempfile.TemporaryDirectory(prefix="twin-scope-") as tmp, postgres_server(PG_TUNING) as url:
        folder = Path(tmp)
        gpkg = folder / "points.gpkg"
        print(f"loading {args.points:,} points …", file=sys.stderr)
        make_points(args.points, gpkg)
        store = LayerStore.open(url)
        private = DEFINITION.model_copy(update={"access": DEFINITION.access.model_copy(update={"public": False})})
        import_file(store, gpkg, "points", definition=private)
        store.create_layer(WARDS)
        store.insert_features("wards", [FeatureInput(ward, {"name": WARD})])
        keys = {
            "unscoped (province)": store.add_key("province", ["province"])[1],
            "ward officer": store.add_key("officer", ["ward_officer"], [WARD])[1],
        }
        store.close()
        results: dict[tuple[str, str], tuple[float, float, float]] = {}
        processes = []
        try:
            bases = {}
            for cache in ("0", "256"):
                port = free_port()
                env = {
                    **os.environ,
                    "TWIN_DATABASE_URL": url,
                    "TWIN_LOG_LEVEL": "WARNING",
                    "TWIN_API_KEYS": json.dumps([ADMIN_KEY]),
                    "TWIN_TILE_CACHE_MB": cache,
                    "TWIN_DATA_DIR": str(folder / f"var-{cache}"),
                }
                processes.append(uvicorn(sys.executable, "twin.main:app", port, env, "/readyz"))
                bases[cache] = f"http://127.0.0.1:{port}"
            tile_paths = [f"/collections/points/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}" for t in tiles]
            cases = {
                "items limit=100": ("256", ["/collections/points/items?limit=100"]),
                "items bbox (limit=100)": ("256", [f"/collections/points/items?limit=100&bbox={bbox}"]),
                f"cold tiles ({len(tiles)} at z14)": ("0", tile_paths),
                "warm tiles (cached)": ("256", tile_paths),
            }
            officer = {"X-API-Key": keys["ward officer"]}
            page = httpx.get(f"{bases['256']}/collections/points/items?limit=100", headers=officer, timeout=60).json()
            assert page["features"] and all(ward.intersects(shape(f["geometry"])) for f in page["features"])
            for case, (cache, paths) in cases.items():
                for who, key in keys.items():
                    headers = {"X-API-Key": key}
                    results[(case, who)] = run_wrk(bases[cache], paths, 8, args.seconds, folder, headers)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    print(
        f"\n### The scope's cost: {args.points:,} points, phường {WARD} as the officer's area, c=8, {args.seconds} s\n"
    )
    print("| request | unscoped req/s (p50/p95 ms) | ward officer req/s (p50/p95 ms) | officer ÷ unscoped |")
    print("|---|---:|---:|---:|")
    for case in cases:
        plain, scoped = results[(case, "unscoped (province)")], results[(case, "ward officer")]
        cells = [f"{r:,.0f} ({p50:.1f}/{p95:.1f})" for r, p50, p95 in (plain, scoped)]
        print(f"| {case} | {cells[0]} | {cells[1]} | {scoped[0] / plain[0]:.2f}× |")


if __name__ == "__main__":
    main()
