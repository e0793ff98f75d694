"""The tile grids Twin serves, from morecantile, and a tile's place in them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import morecantile
from morecantile import TileMatrixSet

from layers.errors import InvalidInputError, NotFoundError
from layers.vectortiles import TileSpec

#: The grids served. Vector tiles are encoded in Web Mercator, so only its quad grid for now.
SUPPORTED = ("WebMercatorQuad",)
MAX_ZOOM = 24


@dataclass(frozen=True, slots=True)
class TileAddress:
    tms: str
    z: int
    x: int
    y: int

    @property
    def key(self) -> str:
        return f"{self.tms}/{self.z}/{self.x}/{self.y}"


def tile_matrix_set(tms_id: str) -> TileMatrixSet:
    if tms_id not in SUPPORTED:
        raise NotFoundError(f"tile matrix set '{tms_id}' is not served; use one of: {', '.join(SUPPORTED)}")
    return _loaded(tms_id)


@cache
def _loaded(tms_id: str) -> TileMatrixSet:
    """morecantile deep-copies a grid on every ``get`` (1.5 ms, on every tile); load each one once."""
    return morecantile.tms.get(tms_id)


def tile_spec(address: TileAddress) -> TileSpec:
    """The tile's bounds in EPSG:3857; a tile outside the grid is not found."""
    tms = tile_matrix_set(address.tms)
    if not 0 <= address.z <= min(MAX_ZOOM, tms.maxzoom):
        raise NotFoundError(f"zoom {address.z} is outside {address.tms} (0–{min(MAX_ZOOM, tms.maxzoom)})")
    matrix = tms.matrix(address.z)
    if not (0 <= address.x < matrix.matrixWidth and 0 <= address.y < matrix.matrixHeight):
        last = matrix.matrixWidth - 1
        raise NotFoundError(f"tile {address.key} is outside the grid: at zoom {address.z} x and y run from 0 to {last}")
    bounds = tms.xy_bounds(morecantile.Tile(address.x, address.y, address.z))
    return TileSpec(address.z, address.x, address.y, bounds.left, bounds.bottom, bounds.right, bounds.top)


def parse_address(tms: str, z: str, x: str, y: str) -> TileAddress:
    """Path parts to a tile address; not integers → 400 (the grid check gives 404)."""
    parts = {"tileMatrix": z, "tileCol": x, "tileRow": y}
    values = {}
    for name, text in parts.items():
        if not (text.isascii() and text.isdigit()) or len(text) > 9:
            raise InvalidInputError(f"{name} must be a non-negative integer, got '{text[:20]}'", parameter=name)
        values[name] = int(text)
    return TileAddress(tms, values["tileMatrix"], values["tileCol"], values["tileRow"])
