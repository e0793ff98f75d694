"""Store benchmark: bulk import and distance queries on both backends, next to a raw PostGIS floor.

    .venv/bin/python bench/store_bench.py [--points 1000000] [--queries 300]

1. Generates N points around Quy Nhơn (lon 109.15–109.30, lat 13.70–13.85) with
   three attributes into a GeoPackage.
2. Imports it with ``twin``'s importer into SpatiaLite and into PostGIS (one
   transaction each, validation and reprojection check included), and measures
   the floor: the same rows, already in memory as COPY text, loaded by ``COPY``
   into a bare typed table on the same PostGIS, plus the GiST index build.
3. Runs distance-within-500 m queries from random centres on each backend:
   counting the matches, the 100 nearest, and every match as features.

Prints a markdown table. Both PostGIS runs use the same server and settings.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyogrio
import shapely
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from layers.features import FeatureQuery, Near
from layers.io.importer import import_file
from layers.model import LayerDefinition
from layers.store import LayerStore
from layers.store.postgis import sqlalchemy_url
from tests.pgserver import postgres_server

WEST, SOUTH, EAST, NORTH = 109.15, 13.70, 109.30, 13.85
CATEGORIES = np.array(["nhà ở", "thương mại", "giáo dục", "y tế", "cơ quan"])
PG_TUNING = {"shared_buffers": "1GB", "maintenance_work_mem": "1GB", "max_wal_size": "4GB", "jit": "off"}
DEFINITION = LayerDefinition.model_validate(
    {
        "id": "points",
        "title": "Điểm",
        "geometry_type": "Point",
        "access": {"public": True},  # served to anyone: these measure serving, not access
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "category", "type": "string"},
            {"name": "value", "type": "number"},
        ],
    }
)


def make_points(n: int, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(42)
    lon, lat = rng.uniform(WEST, EAST, n), rng.uniform(SOUTH, NORTH, n)
    columns = {
        "name": np.char.add("Điểm ", np.arange(n).astype(str)),
        "category": CATEGORIES[rng.integers(0, len(CATEGORIES), n)],
        "value": rng.uniform(0, 100, n),
    }
    geoms = shapely.points(lon, lat)
    table = pa.table(
        {
            **{k: pa.array(v) for k, v in columns.items()},
            "geometry": pa.array(shapely.to_wkb(geoms, output_dimension=2), type=pa.binary()),
        }
    )
    pyogrio.write_arrow(
        table, path, layer="points", driver="GPKG", geometry_name="geometry", geometry_type="Point", crs="EPSG:4326"
    )
    return geoms, columns


def time_import(url: str, path: Path) -> float:
    store = LayerStore.open(url)
    try:
        if "points" in {d.id for d in store.list_layers()}:
            store.drop_layer("points")
        started = time.perf_counter()
        report = import_file(store, path, "points", definition=DEFINITION)
        elapsed = time.perf_counter() - started
        assert store.count("points") == report.inserted
        return elapsed
    finally:
        store.close()


def time_raw_copy(url: str, geoms: np.ndarray, columns: dict[str, np.ndarray]) -> float:
    """The floor: COPY of prepared text into a bare typed table, then the GiST index."""
    ewkb = shapely.to_wkb(shapely.set_srid(geoms, 4326), hex=True, include_srid=True, output_dimension=2)
    text = io.StringIO()
    for row in zip(ewkb, columns["name"], columns["category"], columns["value"]):
        text.write("\t".join(map(str, row)) + "\n")
    payload = text.getvalue().encode()
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS raw_points")
        conn.exec_driver_sql(
            "CREATE TABLE raw_points (fid bigserial PRIMARY KEY, geom geometry(Point,4326), "
            "name text, category text, value double precision)"
        )
    with engine.begin() as conn:
        started = time.perf_counter()
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy("COPY raw_points (geom, name, category, value) FROM STDIN") as copy:
            copy.write(payload)
        conn.exec_driver_sql("CREATE INDEX ON raw_points USING gist (geom)")
        elapsed = time.perf_counter() - started
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE raw_points")
    engine.dispose()
    return elapsed


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples), cuts[18]


def time_queries(url: str, queries: int) -> dict[str, tuple[float, float, float]]:
    store = LayerStore.open(url)
    rng = np.random.default_rng(7)
    centres = list(
        zip(rng.uniform(WEST + 0.01, EAST - 0.01, queries), rng.uniform(SOUTH + 0.01, NORTH - 0.01, queries))
    )
    cases: dict[str, Callable[[float, float], int]] = {
        "count within 500 m": lambda x, y: store.count("points", FeatureQuery(near=Near(x, y, 500))),
        "100 nearest within 500 m": lambda x, y: len(store.within_distance("points", x, y, 500, limit=100)),
        "all features within 500 m": lambda x, y: len(store.within_distance("points", x, y, 500)),
    }
    results = {}
    try:
        for name, run in cases.items():
            for x, y in centres[:20]:
                run(x, y)  # warm the cache and the pool
            samples, sizes = [], []
            for x, y in centres:
                started = time.perf_counter()
                sizes.append(run(x, y))
                samples.append((time.perf_counter() - started) * 1000)
            p50, p95 = percentiles(samples)
            results[name] = (p50, p95, float(np.mean(sizes)))
    finally:
        store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        folder = Path(tmp)
        gpkg = folder / "points.gpkg"
        print(f"generating {args.points:,} points …", file=sys.stderr)
        geoms, columns = make_points(args.points, gpkg)
        sqlite_url = f"sqlite:///{folder / 'twin.sqlite'}"
        with postgres_server(PG_TUNING) as pg_url:
            print("importing …", file=sys.stderr)
            floor = time_raw_copy(pg_url, geoms, columns)
            imports = {"SpatiaLite": time_import(sqlite_url, gpkg), "PostGIS": time_import(pg_url, gpkg)}
            print("querying …", file=sys.stderr)
            queries = {
                "SpatiaLite": time_queries(sqlite_url, args.queries),
                "PostGIS": time_queries(pg_url, args.queries),
            }
    n = args.points
    print(f"\n### Import of {n:,} points from GeoPackage (one transaction, validated)\n")
    print("| path | seconds | features/s | vs raw COPY floor |")
    print("|---|---:|---:|---:|")
    print(f"| raw COPY + GiST index (floor, PostGIS) | {floor:.2f} | {n / floor:,.0f} | 1.00× |")
    for backend, seconds in imports.items():
        print(f"| `twin import` → {backend} | {seconds:.2f} | {n / seconds:,.0f} | {floor / seconds:.2f}× |")
    print(f"\n### Distance within 500 m over {n:,} points ({args.queries} random centres)\n")
    print("| query | backend | p50 ms | p95 ms | features per answer |")
    print("|---|---|---:|---:|---:|")
    for name in next(iter(queries.values())):
        for backend, results in queries.items():
            p50, p95, size = results[name]
            print(f"| {name} | {backend} | {p50:.2f} | {p95:.2f} | {size:,.0f} |")


if __name__ == "__main__":
    main()
