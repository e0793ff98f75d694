"""What the polygon tile columns cost an import: 100,000 polygons into PostGIS with and without them.

    .venv/bin/python bench/polygon_import_bench.py [--polygons 100000] [--runs 3]

Polygon layers on PostGIS carry two generated columns for tiles (``_mercator``
and ``_clearance``, see ``layers/store/postgis_tiles.py``); PostgreSQL computes
them for every row written. This imports the same GeoPackage with Twin's
importer into a fresh layer, alternately with the columns and without them,
and prints the best time of each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import layers.store.postgis as postgis  # noqa: E402
from bench.store_bench import PG_TUNING  # noqa: E402
from bench.tiles_bench import POLYGONS, make_polygons  # noqa: E402
from layers.io.importer import import_file  # noqa: E402
from layers.store import LayerStore  # noqa: E402
from tests.pgserver import postgres_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polygons", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with_columns = postgis.has_tile_columns
    times: dict[str, list[float]] = {"with the tile columns": [], "without them": []}
    with tempfile.TemporaryDirectory(prefix="twin-import-") as tmp, postgres_server(PG_TUNING) as url:
        source = Path(tmp) / "polygons.gpkg"
        make_polygons(args.polygons, source)
        store = LayerStore.open(url)
        for _ in range(args.runs):
            for label in times:
                postgis.has_tile_columns = with_columns if label.startswith("with ") else (lambda layer: False)
                if store.list_layers():
                    store.drop_layer("polygons")
                start = time.perf_counter()
                import_file(store, source, "polygons", definition=POLYGONS)
                times[label].append(time.perf_counter() - start)
        store.close()
    print(f"\n### Importing {args.polygons:,} polygons into PostGIS (best of {args.runs})\n")
    print("| polygon layer | seconds | µs a polygon |")
    print("|---|---:|---:|")
    for label, runs in times.items():
        print(f"| {label} | {min(runs):.2f} | {min(runs) / args.polygons * 1e6:.1f} |")


if __name__ == "__main__":
    main()
