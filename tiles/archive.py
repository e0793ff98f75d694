"""Export layers as a PMTiles archive: every vector tile of some zooms in one file, for offline use or a CDN.

The tiles are the ones the server would send (same encoding, bounds and
aggregation, built by the same ``TileService``), gzip-compressed, written in
tile-id order so the archive is clustered. The file is written under a
temporary name and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import morecantile
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from layers.errors import InvalidInputError, NotFoundError
from layers.store import Reader
from tiles.cache import TileCache
from tiles.grid import MAX_ZOOM, TileAddress
from tiles.service import TileRequest, TileService, layers_extent
from tiles.styles import vector_layer

#: An export asks for at most this many tiles (z16 over a whole province is a few hundred thousand).
MAX_TILES = 2_000_000


@dataclass(frozen=True)
class ArchiveReport:
    path: Path
    tiles: int
    empty: int
    bytes: int


def export_pmtiles(
    store: Reader,
    layer_ids: Sequence[str],
    path: Path,
    minzoom: int,
    maxzoom: int,
    bbox: tuple[float, float, float, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ArchiveReport:
    """Write the layers' tiles for zooms ``minzoom``–``maxzoom`` over ``bbox`` (default: the layers' extent)."""
    if not 0 <= minzoom <= maxzoom <= MAX_ZOOM:
        raise InvalidInputError(f"zooms must satisfy 0 ≤ minzoom ≤ maxzoom ≤ {MAX_ZOOM}, got {minzoom}–{maxzoom}")
    if path.suffix != ".pmtiles":
        raise InvalidInputError(f"the archive's name must end in .pmtiles, got '{path.name}'")
    layers = [store.get_layer(layer_id) for layer_id in layer_ids]
    if not layers:
        raise InvalidInputError("give at least one layer to export")
    if bbox is None:
        bbox = layers_extent(store, layers)
        if bbox is None:
            raise NotFoundError("the layers hold no features: there is nothing to export")
    grid = morecantile.tms.get("WebMercatorQuad")
    zooms = list(range(minzoom, maxzoom + 1))
    tiles = sorted(grid.tiles(*bbox, zooms), key=lambda t: zxy_to_tileid(t.z, t.x, t.y))
    if len(tiles) > MAX_TILES:
        raise InvalidInputError(
            f"{len(tiles):,} tiles is more than {MAX_TILES:,}: export fewer zooms or a smaller bbox"
        )
    service = TileService(TileCache(0))
    ids = tuple(layer.id for layer in layers)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    written = empty = 0
    try:
        with os.fdopen(handle, "wb") as out:
            writer = Writer(out)
            for done, tile in enumerate(tiles, start=1):
                try:
                    raw = service.tile(
                        store, TileRequest(TileAddress("WebMercatorQuad", tile.z, tile.x, tile.y), ids)
                    ).raw
                except NotFoundError:  # no layer is drawn at this zoom
                    raw = b""
                if raw:
                    writer.write_tile(zxy_to_tileid(tile.z, tile.x, tile.y), gzip.compress(raw, 9, mtime=0))
                    written += 1
                else:
                    empty += 1
                if progress is not None:
                    progress(done, len(tiles))
            west, south, east, north = bbox
            writer.finalize(
                {
                    "tile_type": TileType.MVT,
                    "tile_compression": Compression.GZIP,
                    "min_zoom": minzoom,
                    "max_zoom": maxzoom,
                    "min_lon_e7": int(west * 1e7),
                    "min_lat_e7": int(south * 1e7),
                    "max_lon_e7": int(east * 1e7),
                    "max_lat_e7": int(north * 1e7),
                    "center_zoom": max(minzoom, min(maxzoom, 13)),
                    "center_lon_e7": int((west + east) / 2 * 1e7),
                    "center_lat_e7": int((south + north) / 2 * 1e7),
                },
                {
                    "name": "Twin: " + ", ".join(ids),
                    "description": " · ".join(layer.title for layer in layers),
                    "attribution": "Twin",
                    "vector_layers": [vector_layer(layer) for layer in layers],
                    "generator": "twin tiles export",
                    "twin:layers": [layer.model_dump(mode="json") for layer in layers],
                },
            )
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return ArchiveReport(path, written, empty, path.stat().st_size)
