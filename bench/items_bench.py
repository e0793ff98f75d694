"""Items benchmark: Twin vs tipg vs pygeoapi vs a raw asyncpg floor, on the same PostGIS and 1,000,000 points.

    .venv/bin/python bench/items_bench.py [--points 1000000] [--seconds 10]
        [--tipg /tmp/tipgvenv/bin/python] [--pygeoapi /tmp/pygeoapivenv/bin/python]

tipg and pygeoapi pin their own dependencies, so each runs from a venv of its own:

    python3 -m venv /tmp/tipgvenv && /tmp/tipgvenv/bin/pip install tipg uvicorn
    python3 -m venv /tmp/pygeoapivenv && /tmp/pygeoapivenv/bin/pip install pygeoapi psycopg2-binary \
        geoalchemy2 starlette uvicorn

Without a venv its rows are left out. pygeoapi serves the same table through its
PostgreSQL provider (its Starlette app). Every server runs as one uvicorn
worker; ``wrk`` (Debian) drives each URL at 8 connections. Before timing, every
server's answer to each query is checked to hold the same number of features.
Prints a markdown table with requests/s, p50/p95 and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.store_bench import DEFINITION, PG_TUNING, make_points  # noqa: E402
from layers.io.importer import import_file  # noqa: E402
from layers.store import LayerStore  # noqa: E402
from layers.store.postgis import sqlalchemy_url  # noqa: E402
from tests.pgserver import postgres_server  # noqa: E402

LUA = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %f\\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000))
end
"""
BBOX = "109.20,13.75,109.22,13.77"
CATEGORY = "y tế"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready, timeout=5).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"server did not start: {' '.join(command)}")


def uvicorn(python: str, app: str, port: int, env: dict[str, str], ready_path: str) -> subprocess.Popen[bytes]:
    command = [python, "-m", "uvicorn", app, "--port", str(port), "--workers", "1", "--log-level", "warning"]
    return start(command, env, f"http://127.0.0.1:{port}{ready_path}")


def run_wrk(url: str, seconds: int, script: Path) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"RESULT ([\d.]+) ([\d.]+) ([\d.]+)", out)
    assert match, out
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert errors is None, f"{url}: {errors.group(0)}"
    rps, p50, p95 = (float(g) for g in match.groups())
    return rps, p50, p95


def pygeoapi_env(python: str, url: str, port: int, folder: Path) -> dict[str, str]:
    """A pygeoapi configuration serving ``l_points`` through its PostgreSQL provider, and its OpenAPI document.

    JSON is YAML, so the configuration is written with ``json``.
    """
    db = urlsplit(url)
    config = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": 10_000},
            "map": {"url": "http://127.0.0.1/{z}/{x}/{y}.png", "attribution": "none"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "bench",
                "description": "bench",
                "keywords": ["bench"],
                "keywords_type": "theme",
                "terms_of_service": "none",
                "url": "http://127.0.0.1",
            },
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "bench", "url": "http://127.0.0.1"},
            "contact": {
                **dict.fromkeys(
                    ["name", "position", "address", "city", "stateorprovince", "postalcode", "country"], "bench"
                ),
                **dict.fromkeys(["phone", "fax", "hours", "instructions"], "none"),
                "email": "bench@example.org",
                "url": "http://127.0.0.1",
                "role": "pointOfContact",
            },
        },
        "resources": {
            "points": {
                "type": "collection",
                "title": "points",
                "description": "points",
                "keywords": ["points"],
                "extents": {"spatial": {"bbox": [109.15, 13.70, 109.30, 13.85]}},
                "providers": [
                    {
                        "type": "feature",
                        "name": "PostgreSQL",
                        "data": {
                            "host": db.hostname,
                            "port": db.port,
                            "dbname": db.path.lstrip("/"),
                            "user": db.username,
                            "password": db.password or "",
                            "search_path": ["public"],
                        },
                        "id_field": "fid",
                        "table": "l_points",
                        "geom_field": "geom",
                    }
                ],
            }
        },
    }
    path = folder / "pygeoapi.yml"
    path.write_text(json.dumps(config))
    openapi = folder / "pygeoapi-openapi.yml"
    env = {**os.environ, "PYGEOAPI_CONFIG": str(path), "PYGEOAPI_OPENAPI": str(openapi)}
    command = str(Path(python).with_name("pygeoapi"))
    generate = [command, "openapi", "generate", str(path), "--output-file", str(openapi)]
    subprocess.run(generate, env=env, check=True, capture_output=True)
    return env


