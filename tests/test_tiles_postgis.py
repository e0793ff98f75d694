"""PostGIS polygon tiles: the snapped shortcut gives what ST_AsMVTGeom gives, and old databases get its columns.

Polygons inside a tile's buffer whose minimum clearance is large enough are put
on the tile grid with ST_Affine + ST_SnapToGrid instead of ST_AsMVTGeom
(``layers.store.postgis_tiles``). Here both ways are run over the same awkward
polygons (rotated, holed, thin, spiky, in two parts, across the buffer's edge,
smaller than a grid unit) at six zooms, and must give the same features with
topologically equal, valid shapes.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
import shapely.affinity
import sqlalchemy as sa
from shapely.geometry import MultiPolygon, Point, Polygon, box, shape

from layers.errors import UnavailableError
from layers.features import FeatureInput
from layers.model import LayerDefinition
from layers.store import LayerStore
from layers.store.backend import SpatialBackend
from layers.store.postgis import PostGISBackend, sqlalchemy_url
from layers.store.postgis_tiles import _array_elements, compile_readers, tile_parameters
from layers.vectortiles import MAX_FEATURES, TileSpec
from tiles.grid import TileAddress, tile_spec

LON, LAT = 109.2195, 13.7695  # central Quy Nhơn
METRE = 1 / 108_000  # degrees, near enough at 14° N
PARCELS = LayerDefinition.model_validate(
    {"id": "parcels", "title": "Thửa đất", "geometry_type": "Polygon", "fields": [{"name": "code", "type": "string"}]}
)
LOTS = LayerDefinition.model_validate(
    {"id": "lots", "title": "Lô đất", "geometry_type": "MultiPolygon", "fields": [{"name": "code", "type": "string"}]}
)


@pytest.fixture
def pg_store(postgis_url: str) -> LayerStore:
    store = LayerStore.open(postgis_url)
    for layer in store.list_layers():
        store.drop_layer(layer.id)
    yield store
    for layer in store.list_layers():
        store.drop_layer(layer.id)
    store.close()


def _star(rng: np.random.Generator, cx: float, cy: float) -> Polygon:
    n = int(rng.integers(6, 20))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = rng.uniform(2, 60, n) * METRE
    return Polygon(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles), strict=True)).buffer(0)


def awkward_polygons(rng: np.random.Generator) -> list[Polygon]:
    """Shapes that snapping to a grid can break, spread over ~2.5 km around the centre."""

    def centre() -> tuple[float, float]:
        return LON + rng.uniform(-1300, 1300) * METRE, LAT + rng.uniform(-1300, 1300) * METRE

    shapes: list[Polygon] = []
    for _ in range(400):  # rotated rectangles, 0.3 to 120 m
        cx, cy = centre()
        w, h = rng.uniform(0.3, 120, 2) * METRE
        rect = box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        shapes.append(shapely.affinity.rotate(rect, rng.uniform(0, 90)))
    for _ in range(80):  # squares with a hole, the gap between them 0.1 to 20 m
        cx, cy = centre()
        outer, gap = rng.uniform(20, 80) * METRE, rng.uniform(0.1, 20) * METRE
        inner = outer / 2 - gap
        shapes.append(
            Polygon(
                box(cx - outer / 2, cy - outer / 2, cx + outer / 2, cy + outer / 2).exterior.coords,
                [box(cx - inner, cy - inner, cx + inner, cy + inner).exterior.coords],
            )
        )
    for _ in range(80):  # stars, with spikes and close vertices
        cx, cy = centre()
        star = _star(rng, cx, cy)
        if isinstance(star, Polygon) and not star.is_empty:
            shapes.append(star)
    return shapes


def reference_tile(store: LayerStore, table: str, z: int, x: int, y: int) -> bytes:
    """The tile as plain ST_AsMVTGeom makes it, with no shortcut."""
    sql = sa.text(
        f"""
        SELECT ST_AsMVT(q, :layer, 4096, 'geom', 'fid') FROM (
            SELECT fid, code, ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope(:z, :x, :y), 4096, 64, true)
                   AS geom
            FROM "l_{table}"
            WHERE geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096), 4326)
        ) q WHERE geom IS NOT NULL
        """
    )
    with store.engine.connect() as conn:
        return bytes(conn.execute(sql, {"layer": table, "z": z, "x": x, "y": y}).scalar_one() or b"")


def shortcut_count(store: LayerStore, table: str, z: int, x: int, y: int) -> int:
    """How many of the tile's features qualify for the snapped shortcut."""
    params = tile_parameters(tile_spec(TileAddress("WebMercatorQuad", z, x, y)))
    sql = sa.text(
        f"""SELECT count(*) FROM "l_{table}"
            WHERE geom @ ST_MakeEnvelope(:bw, :bs, :be, :bn, 4326) AND _clearance >= :clearance"""
    )
    with store.engine.connect() as conn:
        return int(conn.execute(sql, params).scalar_one())


