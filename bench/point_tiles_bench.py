"""Point tiles on the embedded default (SpatiaLite): the old encoder (mapbox-vector-tile) vs ``layers.mvtpoints``.

    .venv/bin/python bench/point_tiles_bench.py [--points 200000] [--zoom 14]

Loads generated points around Quy Nhơn into a SpatiaLite store, then for 20 tiles
times ``LayerStore.vector_tile`` (read + ``layers.mvtpoints``) against reading the
same rows and encoding them as Twin did before, with mapbox-vector-tile
(``layers.vectortiles.encode_features``). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import morecantile
import shapely
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.store_bench import DEFINITION, EAST, NORTH, SOUTH, WEST, make_points  # noqa: E402
from layers.io.importer import import_file  # noqa: E402
from layers.store import LayerStore  # noqa: E402
from layers.vectortiles import encode_features  # noqa: E402
from tiles.grid import TileAddress, tile_spec  # noqa: E402

NAMES = ["name", "category", "value"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--zoom", type=int, default=14)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="twin-points-") as tmp_name:
        tmp = Path(tmp_name)
        make_points(args.points, tmp / "points.gpkg")
        store = LayerStore.open(f"sqlite:///{tmp / 'twin.sqlite'}")
        import_file(store, tmp / "points.gpkg", "points", definition=DEFINITION)
        tiles = list(morecantile.tms.get("WebMercatorQuad").tiles(WEST, SOUTH, EAST, NORTH, [args.zoom]))
        tiles = tiles[len(tiles) // 2 - 10 : len(tiles) // 2 + 10]
        new, old, features = [], [], []
        for tile in tiles:
            spec = tile_spec(TileAddress("WebMercatorQuad", tile.z, tile.x, tile.y))
            start = time.perf_counter()
            features.append(store.vector_tile("points", spec).features)
            new.append(time.perf_counter() - start)
            with store.engine.connect() as conn:
                table = store.registry.tables(conn, "points").current
                start = time.perf_counter()
                stmt = sa.select(table.c.fid, sa.func.ST_AsBinary(table.c.geom), *(table.c[n] for n in NAMES))
                rows = conn.execute(stmt.where(store.backend.box_prefilter(table, spec.lonlat_box()))).all()
                encode_features(
                    "points",
                    spec,
                    [r[0] for r in rows],
                    shapely.from_wkb([r[1] for r in rows]),
                    [dict(zip(NAMES, r[2:], strict=True)) for r in rows],
                )
                old.append(time.perf_counter() - start)
        store.close()
    before, after = statistics.median(old) * 1000, statistics.median(new) * 1000
    print(f"\n### SpatiaLite point tiles, z{args.zoom}, {args.points:,} points, 20 tiles\n")
    print("| encoder | points a tile | median ms a tile (read + encode) |")
    print("|---|---:|---:|")
    print(f"| mapbox-vector-tile (before) | {statistics.mean(features):,.0f} | {before:.1f} |")
    print(f"| layers.mvtpoints | {statistics.mean(features):,.0f} | {after:.1f} ({before / after:.1f}× faster) |")


if __name__ == "__main__":
    main()
