"""Production: PostgreSQL with PostGIS.

Distances are measured on the geography type (the WGS84 spheroid), after the
geometry's GiST index has cut the candidates to a conservative lon/lat window.
Bulk loads use ``COPY`` and, into an empty table, build the spatial index once
at the end. JIT is off for the whole session: Twin's queries are short, and
PostgreSQL's JIT spends more time compiling them than running them.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import shapely
import sqlalchemy as sa
from geoalchemy2 import Geography
from pyarrow import csv
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from layers.errors import UnavailableError
from layers.features import Near
from layers.model import GeometryType
from layers.store.backend import WRITE_OPTION, SpatialBackend, driver_connection
from layers.store.postgis_tiles import (
    aggregate_tile,
    build_tile,
    capped_count,
    has_tile_columns,
    point_columns,
    tile_columns_ddl,
)
from layers.store.tables import ARROW_TYPES, SRID, LayerTables
from layers.validation import RowBatch
from layers.vectortiles import MAX_BYTES, MAX_FEATURES, PointColumns, TileSpec, VectorTile

#: Twin's queries are short: JIT compiles longer than they run; a generic plan for a bound bbox
#: scans and sorts every match (33 ms against 3.5 ms); parallel workers take 15–30 ms to start.
SESSION_OPTIONS = "-c jit=off -c timezone=UTC -c plan_cache_mode=force_custom_plan -c max_parallel_workers_per_gather=0"


def sqlalchemy_url(url: str) -> str:
    """Accept the usual ``postgresql://`` and ``postgres://`` forms; use psycopg 3."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


#: Server encodings Twin accepts: text crosses as UTF-8 both ways, unconverted (SQL_ASCII keeps the bytes as sent).
TEXT_ENCODINGS = frozenset({"UTF8", "SQL_ASCII"})


