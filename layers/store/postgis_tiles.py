"""Vector tiles in one PostGIS query each, and the columns that make polygon tiles cheap.

``ST_AsMVTGeom`` is most of a polygon tile's cost: it clips each polygon
to the tile's buffer and repairs what snapping to the 4096 grid may break,
even for the many polygons that lie inside the tile and that snapping cannot
break. A polygon layer therefore keeps two generated columns (PostgreSQL
computes them on every insert and update, whatever writes the row):

* ``_mercator``: the geometry in Web Mercator, rings turned clockwise, so that
  flipping y for the tile grid leaves them as MVT wants them (exterior rings
  clockwise on screen). No row needs ``ST_Transform`` at tile time.
* ``_clearance``: the geometry's minimum clearance in degrees (GEOS): the least
  distance between a vertex and a segment not its own. Snapping moves each
  vertex by at most √½ grid unit, so a segment by as much, and two parts can
  only meet after snapping if they were within √2 units before. A polygon
  whose clearance is over :data:`SAFE_CLEARANCE_UNITS` grid units stays valid
  once snapped, and one inside the tile's buffer needs no clipping.

Such polygons are moved to the grid with ``ST_Affine`` and ``ST_SnapToGrid``,
which is what ``ST_AsMVTGeom`` does to them too; every other feature goes
through ``ST_AsMVTGeom``. Degrees convert to grid units through the tile's
width in longitude: Web Mercator stretches latitude more than longitude, never
less, so the clearance in grid units is at least what this computes.

Point layers skip ``ST_AsMVT``, which spends about half a microsecond on every
property value: one query returns the tile's points packed in a single row
(see ``_point_statement``) and ``layers.mvtpoints`` writes the tile.

Statements are built and compiled once per layer and column list, with the
tile's numbers bound; results come back in binary (bytea as raw bytes, numbers
as numbers, not text to parse).
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from numba import njit
from numpy.typing import NDArray
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from layers.model import FieldType, GeometryType, LayerDefinition
from layers.mvtpoints import TEXTUAL
from layers.store.backend import driver_connection
from layers.store.tables import SRID, LayerTables
from layers.vectortiles import (
    AGGREGATE_GRID,
    COUNT_PROPERTY,
    MAX_FEATURES,
    PointColumns,
    TileSpec,
    VectorTile,
    cell_edges,
)

MERCATOR = 3857
MERCATOR_COLUMN = "_mercator"
CLEARANCE_COLUMN = "_clearance"
#: Snapping can move two parts of a polygon √2 grid units closer; keep a margin over that.
SAFE_CLEARANCE_UNITS = 2.0
POLYGONAL = frozenset({GeometryType.POLYGON, GeometryType.MULTIPOLYGON})
_CAPACITY = 256


def has_tile_columns(layer: LayerDefinition) -> bool:
    return layer.geometry_type in POLYGONAL


def tile_columns_ddl(table_name: str, geometry_type: GeometryType) -> list[str]:
    """The statements that add the generated tile columns to a polygon layer's table."""
    table = '"' + table_name.replace('"', '""') + '"'
    return [
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {MERCATOR_COLUMN} geometry({geometry_type.value}, {MERCATOR}) "
        f"GENERATED ALWAYS AS (ST_ForcePolygonCW(ST_Transform(geom, {MERCATOR}))) STORED",
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {CLEARANCE_COLUMN} double precision "
        "GENERATED ALWAYS AS (ST_MinimumClearance(geom)) STORED",
    ]


def mvt_column(column: sa.Column[Any], kind: FieldType) -> ColumnElement[Any]:
    """A property as ``layers.vectortiles.mvt_value`` writes it: times as ISO 8601 UTC text."""
    if kind is FieldType.DATETIME:
        utc = sa.func.timezone("UTC", column)
        return sa.func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS"Z"').label(column.name)
    if kind is FieldType.DATE:
        return sa.func.to_char(column, "YYYY-MM-DD").label(column.name)
    return column


def _float(name: str) -> Any:
    return sa.bindparam(name, type_=sa.Float)


