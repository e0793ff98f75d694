"""Tiles benchmark: Twin (cold and warm) vs tipg vs a raw asyncpg floor vs a ceiling, same PostGIS, same data.

    .venv/bin/python bench/tiles_bench.py [--points 1000000] [--polygons 100000] [--seconds 10] [--rounds 2]
                                          [--connections 1,4,8] [--tipg /tmp/tipgvenv/bin/python]
                                          [--cases "z14 polygons,z14 points,z15 points"]

tipg is compared when its venv exists: ``python3 -m venv /tmp/tipgvenv && /tmp/tipgvenv/bin/pip install tipg uvicorn``.

1. Generates 1,000,000 points and 100,000 small polygons (10–40 m rectangles)
   around Quy Nhơn (lon 109.15–109.30, lat 13.70–13.85) and imports both with
   Twin's importer into one PostGIS (typed geometry columns, GiST index).
2. Starts, each as one uvicorn worker: Twin with its tile cache off ("cold")
   and on ("warm", every tile requested once before timing), tipg (from its own
   venv, `TIPG_MAX_FEATURES_PER_TILE` raised so it drops nothing), and
   ``bench/floor_tiles_app.py`` (floor: one ST_AsMVT query; ceiling: bytes from a dict).
3. Checks, for every tile, that every server's bytes decode to the same
   features (by name/code). Tiles where Twin aggregates (over 10,000 features)
   are not equal content: they are timed in their own row and marked.
4. ``wrk`` rotates through the z14 tiles covering the data (and z15 for
   points) at 1, 4 and 8 connections; the servers take turns in short rounds.
   Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import mapbox_vector_tile
import morecantile
import numpy as np
import pyarrow as pa
import pyogrio
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.items_bench import free_port, uvicorn  # noqa: E402
from bench.store_bench import DEFINITION, EAST, NORTH, PG_TUNING, SOUTH, WEST, make_points  # noqa: E402
from layers.io.importer import import_file  # noqa: E402
from layers.model import LayerDefinition  # noqa: E402
from layers.store import LayerStore  # noqa: E402
from tests.pgserver import postgres_server  # noqa: E402

POLYGONS = LayerDefinition.model_validate(
    {
        "id": "polygons",
        "title": "Thửa đất",
        "kind": "parcel",
        "geometry_type": "Polygon",
        "access": {"public": True},  # served to anyone: these measure serving, not access
        "fields": [{"name": "code", "type": "string"}, {"name": "height_m", "type": "number"}],
    }
)
KEYS = {"points": "name", "polygons": "code"}
LUA = """
paths = {%s}
i = 0
%s
request = function()
  i = (i %% #paths) + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%f %%f %%f %%d\\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, summary.errors.status))
end
"""


def make_polygons(n: int, path: Path) -> None:
    rng = np.random.default_rng(43)
    lon, lat = rng.uniform(WEST, EAST, n), rng.uniform(SOUTH, NORTH, n)
    half_w = rng.uniform(5, 20, n) / 108_000  # metres to degrees, near enough at 14° N
    half_h = rng.uniform(5, 20, n) / 110_600
    geoms = shapely.box(lon - half_w, lat - half_h, lon + half_w, lat + half_h)
    table = pa.table(
        {
            "code": pa.array(np.char.add("P", np.arange(n).astype(str))),
            "height_m": pa.array(np.round(rng.uniform(3, 40, n), 1)),
            "geometry": pa.array(shapely.to_wkb(geoms, output_dimension=2), type=pa.binary()),
        }
    )
    pyogrio.write_arrow(
        table, path, layer="polygons", driver="GPKG", geometry_name="geometry", geometry_type="Polygon", crs="EPSG:4326"
    )


def tiles_at(z: int) -> list[morecantile.Tile]:
    tms = morecantile.tms.get("WebMercatorQuad")
    return list(tms.tiles(WEST, SOUTH, EAST, NORTH, [z]))


def decoded_keys(data: bytes, key: str) -> list[str]:
    if not data:
        return []
    return sorted(
        str(f["properties"][key]) for layer in mapbox_vector_tile.decode(data).values() for f in layer["features"]
    )


def run_wrk(
    base: str, paths: list[str], connections: int, seconds: int, tmp: Path, headers: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """wrk over ``paths`` in turn, each request with ``headers``: requests/s, p50 and p95 in ms."""
    sent = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items())
    script = tmp / f"rotate-{abs(hash((base, tuple(paths), sent)))}.lua"
    script.write_text(LUA % (", ".join(json.dumps(p) for p in paths), sent))
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    rps, p50, p95, errors = line.split()[1:]
    assert int(errors) == 0, f"{base}: {errors} non-2xx answers"
    return float(rps), float(p50), float(p95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--polygons", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10, help="per server and cell, split over the rounds")
    parser.add_argument("--rounds", type=int, default=2, help="turns each server takes in each cell")
    parser.add_argument("--connections", default="1,4,8")
    parser.add_argument("--tipg", default="/tmp/tipgvenv/bin/python")
    parser.add_argument("--cases", default="z14 polygons,z14 points,z15 points", help="which rows to time")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="twin-tiles-") as tmp_name, postgres_server(PG_TUNING) as url:
        tmp = Path(tmp_name)
        print(f"loading {args.points:,} points and {args.polygons:,} polygons …", file=sys.stderr)
        make_points(args.points, tmp / "points.gpkg")
        make_polygons(args.polygons, tmp / "polygons.gpkg")
        store = LayerStore.open(url)
        import_file(store, tmp / "points.gpkg", "points", definition=DEFINITION)
        import_file(store, tmp / "polygons.gpkg", "polygons", definition=POLYGONS)
        store.close()

        processes = []
        servers: dict[str, tuple[str, str]] = {}  # name -> (base URL, path template with {layer} {z} {x} {y})
        try:
            for name, cache_mb in (("Twin cold", "0"), ("Twin warm", "512")):
                port = free_port()
                env = {
                    **os.environ,
                    "TWIN_DATABASE_URL": url,
                    "TWIN_LOG_LEVEL": "WARNING",
                    "TWIN_TILE_CACHE_MB": cache_mb,
                }
                processes.append(uvicorn(sys.executable, "twin.main:app", port, env, "/readyz"))
                servers[name] = (f"http://127.0.0.1:{port}", "/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}")
            port = free_port()
            env = {**os.environ, "DATABASE_URL": url.replace("postgresql://", "postgres://"), "PYTHONPATH": str(ROOT)}
            processes.append(uvicorn(sys.executable, "bench.floor_tiles_app:app", port, env, "/floor/points/14/0/0"))
            servers["floor (asyncpg)"] = (f"http://127.0.0.1:{port}", "/floor/{layer}/{z}/{x}/{y}")
            servers["ceiling (dict)"] = (f"http://127.0.0.1:{port}", "/ceiling/{layer}/{z}/{x}/{y}")
            if Path(args.tipg).exists():
                port = free_port()
                env = {
                    **os.environ,
                    "DATABASE_URL": url,
                    "TIPG_MAX_FEATURES_PER_TILE": "1000000",
                    "TIPG_MAX_FEATURES_PER_QUERY": "10000",
                }
                processes.append(uvicorn(args.tipg, "tipg.main:app", port, env, "/collections"))
                # The polygon table has a second geometry column (_mercator, for tiles); name tipg's.
                servers["tipg 1.6"] = (
                    f"http://127.0.0.1:{port}",
                    "/collections/public.l_{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}?geom-column=geom&properties={props}",
                )

            cases: dict[str, tuple[str, list[morecantile.Tile]]] = {
                "z14 polygons": ("polygons", tiles_at(14)),
                "z14 points": ("points", tiles_at(14)),
                "z15 points": ("points", tiles_at(15)),
            }
            cases = {case: cases[case] for case in args.cases.split(",")}
            props = {"points": "name,category,value", "polygons": "code,height_m"}
            paths: dict[tuple[str, str], list[str]] = {}
            notes: dict[str, str] = {}
            tipg_short: dict[str, float] = {}
            aggregated_by_twin: set[str] = set()
            for case, (layer, tiles) in cases.items():
                reference: list[list[str]] | None = None
                sizes = []
                for name, (base, template) in servers.items():
                    urls = [template.format(layer=layer, z=t.z, x=t.x, y=t.y, props=props[layer]) for t in tiles]
                    paths[(name, case)] = urls
                    answers = [httpx.get(base + u, timeout=600) for u in urls]  # also warms caches
                    if name == "floor (asyncpg)":
                        sizes = [len(a.content) for a in answers]
                    if name.startswith("Twin") and any(a.headers.get("x-twin-aggregated") for a in answers):
                        aggregated_by_twin.add(case)
                        continue
                    keys = [decoded_keys(a.content, KEYS[layer]) for a in answers]
                    if reference is None:
                        reference = keys
                    elif name.startswith("tipg"):
                        # tipg selects only features meeting the tile itself, not its 64-unit buffer.
                        mine = sum(len(k) for k in keys)
                        assert all(set(a) <= set(b) for a, b in zip(keys, reference, strict=True)), name
                        tipg_short[case] = 1 - mine / max(1, sum(len(k) for k in reference))
                    elif keys != reference:
                        raise SystemExit(f"{case}: {name} answers different features from the others")
                features = sum(len(k) for k in reference or [])
                notes[case] = (
                    f"{len(tiles)} tiles, {features / len(tiles):,.0f} features "
                    f"and {np.mean(sizes) / 1024:,.0f} KB a tile (floor)"
                )
                if case in aggregated_by_twin:
                    notes[case] += (
                        "; Twin sends counts per grid cell for these (over 10,000 features a tile): "
                        "not the same content, so not a like-for-like comparison"
                    )
            results: dict[tuple[str, str, int], tuple[float, float, float]] = {}
            # Servers take turns within each cell, in short rounds, so that the machine's drift
            # (this is a shared 2-core VM) falls on all of them alike; each cell reports the sum of its
            # rounds' requests over their time, and the median of their latencies.
            for case in cases:
                for c in connections:
                    rounds: dict[str, list[tuple[float, float, float]]] = {name: [] for name in servers}
                    for _ in range(args.rounds):
                        for name, (base, _) in servers.items():
                            seconds = max(1, round(args.seconds / args.rounds))
                            rounds[name].append(run_wrk(base, paths[(name, case)], c, seconds, tmp))
                    for name, runs in rounds.items():
                        results[(name, case, c)] = (
                            float(np.mean([r[0] for r in runs])),
                            float(np.median([r[1] for r in runs])),
                            float(np.median([r[2] for r in runs])),
                        )
                        print(name, case, c, results[(name, case, c)], file=sys.stderr)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    print(
        f"\n### Vector tiles over {args.points:,} points and {args.polygons:,} polygons "
        f"({args.seconds} s a server and cell, in {args.rounds} alternating rounds; one run)\n"
    )
    for case in cases:
        short = (
            f"; tipg leaves out the {tipg_short[case]:.1%} that lie only in the buffer" if case in tipg_short else ""
        )
        print(f"\n**{case}** — {notes[case]}{short}\n")
        names = list(servers)
        print(
            "| connections | "
            + " | ".join(f"{n} req/s (p50/p95 ms)" for n in names)
            + " | cold ÷ floor | cold ÷ tipg | warm ÷ ceiling |"
        )
        print("|---:|" + "---:|" * (len(names) + 3))
        for c in connections:
            cells = [
                f"{results[(n, case, c)][0]:,.0f} ({results[(n, case, c)][1]:.1f}/{results[(n, case, c)][2]:.1f})"
                for n in names
            ]
            cold = results[("Twin cold", case, c)][0]
            ratios = [
                f"{cold / results[('floor (asyncpg)', case, c)][0]:.2f}×",
                f"{cold / results[('tipg 1.6', case, c)][0]:.2f}×" if ("tipg 1.6", case, c) in results else "–",
                f"{results[('Twin warm', case, c)][0] / results[('ceiling (dict)', case, c)][0]:.2f}×",
            ]
            print(f"| {c} | {' | '.join(cells)} | {' | '.join(ratios)} |")


if __name__ == "__main__":
    main()
