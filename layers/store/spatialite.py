"""The embedded default: SQLite with SpatiaLite, one file, zero configuration.

The stdlib ``sqlite3`` of this Python cannot load extensions, so the driver is
``pysqlite3`` (a current SQLite with extension loading). Transactions are
begun explicitly: ``BEGIN IMMEDIATE`` for writes, so two writers queue on the
lock instead of failing half-way, and ``BEGIN`` for reads. WAL lets readers
run while a writer works.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import islice, repeat
from typing import Any

# SQLite opens extensions with RTLD_GLOBAL, so once a connection has loaded mod_spatialite, Debian's
# libproj and libgeos stand in for the copies pyproj, pyogrio and rasterio carry in their wheels, in
# any of their modules imported afterwards: the first CRS.from_epsg, WKT or to_crs then segfaults.
# Python binds an extension's symbols when it is imported, so importing them all first keeps each
# on its own libraries (shapely below too).
import pyogrio.raw  # noqa: F401
import pyproj  # noqa: F401
import pysqlite3.dbapi2 as sqlite
import rasterio
import rasterio.fill
import rasterio.shutil  # noqa: F401
import shapely
import sqlalchemy as sa
from geoalchemy2.admin.dialects.sqlite import init_spatialite, load_spatialite_driver
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from layers.features import Near
from layers.store.backend import WRITE_OPTION, SpatialBackend, driver_connection
from layers.store.tables import SRID, LayerTables
from layers.store.writer_queue import BUSY_TIMEOUT_MS, WAIT_OPTION
from layers.textfold import fold_accents, fold_case
from layers.validation import RowBatch

_CHUNK = 5_000
#: Key of a connection's ``_Deadline`` in its pool record's ``info``.
_DEADLINE = "twin_read_deadline"
#: SQLite calls the progress handler every this many virtual-machine steps (a few milliseconds of work):
#: the handler takes the GIL, so calling it more often would make a query wait on other threads.
_PROGRESS_STEPS = 200_000


class _Deadline:
    """When the read running on one connection must stop: SQLite's progress handler asks ``passed``
    and, on True, abandons the statement with "interrupted" (``is_cancelled``)."""

    __slots__ = ("at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = math.inf

    def start(self) -> None:
        self.at = time.monotonic() + self.seconds

    def lift(self) -> None:
        self.at = math.inf

    def passed(self) -> bool:
        return time.monotonic() > self.at


class SpatiaLiteBackend(SpatialBackend):
    name = "spatialite"

    def create_engine(self, url: str, read_timeout_s: float | None = None) -> Engine:
        os.environ.setdefault("SPATIALITE_LIBRARY_PATH", "mod_spatialite")
        engine = sa.create_engine(
            url, module=sqlite, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=8
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below owns transactions
            load_spatialite_driver(dbapi_conn)
            # journal_size_limit: when SQLite restarts the write-ahead log, it cuts it back to 64 MiB.
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={BUSY_TIMEOUT_MS}"):
                dbapi_conn.execute(f"PRAGMA {pragma}")
            dbapi_conn.execute(f"PRAGMA journal_size_limit={64 * 2**20}")
            _add_text_functions(dbapi_conn)
            if read_timeout_s is not None:
                deadline = _Deadline(read_timeout_s)
                record.info[_DEADLINE] = deadline
                dbapi_conn.set_progress_handler(deadline.passed, _PROGRESS_STEPS)

        @event.listens_for(engine, "checkin")
        def _checkin(_dbapi_conn: Any, record: Any) -> None:
            deadline = record.info.get(_DEADLINE)
            if deadline is not None:
                deadline.lift()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            deadline = conn.info.get(_DEADLINE)
            if not options.get(WRITE_OPTION, False):
                if deadline is not None:
                    deadline.start()
                conn.exec_driver_sql("BEGIN")
                return
            if deadline is not None:
                deadline.lift()
            # A writer waits for writers in other processes only as long as its turn allows (writer_queue).
            wait_ms = options.get(WAIT_OPTION)
            if wait_ms is None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            driver = driver_connection(conn)
            driver.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            finally:
                driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

        return engine

    def is_cancelled(self, exc: sa.exc.DBAPIError) -> bool:
        return isinstance(exc.orig, sqlite.OperationalError) and str(exc.orig) == "interrupted"

    def renew_read_timeout(self, conn: Connection) -> None:
        deadline = conn.info.get(_DEADLINE)
        if deadline is not None:
            deadline.start()

    def initialize(self, conn: Connection) -> None:
        init_spatialite(conn.connection.driver_connection, transaction=False, init_mode="WGS84")
        super().initialize(conn)

    def box_prefilter(self, table: sa.Table, box: tuple[float, float, float, float]) -> ColumnElement[bool]:
        west, south, east, north = box
        rtree = sa.table(
            f"idx_{table.name}_geom",
            sa.column("pkid"),
            sa.column("xmin"),
            sa.column("xmax"),
            sa.column("ymin"),
            sa.column("ymax"),
        )
        pk = next(iter(table.primary_key.columns))
        hits = sa.select(rtree.c.pkid).where(
            rtree.c.xmin <= east, rtree.c.xmax >= west, rtree.c.ymin <= north, rtree.c.ymax >= south
        )
        return pk.in_(hits)

    def envelope(self, box: tuple[float, float, float, float]) -> ColumnElement[Any]:
        return sa.func.BuildMbr(*box, SRID)

    def point(self, lon: float, lat: float) -> ColumnElement[Any]:
        return sa.func.MakePoint(lon, lat, SRID)

    def distance_metres(self, geom: ColumnElement[Any], near: Near) -> ColumnElement[float]:
        """Geodesic for points; for lines and polygons, the geodesic length to their planar-nearest point.

        That point is off the true nearest by well under 1 % at the scale of a city; PostGIS's
        geography distance is exact.
        """
        return sa.func.ST_Distance(geom, self.point(near.lon, near.lat), 1, type_=sa.Float)

    def exact_within(self, geom: ColumnElement[Any], near: Near) -> ColumnElement[bool]:
        # Not PtDistWithin: for polygons it accepts features well beyond the range (SpatiaLite 5.0.1).
        return self.distance_metres(geom, near) <= near.metres

    def planar_within(self, geom: ColumnElement[Any], lon: float, lat: float, degrees: float) -> ColumnElement[bool]:
        return sa.func.ST_Distance(geom, self.point(lon, lat), type_=sa.Float) <= degrees

    def planar_nearest(self, table: sa.Table, lon: float, lat: float) -> ColumnElement[Any] | None:
        return None

    def fold_case(self, text: ColumnElement[Any]) -> ColumnElement[str]:
        return sa.func.twin_casei(text, type_=sa.String)

    def fold_accents(self, text: ColumnElement[Any]) -> ColumnElement[str]:
        return sa.func.twin_accenti(text, type_=sa.String)

    def spatial_extent(self, conn: Connection, table: sa.Table) -> tuple[float, float, float, float] | None:
        """From the R*Tree's boxes (stored as float32, rounded outward): no geometry is decoded."""
        rtree = sa.table(
            f"idx_{table.name}_geom", sa.column("xmin"), sa.column("xmax"), sa.column("ymin"), sa.column("ymax")
        )
        row = conn.execute(
            sa.select(
                sa.func.min(rtree.c.xmin),
                sa.func.min(rtree.c.ymin),
                sa.func.max(rtree.c.xmax),
                sa.func.max(rtree.c.ymax),
            )
        ).one()
        return None if row[0] is None else (row[0], row[1], row[2], row[3])

    def create_tables(self, conn: Connection, tables: LayerTables) -> None:
        tables.current.create(conn)
        tables.history.create(conn)

    def drop_tables(self, conn: Connection, tables: LayerTables) -> None:
        for table in (tables.history, tables.current):
            conn.execute(sa.text("SELECT DisableSpatialIndex(:t, 'geom')"), {"t": table.name})
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "idx_{table.name}_geom"')
            conn.execute(sa.text("SELECT DiscardGeometryColumn(:t, 'geom')"), {"t": table.name})
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table.name}"')

    @contextmanager
    def bulk_writer(
        self, conn: Connection, tables: LayerTables, valid_from: datetime
    ) -> Iterator[Callable[[RowBatch], int]]:
        """``executemany`` on the driver, values converted by the columns' own SQLAlchemy types."""
        table = tables.current
        names = [f.name for f in tables.definition.fields]
        dialect = conn.dialect
        # The dialect's own processors: SQLite stores dates as text in SQLAlchemy's format, and
        # values written here must compare equal to values bound by queries.
        converters = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
        stamp_converter = table.c._valid_from.type.dialect_impl(dialect).bind_processor(dialect)
        stamp = stamp_converter(valid_from) if stamp_converter else valid_from
        quote = conn.dialect.identifier_preparer.quote
        targets = ", ".join(quote(n) for n in ["geom", *names, "_valid_from"])
        marks = ", ".join(["?"] * (len(names) + 1))
        sql = f"INSERT INTO {quote(table.name)} ({targets}) VALUES (GeomFromWKB(?, {SRID}), {marks})"
        cursor = driver_connection(conn).cursor()

        def write(batch: RowBatch) -> int:
            columns = [
                values if convert is None else [None if v is None else convert(v) for v in values]
                for values, convert in zip((batch.columns[n] for n in names), converters, strict=True)
            ]
            wkb = shapely.to_wkb(batch.geometries, output_dimension=2)
            rows = zip(wkb, *columns, repeat(stamp, len(wkb)), strict=True)
            while chunk := list(islice(rows, _CHUNK)):
                cursor.executemany(sql, chunk)
            return len(wkb)

        try:
            yield write
        finally:
            cursor.close()

    def begin_bulk_load(self, conn: Connection, tables: LayerTables) -> None:
        name = tables.current.name
        conn.execute(sa.text("SELECT DisableSpatialIndex(:t, 'geom')"), {"t": name})
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "idx_{name}_geom"')

    def end_bulk_load(self, conn: Connection, tables: LayerTables) -> None:
        conn.execute(sa.text("SELECT CreateSpatialIndex(:t, 'geom')"), {"t": tables.current.name})


def _add_text_functions(dbapi_conn: Any) -> None:
    """CQL2's CASEI and ACCENTI as SQL functions (SQLite has no ``translate()``), and LIKE that is
    case-sensitive, as CQL2 says: SQLite's own LIKE ignores the case of ASCII letters."""
    for name, fold in (("twin_casei", fold_case), ("twin_accenti", fold_accents)):
        dbapi_conn.create_function(
            name, 1, lambda v, fold=fold: fold(v) if isinstance(v, str) else v, deterministic=True
        )
    dbapi_conn.execute("PRAGMA case_sensitive_like = ON")
