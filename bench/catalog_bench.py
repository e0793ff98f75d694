"""Catalog benchmark: ``/collections`` over many large layers, extents measured on every request or kept.

    .venv/bin/python bench/catalog_bench.py [--layers 50] [--rows 20000,200000] [--requests 20]

For each backend (SpatiaLite in a temporary folder, PostGIS on a server of its
own started by ``tests/pgserver.py``) and each size, builds a catalog of
``--layers`` point layers of that many rows each, with a time field (so each
collection has a temporal extent), and times ``GET /collections`` through the
app (in process, ASGI):

* *measured each time*: the extent cache is emptied before every request, which
  is what every request did before extents were kept: min/max over each
  layer's time field, and on SpatiaLite a pass over each R*Tree;
* *kept per data version*: what a request does now, one primary-key read of
  each layer's data version.

Prints a markdown table of medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import shapely
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from layers.model import LayerDefinition
from layers.store import LayerStore
from layers.validation import RowBatch
from tests.pgserver import postgres_server
from twin.app import create_app
from twin.settings import TwinSettings

WEST, SOUTH, EAST, NORTH = 109.15, 13.70, 109.30, 13.85
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 50_000
PG_TUNING = {"shared_buffers": "1GB", "maintenance_work_mem": "512MB", "max_wal_size": "4GB"}


def definition(i: int) -> LayerDefinition:
    return LayerDefinition.model_validate(
        {
            "id": f"layer_{i:03d}",
            "title": f"Lớp {i}",
            "kind": "sensor",
            "geometry_type": "Point",
            "access": {"public": True},  # served to anyone: these measure serving, not access
            "time_field": "observed",
            "fields": [{"name": "observed", "type": "datetime"}, {"name": "value", "type": "number"}],
        }
    )


def batches(rows: int) -> list[RowBatch]:
    """The rows of one layer, made once and loaded into every layer."""
    rng = np.random.default_rng(42)
    made = []
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        points = shapely.points(rng.uniform(WEST, EAST, n), rng.uniform(SOUTH, NORTH, n))
        seconds = rng.integers(0, 365 * 86_400, n)
        observed = [T0 + timedelta(seconds=int(s)) for s in seconds]
        made.append(RowBatch(points, {"observed": observed, "value": list(rng.uniform(0, 100, n))}, start + 1))
    return made


def build_catalog(store: LayerStore, layers: int, rows: int) -> None:
    for layer in store.list_layers():
        store.drop_layer(layer.id)
    made = batches(rows)
    started = time.perf_counter()
    for i in range(layers):
        store.load(f"layer_{i:03d}", iter(made), definition=definition(i))
        print(f"  layer {i + 1}/{layers} loaded ({time.perf_counter() - started:.0f} s)", file=sys.stderr, end="\r")
    print(file=sys.stderr)


def median_ms(run: Callable[[], None], requests: int) -> float:
    run()  # warm the pool, the registry and (when kept) the extents
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def time_collections(store: LayerStore, data_dir: Path, layers: int, requests: int) -> tuple[float, float]:
    settings = TwinSettings(data_dir=data_dir, tile_cache_mb=0)
    with TestClient(create_app(settings, store)) as client:

        def get() -> None:
            answer = client.get("/collections", headers={"Accept": "application/json"})
            assert answer.status_code == 200 and len(answer.json()["collections"]) == layers
            assert all("temporal" in c["extent"] for c in answer.json()["collections"])

        def measured() -> None:
            store.extents.clear()
            get()

        return median_ms(measured, max(3, requests // 4)), median_ms(get, requests)


def run_backend(
    url: str, data_dir: Path, layers: int, sizes: list[int], requests: int
) -> Iterator[tuple[int, float, float]]:
    store = LayerStore.open(url)
    try:
        for rows in sizes:
            print(f"{url.split(':')[0]}: {layers} layers × {rows:,} rows", file=sys.stderr)
            build_catalog(store, layers, rows)
            yield rows, *time_collections(store, data_dir, layers, requests)
    finally:
        for layer in store.list_layers():
            store.drop_layer(layer.id)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--rows", default="20000,200000", help="rows per layer, comma-separated sizes")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--backends", default="spatialite,postgis")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    results: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        folder = Path(tmp)
        if "spatialite" in args.backends:
            url = f"sqlite:///{folder / 'twin.sqlite'}"
            results += [("SpatiaLite", *r) for r in run_backend(url, folder, args.layers, sizes, args.requests)]
        if "postgis" in args.backends:
            with postgres_server(PG_TUNING) as url:
                results += [("PostGIS", *r) for r in run_backend(url, folder, args.layers, sizes, args.requests)]
    print(f"\n### `GET /collections` with {args.layers} layers, each with a time field (median of the requests)\n")
    print("| backend | rows per layer | extents measured each time (ms) | kept per data version (ms) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for backend, rows, measured, kept in results:
        print(f"| {backend} | {rows:,} | {measured:.1f} | {kept:.1f} | {measured / kept:.0f}× |")


if __name__ == "__main__":
    main()