def _tile_statement(
    tables: LayerTables, names: list[str], filters: list[ColumnElement[bool]]
) -> sa.Select[bytes, int, int]:
    """The tile, its candidate count and its drawn count, with the tile's numbers as bind parameters."""
    table = tables.current
    layer = tables.definition
    envelope = sa.func.ST_MakeEnvelope(_float("w"), _float("s"), _float("e"), _float("n"), MERCATOR)
    box = sa.func.ST_MakeEnvelope(_float("bw"), _float("bs"), _float("be"), _float("bn"), SRID)
    extent, buffer = sa.bindparam("extent", type_=sa.Integer), sa.bindparam("buffer", type_=sa.Integer)
    if has_tile_columns(layer):
        mercator: ColumnElement[Any] = sa.literal_column(MERCATOR_COLUMN)
        on_grid = sa.func.ST_SnapToGrid(
            sa.func.ST_Affine(mercator, _float("sx"), 0.0, 0.0, _float("sy"), _float("dx"), _float("dy")), 1.0
        )
        safe = sa.and_(
            table.c.geom.op("@")(box), sa.literal_column(CLEARANCE_COLUMN) >= sa.bindparam("clearance", type_=sa.Float)
        )
        geom: ColumnElement[Any] = sa.case(
            (safe, on_grid), else_=sa.func.ST_AsMVTGeom(mercator, envelope, extent, buffer, True)
        )
    else:
        # SRIDs as integers: with a text CRS, PostGIS rebuilds the transformation for every row.
        geom = sa.func.ST_AsMVTGeom(sa.func.ST_Transform(table.c.geom, MERCATOR), envelope, extent, buffer, True)
    fields = {f.name: f for f in layer.fields}
    rows = (
        sa.select(table.c.fid, geom.label("geom"), *(mvt_column(table.c[n], fields[n].type) for n in names))
        .where(table.c.geom.op("&&")(box), *filters)
        .limit(MAX_FEATURES + 1)
        .subquery("q")
    )
    encoded = sa.func.ST_AsMVT(sa.literal_column("q"), layer.id, extent, "geom", "fid", type_=sa.LargeBinary)
    drawn = encoded.filter(rows.c.geom.is_not(None))
    return sa.select(drawn, sa.func.count(), sa.func.count(rows.c.geom)).select_from(rows)


_compiled: OrderedDict[tuple[Any, ...], tuple[str, dict[str, Any]]] = OrderedDict()
_lock = threading.Lock()


def _compile(
    conn: Connection,
    tables: LayerTables,
    names: list[str],
    filters: list[ColumnElement[bool]],
    build: Callable[[LayerTables, list[str], list[ColumnElement[bool]]], Any],
) -> tuple[str, dict[str, Any]]:
    """SQL text and its constant parameters; kept per (statement, table, names) when there are no extra filters.

    The key holds the table object itself, which the registry rebuilds when the
    catalog changes, so an altered layer never meets a stale statement."""
    key = (build, tables.current, tuple(names))
    if not filters:
        with _lock:
            found = _compiled.get(key)
            if found is not None:
                _compiled.move_to_end(key)
                return found
    compiled = build(tables, names, filters).compile(dialect=conn.dialect)
    result = (compiled.string, dict(compiled.params))
    if not filters:
        with _lock:
            _compiled[key] = result
            while len(_compiled) > _CAPACITY:
                _compiled.popitem(last=False)
    return result


def _run(conn: Connection, sql: str, params: dict[str, Any], *, one: bool) -> Any:
    """Run on the driver's cursor in binary: bytea and numbers come back as they are, not as text to parse."""
    cursor = driver_connection(conn).cursor(binary=True)
    try:
        cursor.execute(sql, params)
        return cursor.fetchone() if one else cursor.fetchall()
    finally:
        cursor.close()


