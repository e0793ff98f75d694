"""Floor and ceiling for the tiles benchmark.

* ``/floor/{layer}/{z}/{x}/{y}``: the least a server can do for a vector tile —
  one ``ST_AsMVTGeom``/``ST_AsMVT`` query through asyncpg, SRIDs as integers.
* ``/ceiling/{layer}/{z}/{x}/{y}``: the same tile's bytes from a dict (filled
  on the first request): what the web stack alone costs.

Run by ``bench/tiles_bench.py``; reads ``DATABASE_URL``.
"""

import os

import asyncpg
from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()
_pool: asyncpg.Pool | None = None
_bytes: dict[tuple[str, int, int, int], bytes] = {}
COLUMNS = {"points": "name, category, value", "polygons": "code, height_m"}


@app.on_event("startup")
async def startup() -> None:
    global _pool
    _pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"],
        min_size=2,
        max_size=8,
        server_settings={"jit": "off", "max_parallel_workers_per_gather": "0"},
    )


async def _tile(layer: str, z: int, x: int, y: int) -> bytes:
    sql = f"""
        SELECT ST_AsMVT(q, '{layer}', 4096, 'geom', 'fid') FROM (
            SELECT fid, ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope($1, $2, $3), 4096, 64, true) AS geom,
                   {COLUMNS[layer]}
            FROM l_{layer}
            WHERE geom && ST_Transform(ST_TileEnvelope($1, $2, $3, margin => 64.0 / 4096), 4326)
        ) q WHERE geom IS NOT NULL
    """
    assert _pool is not None
    async with _pool.acquire() as conn:
        data: bytes | None = await conn.fetchval(sql, z, x, y)
    return data or b""


@app.get("/floor/{layer}/{z}/{x}/{y}")
async def floor(layer: str, z: int, x: int, y: int) -> Response:
    return Response(await _tile(layer, z, x, y), media_type="application/vnd.mapbox-vector-tile")


@app.get("/ceiling/{layer}/{z}/{x}/{y}")
async def ceiling(layer: str, z: int, x: int, y: int) -> Response:
    key = (layer, z, x, y)
    data = _bytes.get(key)
    if data is None:
        data = _bytes[key] = await _tile(layer, z, x, y)
    return Response(data, media_type="application/vnd.mapbox-vector-tile")