def count_features(url: str) -> int:
    return len(httpx.get(url, timeout=60).json()["features"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--tipg", default="/tmp/tipgvenv/bin/python")
    parser.add_argument("--pygeoapi", default="/tmp/pygeoapivenv/bin/python")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="twin-items-") as tmp, postgres_server(PG_TUNING) as url:
        gpkg = Path(tmp) / "points.gpkg"
        print(f"loading {args.points:,} points …", file=sys.stderr)
        make_points(args.points, gpkg)
        store = LayerStore.open(url)
        import_file(store, gpkg, "points", definition=DEFINITION)
        store.close()
        engine = sa.create_engine(sqlalchemy_url(url))
        with engine.connect() as conn:
            deep_after = conn.exec_driver_sql(
                f"SELECT fid FROM l_points ORDER BY fid OFFSET {args.points - 100 - 1} LIMIT 1"
            ).scalar_one()
        engine.dispose()
        script = Path(tmp) / "report.lua"
        script.write_text(LUA)
        asyncpg_url = url.replace("postgresql://", "postgres://")
        servers: dict[str, dict[str, str]] = {}
        processes = []
        try:
            port = free_port()
            env = {**os.environ, "TWIN_DATABASE_URL": url, "TWIN_LOG_LEVEL": "WARNING"}
            processes.append(uvicorn(sys.executable, "twin.main:app", port, env, "/readyz"))
            twin = f"http://127.0.0.1:{port}/collections/points/items"
            category = quote(f"category='{CATEGORY}'")
            servers["Twin"] = {
                "limit=100": f"{twin}?limit=100",
                "limit=1000": f"{twin}?limit=1000",
                "bbox": f"{twin}?limit=100&bbox={BBOX}",
                "CQL2 filter": f"{twin}?limit=100&filter={category}",
                "page 10,000 (limit=100)": f"{twin}?limit=100&cursor={deep_after}",
            }
            port = free_port()
            env = {**os.environ, "DATABASE_URL": asyncpg_url, "PYTHONPATH": str(ROOT)}
            processes.append(uvicorn(sys.executable, "bench.floor_app:app", port, env, "/items?limit=1"))
            floor = f"http://127.0.0.1:{port}/items"
            servers["floor (asyncpg)"] = {
                "limit=100": f"{floor}?limit=100",
                "limit=1000": f"{floor}?limit=1000",
                "bbox": f"{floor}?limit=100&bbox={BBOX}",
                "CQL2 filter": f"{floor}?limit=100&category={quote(CATEGORY)}",
                "page 10,000 (limit=100)": f"{floor}?limit=100&after={deep_after}",
            }
            if Path(args.tipg).exists():
                port = free_port()
                env = {**os.environ, "DATABASE_URL": url, "TIPG_MAX_FEATURES_PER_QUERY": "10000"}
                processes.append(uvicorn(args.tipg, "tipg.main:app", port, env, "/collections"))
                tipg = f"http://127.0.0.1:{port}/collections/public.l_points/items"
                servers["tipg 1.6"] = {
                    "limit=100": f"{tipg}?limit=100",
                    "limit=1000": f"{tipg}?limit=1000",
                    "bbox": f"{tipg}?limit=100&bbox={BBOX}",
                    "CQL2 filter": f"{tipg}?limit=100&filter={category}",
                    "page 10,000 (limit=100)": f"{tipg}?limit=100&offset={args.points - 100}",
                }
            if Path(args.pygeoapi).exists():
                port = free_port()
                env = pygeoapi_env(args.pygeoapi, url, port, Path(tmp))
                processes.append(uvicorn(args.pygeoapi, "pygeoapi.starlette_app:APP", port, env, "/collections"))
                pygeoapi = f"http://127.0.0.1:{port}/collections/points/items?f=json"
                servers["pygeoapi 0.21"] = {
                    "limit=100": f"{pygeoapi}&limit=100",
                    "limit=1000": f"{pygeoapi}&limit=1000",
                    "bbox": f"{pygeoapi}&limit=100&bbox={BBOX}",
                    "CQL2 filter": f"{pygeoapi}&limit=100&filter={category}",
                    "page 10,000 (limit=100)": f"{pygeoapi}&limit=100&offset={args.points - 100}",
                }
            for case in servers["Twin"]:
                counts = {name: count_features(urls[case]) for name, urls in servers.items()}
                assert len(set(counts.values())) == 1, f"{case}: different answers {counts}"
            results = {
                (name, case): run_wrk(u, args.seconds, script)
                for name, urls in servers.items()
                for case, u in urls.items()
            }
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    print(f"\n### Items over {args.points:,} points, c=8, {args.seconds} s per cell (one run)\n")
    names = list(servers)
    header = " | ".join(f"{n} req/s (p50/p95 ms)" for n in names)
    print(f"| query | {header} | Twin ÷ floor | Twin ÷ tipg | Twin ÷ pygeoapi |")
    print("|---|" + "---:|" * (len(names) + 3))
    for case in servers["Twin"]:
        cells = []
        for name in names:
            rps, p50, p95 = results[(name, case)]
            cells.append(f"{rps:,.0f} ({p50:.1f}/{p95:.1f})")
        twin = results[("Twin", case)][0]
        floor_ratio = twin / results[("floor (asyncpg)", case)][0]
        peers = [
            f"{twin / results[(peer, case)][0]:.2f}×" if (peer, case) in results else "–"
            for peer in ("tipg 1.6", "pygeoapi 0.21")
        ]
        print(f"| {case} | {' | '.join(cells)} | {floor_ratio:.2f}× | {' | '.join(peers)} |")
    print(json.dumps({f"{k[0]} {k[1]}": v for k, v in results.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