def tile_parameters(spec: TileSpec) -> dict[str, Any]:
    """The numbers of one tile: its Mercator bounds, its lon/lat search box, the grid transform."""
    west, south, east, north = spec.lonlat_box()
    scale = spec.extent / (spec.east - spec.west)
    degrees_per_unit = 360.0 / (2**spec.z * spec.extent)  # of longitude; a unit spans more latitude
    return {
        "w": spec.west,
        "s": spec.south,
        "e": spec.east,
        "n": spec.north,
        "bw": west,
        "bs": south,
        "be": east,
        "bn": north,
        "extent": spec.extent,
        "buffer": spec.buffer,
        # x' = (x - west)·scale, y' = (north - y)·scale: the tile grid, y down.
        "sx": scale,
        "sy": -scale,
        "dx": -spec.west * scale,
        "dy": spec.north * scale,
        "clearance": SAFE_CLEARANCE_UNITS * degrees_per_unit,
    }


def build_tile(
    conn: Connection, tables: LayerTables, spec: TileSpec, names: list[str], filters: list[ColumnElement[bool]]
) -> tuple[bytes, int, int]:
    """(MVT bytes, candidates found up to MAX_FEATURES + 1, features drawn) in one round trip."""
    sql, constants = _compile(conn, tables, names, filters, _tile_statement)
    row = _run(conn, sql, {**constants, **tile_parameters(spec)}, one=True)
    assert row is not None
    data, found, drawn = row
    return bytes(data or b""), found, drawn


#: One packed row of a point tile: id, longitude, latitude, as int8send/float8send write them.
_POSITION = np.dtype([("fid", ">i8"), ("lon", ">f8"), ("lat", ">f8")])


def _bytes(name: str, *args: Any) -> ColumnElement[bytes]:
    return getattr(sa.func, name)(*args, type_=sa.LargeBinary)


def _point_statement(
    tables: LayerTables, names: list[str], filters: list[ColumnElement[bool]]
) -> sa.Select[int, *tuple[Any, ...]]:
    """A point tile's candidates packed in one row: their count (up to MAX_FEATURES + 1); their ids
    and positions, 24 bytes a point; then, for each property, its values: text as each value's
    length in bytes (-1 for NULL) and the values end to end, other types as an array in PostgreSQL's
    binary format (``array_send``, read by ``_array_values``). Thousands of rows would each cost
    Python an object per value; this row costs a few. All aggregates of one
    query read the rows in the same order. Text crosses as the server holds it: UTF-8 (see
    ``postgis.TEXT_ENCODINGS``)."""
    table = tables.current
    fields = {f.name: f.type for f in tables.definition.fields}
    box = sa.func.ST_MakeEnvelope(_float("bw"), _float("bs"), _float("be"), _float("bn"), SRID)
    selected = [mvt_column(table.c[n], fields[n]) for n in names]
    rows = (
        sa.select(
            table.c.fid, sa.func.ST_X(table.c.geom).label("lon"), sa.func.ST_Y(table.c.geom).label("lat"), *selected
        )
        .where(table.c.geom.op("&&")(box), *filters)
        .limit(MAX_FEATURES + 1)
        .subquery("q")
    )
    empty = sa.literal_column("''::bytea", sa.LargeBinary)
    position = (
        _bytes("int8send", rows.c.fid)
        .op("||")(_bytes("float8send", rows.c.lon))
        .op("||")(_bytes("float8send", rows.c.lat))
    )
    aggregates: list[ColumnElement[Any]] = [sa.func.count(), sa.func.string_agg(position, empty)]
    for n in names:
        column = rows.c[n]
        if fields[n] in TEXTUAL:
            length = sa.func.coalesce(sa.func.octet_length(column), -1)
            text = _bytes("textsend", sa.func.string_agg(column, ""))
            aggregates += [sa.func.string_agg(_bytes("int4send", length), empty), text]
        else:
            aggregates.append(_bytes("array_send", sa.func.array_agg(column)))
    return sa.select(*aggregates)