class PostGISBackend(SpatialBackend):
    name = "postgis"

    def __init__(self) -> None:
        #: (table, zoom) whose last tile had too many features: a hint, never a rule.
        self._dense: set[tuple[str, int]] = set()

    # Twin reads at READ COMMITTED, where each statement takes its own snapshot: BEGIN and COMMIT
    # around a read would only cost two round trips.
    AUTOCOMMIT_READS = True

    def create_engine(self, url: str, read_timeout_s: float | None = None) -> Engine:
        # The timeout is a session setting, so a read pays no round trip for it; a write transaction
        # lifts it for itself (SET LOCAL), one statement more in a transaction of several.
        options = SESSION_OPTIONS
        if read_timeout_s is not None:
            options += f" -c statement_timeout={max(1, round(read_timeout_s * 1000))}"
        engine = sa.create_engine(
            sqlalchemy_url(url),
            # No pre-ping (a round trip on every checkout): a connection the server dropped fails its
            # request once and is discarded; connections are renewed every half hour anyway.
            pool_recycle=1800,
            pool_size=10,
            max_overflow=10,
            connect_args={"options": options, "connect_timeout": 10, "client_encoding": "utf8"},
        )
        if read_timeout_s is not None:

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                if conn.get_execution_options().get(WRITE_OPTION, False):
                    conn.exec_driver_sql("SET LOCAL statement_timeout = 0")

        return engine

    def is_cancelled(self, exc: sa.exc.DBAPIError) -> bool:
        return isinstance(exc.orig, psycopg.errors.QueryCanceled)

    def initialize(self, conn: Connection) -> None:
        # Workers starting together would race to create the catalog; one at a time.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(72622025)")
        encoding = conn.exec_driver_sql("SHOW server_encoding").scalar_one()
        if encoding not in TEXT_ENCODINGS:
            raise UnavailableError(
                f"the database is in {encoding}, which cannot hold all Vietnamese text as Twin writes it; "
                "create it with CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0"
            )
        has_postgis = conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").first()
        if not has_postgis:
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql("CREATE EXTENSION postgis")
            except sa.exc.DBAPIError as exc:
                raise UnavailableError(
                    "the database has no PostGIS extension and this role cannot create it; "
                    "run CREATE EXTENSION postgis as a superuser"
                ) from exc
        super().initialize(conn)

    def box_prefilter(self, table: sa.Table, box: tuple[float, float, float, float]) -> ColumnElement[bool]:
        return table.c.geom.op("&&")(self.envelope(box))

    def box_intersects(self, table: sa.Table, box: tuple[Any, Any, Any, Any]) -> ColumnElement[bool]:
        """ST_Intersects alone: it uses the GiST index by itself, and an extra ``&&`` makes the planner
        underestimate the matches (309 for 17,573), so it sorts them all instead of stopping at a page."""
        return sa.func.ST_Intersects(table.c.geom, self.envelope(box), type_=sa.Boolean)

    def meets_mask(self, table: sa.Table, wkb: Any, bounds: tuple[Any, Any, Any, Any]) -> ColumnElement[bool]:
        """ST_Intersects alone uses the GiST index (see ``box_intersects``); the bounds are not needed."""
        return sa.func.ST_Intersects(table.c.geom, self.geom_from_wkb(wkb), type_=sa.Boolean)

    def envelope(self, box: tuple[float, float, float, float]) -> ColumnElement[Any]:
        return sa.func.ST_MakeEnvelope(*box, SRID)

    def point(self, lon: float, lat: float) -> ColumnElement[Any]:
        return sa.func.ST_SetSRID(sa.func.ST_MakePoint(lon, lat), SRID)

    def _geography(self, geom: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.cast(geom, Geography(srid=SRID))

    def distance_metres(self, geom: ColumnElement[Any], near: Near) -> ColumnElement[float]:
        target = self._geography(self.point(near.lon, near.lat))
        return sa.func.ST_Distance(self._geography(geom), target, type_=sa.Float)

    def exact_within(self, geom: ColumnElement[Any], near: Near) -> ColumnElement[bool]:
        target = self._geography(self.point(near.lon, near.lat))
        return sa.func.ST_DWithin(self._geography(geom), target, near.metres, type_=sa.Boolean)

    def planar_within(self, geom: ColumnElement[Any], lon: float, lat: float, degrees: float) -> ColumnElement[bool]:
        return sa.func.ST_DWithin(geom, self.point(lon, lat), degrees, type_=sa.Boolean)

    def feature_geojson(self, table: sa.Table, names: list[str]) -> ColumnElement[str] | None:
        """ST_AsGeoJSON and json_build_object: Python only joins the strings of a page."""
        if len(names) > 50:  # json_build_object takes at most 100 arguments
            return None
        pairs = [arg for name in names for arg in (sa.cast(sa.literal(name), sa.Text), table.c[name])]
        properties = sa.cast(sa.func.json_build_object(*pairs), sa.Text)
        return sa.func.concat(
            '{"type":"Feature","id":',
            table.c.fid,
            ',"geometry":',
            sa.func.ST_AsGeoJSON(table.c.geom, 15),
            ',"properties":',
            properties,
            "}",
            type_=sa.Text,
        )

    def vector_tile(
        self,
        conn: Connection,
        tables: LayerTables,
        spec: TileSpec,
        names: list[str],
        filters: list[ColumnElement[bool]],
    ) -> VectorTile:
        """One query for the tile (see ``postgis_tiles``); counts per cell instead when there are too many
        features. Polygons and lines are encoded by ST_AsMVT; a Point layer's points are read packed in
        one row and written by ``layers.mvtpoints`` (ST_AsMVT spends about half a microsecond on every
        property value).

        Where the last tile of this layer and zoom had to be aggregated, the next one is likely to be
        too: its features are counted first (up to ``MAX_FEATURES + 1``), so that no tile is read or
        encoded only to be thrown away."""
        dense = (tables.current.name, spec.z)
        if dense in self._dense and capped_count(conn, tables, spec, filters) > MAX_FEATURES:
            return aggregate_tile(conn, tables, spec, filters)
        tile: VectorTile | None
        if tables.definition.geometry_type is GeometryType.POINT:
            tile = self.point_tile(conn, tables, spec, names, filters)
        else:
            data, found, drawn = build_tile(conn, tables, spec, names, filters)
            fits = found <= MAX_FEATURES and len(data) <= MAX_BYTES
            tile = VectorTile(tables.definition.id, data, drawn, False) if fits else None
        if tile is not None:
            self._dense.discard(dense)
            return tile
        self._dense.add(dense)
        return aggregate_tile(conn, tables, spec, filters)

    def point_columns(
        self,
        conn: Connection,
        tables: LayerTables,
        spec: TileSpec,
        names: list[str],
        filters: list[ColumnElement[bool]],
    ) -> PointColumns | None:
        return point_columns(conn, tables, spec, names, filters)

    def planar_nearest(self, table: sa.Table, lon: float, lat: float) -> ColumnElement[Any] | None:
        return table.c.geom.op("<->")(self.point(lon, lat))

    def spatial_extent(self, conn: Connection, table: sa.Table) -> tuple[float, float, float, float] | None:
        """From the planner's statistics when ANALYZE has run (instant; it trails writes since), else by scanning."""
        estimated = sa.func.ST_EstimatedExtent(table.name, "geom")
        row = conn.execute(
            sa.select(
                sa.func.ST_XMin(estimated),
                sa.func.ST_YMin(estimated),
                sa.func.ST_XMax(estimated),
                sa.func.ST_YMax(estimated),
            )
        ).one()
        if row[0] is None:
            extent = sa.select(sa.func.ST_Extent(table.c.geom).label("e")).subquery()
            row = conn.execute(
                sa.select(
                    sa.func.ST_XMin(extent.c.e),
                    sa.func.ST_YMin(extent.c.e),
                    sa.func.ST_XMax(extent.c.e),
                    sa.func.ST_YMax(extent.c.e),
                )
            ).one()
        return None if row[0] is None else (row[0], row[1], row[2], row[3])

    def create_tables(self, conn: Connection, tables: LayerTables) -> None:
        tables.current.create(conn)
        tables.history.create(conn)
        if has_tile_columns(tables.definition):
            for statement in tile_columns_ddl(tables.current.name, tables.definition.geometry_type):
                conn.exec_driver_sql(statement)

    def drop_tables(self, conn: Connection, tables: LayerTables) -> None:
        tables.history.drop(conn)
        tables.current.drop(conn)

    @contextmanager
    def bulk_writer(
        self, conn: Connection, tables: LayerTables, valid_from: datetime
    ) -> Iterator[Callable[[RowBatch], int]]:
        """One COPY in CSV form for the whole load; Arrow's C++ writer formats each batch."""
        layer = tables.definition
        names = ["geom", *(f.name for f in layer.fields), "_valid_from"]
        # One constant, formatted once: Arrow formats zoned timestamps slowly (≈ 1.6 µs a row).
        stamp = pa.array([valid_from.isoformat()], type=pa.string())
        prefix = f"SRID={SRID};"
        quote = conn.dialect.identifier_preparer.quote
        sql = f"COPY {quote(tables.current.name)} ({', '.join(map(quote, names))}) FROM STDIN WITH (FORMAT csv)"
        cursor = driver_connection(conn).cursor()
        with cursor.copy(sql) as copy:

            def write(batch: RowBatch) -> int:
                n = len(batch)
                # PostGIS reads "SRID=4326;<hex WKB>"; GEOS's own hex writer is 3x slower than bytes.hex().
                wkb = shapely.to_wkb(batch.geometries, output_dimension=2)
                data = pa.table(
                    [
                        pa.array([prefix + w.hex() for w in wkb], type=pa.string()),
                        *(pa.array(batch.columns[f.name], type=ARROW_TYPES[f.type]) for f in layer.fields),
                        stamp.take(np.zeros(n, dtype=np.int64)),
                    ],
                    names=names,
                )
                payload = io.BytesIO()
                csv.write_csv(data, payload, csv.WriteOptions(include_header=False))
                copy.write(payload.getbuffer())
                return n

            yield write

    def begin_bulk_load(self, conn: Connection, tables: LayerTables) -> None:
        conn.exec_driver_sql(f'DROP INDEX IF EXISTS "idx_{tables.current.name}_geom"')

    def end_bulk_load(self, conn: Connection, tables: LayerTables) -> None:
        name = tables.current.name
        conn.exec_driver_sql(f'CREATE INDEX "idx_{name}_geom" ON "{name}" USING gist (geom)')