def windings(geometry: object) -> list[tuple[bool, ...]]:
    """Each part's rings, counter-clockwise or not, in tile units (y down): exteriors one way, holes the other."""
    parts = getattr(geometry, "geoms", [geometry])
    return sorted(tuple(ring.is_ccw for ring in (p.exterior, *p.interiors)) for p in parts)


def shapes_of(data: bytes, layer: str) -> dict[int, object]:
    decoded = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    return {f["id"]: shape(f["geometry"]) for f in decoded.get(layer, {"features": []})["features"]}


@pytest.mark.parametrize("z", [12, 13, 14, 15, 16, 17])
def test_snapped_polygons_match_st_asmvtgeom(pg_store: LayerStore, z: int) -> None:
    rng = np.random.default_rng(z)
    pg_store.create_layer(PARCELS)
    pg_store.create_layer(LOTS)
    polygons = awkward_polygons(rng)
    pg_store.insert_features("parcels", [FeatureInput(p, {"code": f"T{i}"}) for i, p in enumerate(polygons)])
    pairs = []
    for i in range(150):  # two squares 0.1 to 10 m apart
        a, gap = polygons[i].centroid, rng.uniform(0.1, 10) * METRE
        side = rng.uniform(3, 40) * METRE
        left = box(a.x - side - gap / 2, a.y, a.x - gap / 2, a.y + side)
        right = box(a.x + gap / 2, a.y, a.x + gap / 2 + side, a.y + side)
        pairs.append(FeatureInput(MultiPolygon([left, right]), {"code": f"L{i}"}))
    pg_store.insert_features("lots", pairs)

    shortcuts = 0
    x, y = (int(v) for v in _tile_of(z))
    for dx in (-1, 0, 1):  # the tile over the centre and its neighbours: features cross their edges
        for table in ("parcels", "lots"):
            spec = tile_spec(TileAddress("WebMercatorQuad", z, x + dx, y))
            ours = shapes_of(pg_store.vector_tile(table, spec).data, table)
            truth = shapes_of(reference_tile(pg_store, table, z, x + dx, y), table)
            assert ours.keys() == truth.keys()
            for fid, geometry in ours.items():
                assert geometry.is_valid, (z, table, fid, geometry.wkt)
                assert geometry.equals(truth[fid]), (z, table, fid, geometry.wkt, truth[fid].wkt)  # type: ignore[attr-defined]
                assert windings(geometry) == windings(truth[fid]), (z, table, fid)  # rings turned as MVT wants
            shortcuts += shortcut_count(pg_store, table, z, x + dx, y)
    if z >= 14:  # at these zooms most shapes are many grid units across: the shortcut is taken
        assert shortcuts > 20


def _tile_of(z: int) -> tuple[int, int]:
    n = 2**z
    x = (LON + 180) / 360 * n
    y = (1 - math.asinh(math.tan(math.radians(LAT))) / math.pi) / 2 * n
    return int(x), int(y)


def test_an_old_database_gets_the_tile_columns(pg_store: LayerStore, postgis_url: str) -> None:
    pg_store.create_layer(PARCELS)
    square = box(LON, LAT, LON + 30 * METRE, LAT + 30 * METRE)
    pg_store.insert_features("parcels", [FeatureInput(square, {"code": "A"})])
    spec = tile_spec(TileAddress("WebMercatorQuad", 16, *_tile_of(16)))
    before = pg_store.vector_tile("parcels", spec).data
    with pg_store.engine.begin() as conn:  # as a database made before migration 0004 was
        conn.exec_driver_sql('ALTER TABLE "l_parcels" DROP COLUMN _mercator, DROP COLUMN _clearance')
        conn.exec_driver_sql("DROP TABLE twin_key, twin_audit")  # migration 0005 came later still
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0003'")
    reopened = LayerStore.open(postgis_url)
    try:
        with reopened.engine.connect() as conn:
            columns = {
                row[0]
                for row in conn.exec_driver_sql(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'l_parcels'"
                )
            }
        assert {"_mercator", "_clearance"} <= columns
        assert reopened.vector_tile("parcels", spec).data == before
    finally:
        reopened.close()