def _texts(lengths: bytes, data: bytes | None) -> pa.Array:
    """Text values from their lengths (big-endian int4, -1 for NULL) and their UTF-8 bytes end to end."""
    sizes = np.frombuffer(lengths, dtype=">i4").astype(np.int32)
    valid = sizes >= 0
    offsets = np.concatenate([[0], np.cumsum(sizes * valid)]).astype(np.int32)
    nulls = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(len(sizes), pa.py_buffer(offsets), pa.py_buffer(data or b""), nulls)


@njit(cache=True, nogil=True)
def _int32(data: NDArray[np.uint8], at: int) -> int:
    """The big-endian signed 32-bit integer at ``data[at]``."""
    value = (np.int64(data[at]) << 24) | (np.int64(data[at + 1]) << 16) | (np.int64(data[at + 2]) << 8)
    value |= np.int64(data[at + 3])
    return int(value - (1 << 32) if value >= 1 << 31 else value)


@njit(cache=True, nogil=True)
def _array_elements(data: NDArray[np.uint8], width: int) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """The elements of a one-dimensional array in PostgreSQL's binary format (a header of 20 bytes,
    then each element as its length, -1 for NULL, and its bytes), all ``width`` bytes long: their
    bytes end to end as sent (big-endian; zeros for a NULL), and which are not NULL."""
    if len(data) < 20 or _int32(data, 0) == 0:  # no array, or one of no dimensions: empty
        return np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.bool_)
    count = _int32(data, 12)
    values = np.zeros(count * width, dtype=np.uint8)
    valid = np.zeros(count, dtype=np.bool_)
    at = 20
    for i in range(count):
        length = _int32(data, at)
        at += 4
        if length >= 0:
            assert length == width
            values[i * width : (i + 1) * width] = data[at : at + width]
            valid[i] = True
            at += length
    assert at == len(data)
    return values, valid


#: How each non-text field type crosses in binary, and its Arrow type.
_BINARY = {
    FieldType.NUMBER: (np.dtype(">f8"), pa.float64()),
    FieldType.INTEGER: (np.dtype(">i8"), pa.int64()),
    FieldType.BOOLEAN: (np.dtype("?"), pa.bool_()),
}


def _array_values(data: bytes | None, kind: FieldType) -> pa.Array:
    """An ``array_send`` of a number, integer or boolean column as an Arrow array (NULL where NULL)."""
    wire, arrow = _BINARY[kind]
    values, valid = _array_elements(np.frombuffer(data or b"", dtype=np.uint8), wire.itemsize)
    native = values.view(wire).astype(wire.newbyteorder("="))
    return pa.array(native, type=arrow, mask=None if valid.all() else ~valid)


def compile_readers() -> None:
    """Compile ``_array_elements`` now (or load it from numba's cache), so that no tile waits for it."""
    one_null = struct.pack(">6i", 1, 1, 701, 1, 1, -1)  # 1 dimension, has NULLs, float8, 1 element from 1: NULL
    assert _array_values(one_null, FieldType.NUMBER).null_count == 1


def point_columns(
    conn: Connection, tables: LayerTables, spec: TileSpec, names: list[str], filters: list[ColumnElement[bool]]
) -> PointColumns | None:
    """The candidates of a point tile, column by column (see ``SpatialBackend.point_columns``)."""
    sql, constants = _compile(conn, tables, names, filters, _point_statement)
    box = dict(zip(("bw", "bs", "be", "bn"), spec.lonlat_box(), strict=True))
    row = list(_run(conn, sql, {**constants, **box}, one=True))
    found = row.pop(0)
    if found > MAX_FEATURES:
        return None
    fields = {f.name: f.type for f in tables.definition.fields}
    positions = np.frombuffer(row.pop(0) or b"", dtype=_POSITION)
    properties: list[tuple[str, FieldType, Any]] = []
    for n in names:
        if fields[n] in TEXTUAL:  # dates and times already as text
            properties.append((n, FieldType.STRING, _texts(row.pop(0) or b"", row.pop(0))))
        else:
            properties.append((n, fields[n], _array_values(row.pop(0), fields[n])))
    native = positions.astype([("fid", "i8"), ("lon", "f8"), ("lat", "f8")])
    return PointColumns(native["fid"], native["lon"], native["lat"], properties)


