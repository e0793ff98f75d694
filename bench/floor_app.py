"""The floor for the items benchmark: the least a server can do to answer a keyset GeoJSON page.

A minimal FastAPI + asyncpg app, one query per request (no count), GeoJSON text
from ``ST_AsGeoJSON``. Run by ``bench/items_bench.py``; reads ``DATABASE_URL``.
"""

import json
import os

import asyncpg
from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()
_pool: asyncpg.Pool | None = None


@app.on_event("startup")
async def startup() -> None:
    global _pool
    _pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=2, max_size=8, server_settings={"jit": "off"}
    )


@app.get("/items")
async def items(limit: int = 10, after: int = 0, bbox: str | None = None, category: str | None = None) -> Response:
    where, args = ["fid > $1"], [after]
    if bbox:
        west, south, east, north = (float(v) for v in bbox.split(","))
        args += [west, south, east, north]
        where.append(
            f"geom && ST_MakeEnvelope(${len(args) - 3}, ${len(args) - 2}, ${len(args) - 1}, ${len(args)}, 4326)"
        )
    if category:
        args.append(category)
        where.append(f"category = ${len(args)}")
    args.append(limit)
    sql = (
        f"SELECT fid, ST_AsGeoJSON(geom) AS g, name, category, value FROM l_points "
        f"WHERE {' AND '.join(where)} ORDER BY fid LIMIT ${len(args)}"
    )
    assert _pool is not None
    async with _pool.acquire() as conn:
        rows = await conn.fetch(sql, *args)
    features = ",".join(
        f'{{"type":"Feature","id":{r["fid"]},"geometry":{r["g"]},"properties":'
        f"{json.dumps({'name': r['name'], 'category': r['category'], 'value': r['value']}, ensure_ascii=False)}}}"
        for r in rows
    )
    return Response(f'{{"type":"FeatureCollection","features":[{features}]}}', media_type="application/geo+json")