def test_a_dense_tile_is_counted_first_and_comes_out_the_same(pg_store: LayerStore) -> None:
    points = LayerDefinition.model_validate(
        {"id": "lights", "title": "Đèn đường", "geometry_type": "Point", "fields": [{"name": "code", "type": "string"}]}
    )
    pg_store.create_layer(points)
    x, y = _tile_of(15)
    spec = tile_spec(TileAddress("WebMercatorQuad", 15, x, y))
    west, south, east, north = spec.lonlat_box(buffered=False)
    rng = np.random.default_rng(5)
    lons, lats = rng.uniform(west, east, MAX_FEATURES + 500), rng.uniform(south, north, MAX_FEATURES + 500)
    pg_store.insert_features(
        "lights", [FeatureInput(Point(a, b), {"code": str(i)}) for i, (a, b) in enumerate(zip(lons, lats, strict=True))]
    )
    backend = pg_store.backend
    assert isinstance(backend, PostGISBackend)
    first = pg_store.vector_tile("lights", spec)  # encoded, found too full, then counted per cell
    assert first.aggregated and ("l_lights", 15) in backend._dense
    again = pg_store.vector_tile("lights", spec)  # counted first: no encoding thrown away
    assert again == first
    sparse = tile_spec(TileAddress("WebMercatorQuad", 15, x + 3, y))
    pg_store.insert_features("lights", [FeatureInput(Point(*_centre_of(sparse)), {"code": "lone"})])
    lone = pg_store.vector_tile("lights", sparse)  # the hint is wrong here: the tile is still drawn
    assert not lone.aggregated and lone.features == 1
    assert ("l_lights", 15) not in backend._dense


def _centre_of(spec: TileSpec) -> tuple[float, float]:
    west, south, east, north = spec.lonlat_box(buffered=False)
    return (west + east) / 2, (south + north) / 2


def test_point_tiles_match_st_asmvt(pg_store: LayerStore) -> None:
    """The point writer (layers.mvtpoints, SpatiaLite's) gives the same features, places and values as ST_AsMVT."""
    layer = LayerDefinition.model_validate(
        {
            "id": "sensors",
            "title": "Cảm biến",
            "geometry_type": "Point",
            "fields": [
                {"name": "name", "type": "string"},
                {"name": "level", "type": "integer"},
                {"name": "reading", "type": "number"},
                {"name": "online", "type": "boolean"},
                {"name": "installed", "type": "date"},
                {"name": "seen_at", "type": "datetime"},
            ],
        }
    )
    pg_store.create_layer(layer)
    x, y = _tile_of(15)
    spec = tile_spec(TileAddress("WebMercatorQuad", 15, x, y))
    west, south, east, north = spec.lonlat_box()
    pad = (east - west) * 0.05  # some points beyond the buffer
    rng = np.random.default_rng(11)
    n = 3000
    lons, lats = rng.uniform(west - pad, east + pad, n), rng.uniform(south - pad, north + pad, n)
    when = datetime(2026, 5, 1, tzinfo=UTC)
    features = [
        FeatureInput(
            Point(lons[i], lats[i]),
            {
                "name": None if i % 9 == 0 else f"Trạm {i % 250}",
                "level": None if i % 7 == 0 else int(rng.integers(-500, 500)),
                "reading": None if i % 5 == 0 else float(rng.normal(30, 20)),
                "online": None if i % 4 == 0 else bool(i % 3),
                "installed": None if i % 6 == 0 else date(2020, 1, 1) + timedelta(days=i % 900),
                "seen_at": None if i % 8 == 0 else when + timedelta(seconds=float(rng.uniform(0, 1e6))),
            },
        )
        for i in range(n)
    ]
    pg_store.insert_features("sensors", features)
    sql = sa.text(
        """
        SELECT ST_AsMVT(q, 'sensors', 4096, 'geom', 'fid') FROM (
            SELECT fid, name, level, reading, online, to_char(installed, 'YYYY-MM-DD') AS installed,
                   to_char(timezone('UTC', seen_at), 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS seen_at,
                   ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope(15, :x, :y), 4096, 64, true) AS geom
            FROM l_sensors
        ) q WHERE geom IS NOT NULL
        """
    )
    with pg_store.engine.connect() as conn:
        truth_bytes = bytes(conn.execute(sql, {"x": x, "y": y}).scalar_one())

    def features_of(data: bytes) -> dict[int, tuple]:
        decoded = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})["sensors"]["features"]
        return {f["id"]: (tuple(f["geometry"]["coordinates"]), f["properties"]) for f in decoded}

    with pg_store.engine.connect() as conn:  # the Python writer SpatiaLite uses, here on PostGIS's rows
        tables = pg_store.registry.tables(conn, "sensors")
        names = [f.name for f in layer.fields]
        python = SpatialBackend.vector_tile(pg_store.backend, conn, tables, spec, names, [])
    truth = features_of(truth_bytes)
    assert 1000 < len(truth) < n  # the tile and its buffer, not the points beyond
    assert features_of(python.data) == truth
    assert features_of(pg_store.vector_tile("sensors", spec).data) == truth