def capped_count(conn: Connection, tables: LayerTables, spec: TileSpec, filters: list[ColumnElement[bool]]) -> int:
    """How many features the tile would hold, counted up to ``MAX_FEATURES + 1`` on the index."""
    table = tables.current
    box = sa.func.ST_MakeEnvelope(*spec.lonlat_box(), SRID)
    candidates = sa.select(sa.literal(1)).where(table.c.geom.op("&&")(box), *filters).limit(MAX_FEATURES + 1)
    return int(conn.execute(sa.select(sa.func.count()).select_from(candidates.subquery())).scalar_one())


def aggregate_tile(
    conn: Connection, tables: LayerTables, spec: TileSpec, filters: list[ColumnElement[bool]]
) -> VectorTile:
    """Counts per grid cell, as ``layers.vectortiles.encode_aggregates`` computes them.

    Cells are found in lon/lat against their edges, computed here once per tile
    (Web Mercator keeps meridians and parallels straight), so no row is projected;
    only each cell's mean position is."""
    table = tables.current
    layer = tables.definition
    west, south, east, north = spec.lonlat_box(buffered=False)
    found = (table.c.geom.op("&&")(sa.func.ST_MakeEnvelope(west, south, east, north, SRID)), *filters)
    lon: ColumnElement[Any]
    lat: ColumnElement[Any]
    if layer.geometry_type is GeometryType.POINT:
        lon, lat = sa.func.ST_X(table.c.geom), sa.func.ST_Y(table.c.geom)
        points = sa.select(lon.label("lon"), lat.label("lat")).where(*found).subquery("p")
    else:  # the centre of the bounding box
        boxes = sa.select(sa.func.Box2D(table.c.geom).label("b")).where(*found).subquery("b")
        lon = (sa.func.ST_XMin(boxes.c.b) + sa.func.ST_XMax(boxes.c.b)) / 2
        lat = (sa.func.ST_YMin(boxes.c.b) + sa.func.ST_YMax(boxes.c.b)) / 2
        points = sa.select(lon.label("lon"), lat.label("lat")).subquery("p")
    columns, rows = cell_edges(spec)
    edges = postgresql.ARRAY(sa.Float)
    # width_bucket: b with edge[b-1] <= v < edge[b]; rows count down from the north edge, which belongs to row 0.
    cx = sa.func.width_bucket(points.c.lon, sa.cast(columns, edges)) - 1
    cy = sa.func.width_bucket(-points.c.lat, sa.cast([-lat for lat in rows], edges)) - 1
    inside = sa.select(points.c.lon, points.c.lat, cx.label("cx"), cy.label("cy")).subquery("c")
    mean = sa.func.ST_Transform(
        sa.func.ST_SetSRID(sa.func.ST_MakePoint(sa.func.avg(inside.c.lon), sa.func.avg(inside.c.lat)), SRID), MERCATOR
    )
    envelope = sa.func.ST_MakeEnvelope(spec.west, spec.south, spec.east, spec.north, MERCATOR)
    cells = (
        sa.select(
            sa.cast(inside.c.cy * AGGREGATE_GRID + inside.c.cx + 1, sa.BigInteger).label("id"),
            sa.func.ST_AsMVTGeom(mean, envelope, spec.extent, 0, False).label("geom"),
            sa.func.count().label(COUNT_PROPERTY),
        )
        .where(inside.c.cx.between(0, AGGREGATE_GRID - 1), inside.c.cy.between(0, AGGREGATE_GRID - 1))
        .group_by(inside.c.cx, inside.c.cy)
        .subquery("q")
    )
    encoded = sa.func.ST_AsMVT(sa.literal_column("q"), layer.id, spec.extent, "geom", "id", type_=sa.LargeBinary)
    data, drawn = conn.execute(sa.select(encoded, sa.func.count()).select_from(cells)).one()
    return VectorTile(layer.id, bytes(data or b""), drawn, True)