def test_packed_point_tiles_carry_nulls_empty_text_and_nothing(pg_store: LayerStore) -> None:
    """The packed read: a text and a number column NULL everywhere, empty and multi-byte text, integers
    at their limits, and an empty tile."""
    layer = LayerDefinition.model_validate(
        {
            "id": "posts",
            "title": "Cột mốc",
            "geometry_type": "Point",
            "fields": [
                {"name": "note", "type": "string"},
                {"name": "label", "type": "string"},
                {"name": "rank", "type": "integer"},
                {"name": "depth", "type": "number"},
                {"name": "big", "type": "integer"},
            ],
        }
    )
    pg_store.create_layer(layer)
    x, y = _tile_of(16)
    spec = tile_spec(TileAddress("WebMercatorQuad", 16, x, y))
    lon, lat = _centre_of(spec)
    labels = ["", "Gành Ráng", None, "Ghềnh Ráng – Tiên Sa", "x" * 300]
    bigs = [2**63 - 1, None, -(2**63), 0, -1]
    pg_store.insert_features(
        "posts",
        [
            FeatureInput(
                Point(lon + i * 1e-5, lat), {"note": None, "label": label, "rank": i - 2, "depth": None, "big": big}
            )
            for i, (label, big) in enumerate(zip(labels, bigs, strict=True))
        ],
    )
    compile_readers()  # as the server does when it starts
    compiled = len(_array_elements.signatures)
    decoded = mapbox_vector_tile.decode(pg_store.vector_tile("posts", spec).data)["posts"]["features"]
    assert len(_array_elements.signatures) == compiled  # nothing left to compile on a tile's time
    by_rank = {f["properties"]["rank"]: f["properties"] for f in decoded}
    assert sorted(by_rank) == [-2, -1, 0, 1, 2]
    for i, label in enumerate(labels):
        expected = {"rank": i - 2} | ({} if label is None else {"label": label})
        expected |= {} if bigs[i] is None else {"big": bigs[i]}
        assert by_rank[i - 2] == expected  # "note" and "depth" are NULL everywhere: never written
    empty = tile_spec(TileAddress("WebMercatorQuad", 16, x + 3, y))
    tile = pg_store.vector_tile("posts", empty)
    assert tile.data == b"" and tile.features == 0


def test_a_database_not_in_utf8_is_refused_clearly(postgis_url: str) -> None:
    """Vietnamese text does not fit WIN1258 as Twin writes it (precomposed letters such as "ờ"): such a
    database is refused when the store opens, with what to do, rather than failing at the first write."""
    admin = sa.create_engine(sqlalchemy_url(postgis_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS twin_win1258")
        conn.exec_driver_sql(
            "CREATE DATABASE twin_win1258 TEMPLATE template0 ENCODING 'WIN1258' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    admin.dispose()
    with pytest.raises(UnavailableError, match=r"WIN1258.*ENCODING 'UTF8'"):
        LayerStore.open(postgis_url.rsplit("/", 1)[0] + "/twin_win1258")
