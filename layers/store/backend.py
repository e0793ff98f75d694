"""What differs between SpatiaLite and PostGIS, behind one interface.

The store (``layers.store.store``) writes every query once with SQLAlchemy
Core; it asks its backend only for the few expressions and operations where
the two databases truly differ: how to use the spatial index, how to measure
metres, how to load many rows fast, and how to create the tables.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import shapely
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from layers.features import BBox, Near
from layers.geodesy import degree_bands, search_window
from layers.model import GeometryType
from layers.store.tables import SRID, LayerTables
from layers.textfold import ACCENT_TRANSLATION, CASE_TRANSLATION
from layers.validation import RowBatch
from layers.vectortiles import (
    MAX_BYTES,
    MAX_FEATURES,
    PointColumns,
    TileSpec,
    VectorTile,
    encode_aggregates,
    encode_features,
    encode_point_rows,
    representative_points,
)

#: Execution option marking a connection that will write (SQLite begins it IMMEDIATE).
WRITE_OPTION = "twin_write"


#: Tiles encoded in Python (points on both backends, every shape on SpatiaLite) are encoded one at a
#: time in a process; reads still overlap. Under the GIL only one thread runs Python anyway, but
#: numpy, Arrow and shapely let go of it for every array operation, and threads encoding side by
#: side then hand it to each other hundreds of times a tile. A dense PostGIS point tile at 4
#: connections took 75 context switches and 6.3 ms of CPU, against 41 and 5.6 ms in turn; SpatiaLite
#: parcel tiles at 4 connections went from 20 to 33 a second.
_ENCODING = threading.Lock()


class SpatialBackend(ABC):
    """One database family. Subclasses hold no state beyond their engine options and speed hints."""

    name: ClassVar[str]
    #: True where a read needs no transaction: each of its statements sees a fresh snapshot anyway.
    AUTOCOMMIT_READS: ClassVar[bool] = False

    @abstractmethod
    def create_engine(self, url: str, read_timeout_s: float | None = None) -> Engine:
        """An engine whose connections are ready for spatial SQL. With ``read_timeout_s``, the
        database stops a read statement that runs longer (``is_cancelled`` then recognises the
        error); writes are never stopped: an import may rightly index for minutes."""

    def is_cancelled(self, exc: sa.exc.DBAPIError) -> bool:
        """True when ``exc`` is the database stopping a read at its timeout."""
        return False

    def renew_read_timeout(self, conn: Connection) -> None:
        """A streaming read has handed on a batch: its statement's time starts again. PostgreSQL needs
        nothing: each FETCH of a server-side cursor is a statement of its own."""
        return None

    def initialize(self, conn: Connection) -> None:
        """Create what the store needs once per database: extensions, then the catalog's migrations."""
        migrations = AlembicConfig()
        migrations.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        migrations.attributes["connection"] = conn
        alembic_command.upgrade(migrations, "head")

    # --- expressions ---------------------------------------------------------

    def geom_from_wkb(self, wkb: Any) -> ColumnElement[Any]:
        return sa.func.ST_GeomFromWKB(wkb, SRID)

    def geom_as_wkb(self, geom: ColumnElement[Any]) -> ColumnElement[bytes]:
        return sa.func.ST_AsBinary(geom, type_=sa.LargeBinary)

    @abstractmethod
    def box_prefilter(self, table: sa.Table, box: tuple[float, float, float, float]) -> ColumnElement[bool]:
        """True for rows whose geometry's bounding box meets ``box``; uses the spatial index."""

    @abstractmethod
    def envelope(self, box: tuple[float, float, float, float]) -> ColumnElement[Any]:
        """A polygon geometry for a (w, s, e, n) box in EPSG:4326."""

    @abstractmethod
    def point(self, lon: float, lat: float) -> ColumnElement[Any]:
        """A point geometry in EPSG:4326."""

    @abstractmethod
    def distance_metres(self, geom: ColumnElement[Any], near: Near) -> ColumnElement[float]:
        """Ellipsoidal distance in metres from the geometry to ``near``'s point."""

    @abstractmethod
    def exact_within(self, geom: ColumnElement[Any], near: Near) -> ColumnElement[bool]:
        """Exact test: ellipsoidal distance to ``near``'s point is at most ``near.metres``."""

    def box_intersects(self, table: sa.Table, box: tuple[Any, Any, Any, Any]) -> ColumnElement[bool]:
        """Rows whose geometry meets one non-wrapping (w, s, e, n) box (numbers or bind parameters)."""
        return sa.and_(self.box_prefilter(table, box), sa.func.ST_Intersects(table.c.geom, self.envelope(box)))

    def meets_mask(self, table: sa.Table, wkb: Any, bounds: tuple[Any, Any, Any, Any]) -> ColumnElement[bool]:
        """Rows whose geometry meets an area mask: its WKB and its (w, s, e, n) bounds, values or bind
        parameters (``layers.access.AreaMask``); the bounds let the spatial index choose the candidates."""
        return sa.and_(
            self.box_prefilter(table, bounds),
            sa.func.ST_Intersects(table.c.geom, self.geom_from_wkb(wkb), type_=sa.Boolean) == sa.true(),
        )

    def intersects_bbox(self, table: sa.Table, bbox: BBox) -> ColumnElement[bool]:
        parts = [self.box_intersects(table, box) for box in bbox.parts()]
        return parts[0] if len(parts) == 1 else sa.or_(*parts)

    @abstractmethod
    def planar_within(self, geom: ColumnElement[Any], lon: float, lat: float, degrees: float) -> ColumnElement[bool]:
        """Cheap test: planar distance in lon/lat degrees is at most ``degrees``."""

    def fold_case(self, text: ColumnElement[Any]) -> ColumnElement[str]:
        """CASEI: ``lower()`` for ASCII (in any locale), then ``layers.textfold``'s table for the rest."""
        source, target = CASE_TRANSLATION
        return sa.func.translate(sa.func.lower(text), source, target, type_=sa.String)

    def fold_accents(self, text: ColumnElement[Any]) -> ColumnElement[str]:
        """ACCENTI: ``layers.textfold``'s table through the built-in ``translate()``; no extension needed."""
        source, target = ACCENT_TRANSLATION
        return sa.func.translate(text, source, target, type_=sa.String)

    def arithmetic(self, op: str, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
        """CQL2 arithmetic in SQL. ``/`` is real division on integers too; a division by zero is NULL
        (unknown) on both databases, as SQLite has it, rather than an error on PostgreSQL's side."""
        if op in ("+", "-", "*"):
            return left.op(op)(right)
        divisor = sa.func.nullif(right, 0)
        if op == "/":
            return sa.cast(left, sa.Float) / divisor
        if op == "div":
            return sa.func.trunc(sa.cast(left, sa.Float) / divisor)
        if op == "%":
            return sa.func.mod(sa.cast(left, sa.Numeric), sa.cast(divisor, sa.Numeric))
        return sa.func.power(sa.cast(left, sa.Float), right, type_=sa.Float)

    def within_distance(self, table: sa.Table, near: Near) -> ColumnElement[bool]:
        """Index window first, then degree bands, then the exact ellipsoidal test for the rest.

        The exact test costs several microseconds a row in both databases; the
        bands (see ``degree_bands``) settle all but a thin ring of candidates
        with a planar test that costs a fraction of that.
        """
        window = search_window(near.lon, near.lat, near.metres)
        boxes = [self.box_prefilter(table, box) for box in window.parts()]
        prefilter = boxes[0] if len(boxes) == 1 else sa.or_(*boxes)
        exact = self.exact_within(table.c.geom, near)
        bands = degree_bands(near.lon, near.lat, near.metres)
        if bands is None:
            return sa.and_(prefilter, exact)
        inner, outer = bands
        surely_in = self.planar_within(table.c.geom, near.lon, near.lat, inner)
        maybe_in = self.planar_within(table.c.geom, near.lon, near.lat, outer)
        return sa.and_(prefilter, sa.or_(surely_in, sa.and_(maybe_in, exact)))

    def contains_point(self, table: sa.Table, lon: float, lat: float) -> ColumnElement[bool]:
        box = (lon, lat, lon, lat)
        return sa.and_(self.box_prefilter(table, box), sa.func.ST_Intersects(table.c.geom, self.point(lon, lat)))

    @abstractmethod
    def planar_nearest(self, table: sa.Table, lon: float, lat: float) -> ColumnElement[Any] | None:
        """An index-assisted ORDER BY for planar nearest neighbours, if the backend has one."""

    # --- operations ----------------------------------------------------------

    @abstractmethod
    def create_tables(self, conn: Connection, tables: LayerTables) -> None:
        """Create the layer's current and history tables with their spatial indexes."""

    @abstractmethod
    def drop_tables(self, conn: Connection, tables: LayerTables) -> None:
        """Drop both tables and everything the database keeps about their geometry."""

    @abstractmethod
    def bulk_writer(
        self, conn: Connection, tables: LayerTables, valid_from: datetime
    ) -> AbstractContextManager[Callable[[RowBatch], int]]:
        """A writer of validated batches, inside the caller's transaction, as fast as the database allows.

        The writer stays open for the whole load so the database can work on one
        batch while the next is read and validated.
        """

    def begin_bulk_load(self, conn: Connection, tables: LayerTables) -> None:  # noqa: B027
        """Called before a bulk load into an empty table: may drop the spatial index."""

    def end_bulk_load(self, conn: Connection, tables: LayerTables) -> None:  # noqa: B027
        """Called after the bulk load: rebuilds what ``begin_bulk_load`` dropped."""

    def alter_add_column(self, conn: Connection, table: sa.Table, column: sa.Column[Any]) -> None:
        quote = conn.dialect.identifier_preparer.quote
        ddl_type = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {ddl_type}")

    def alter_rename_column(self, conn: Connection, table: sa.Table, old: str, new: str) -> None:
        quote = conn.dialect.identifier_preparer.quote
        conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} RENAME COLUMN {quote(old)} TO {quote(new)}")

    def alter_drop_column(self, conn: Connection, table: sa.Table, name: str) -> None:
        quote = conn.dialect.identifier_preparer.quote
        conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} DROP COLUMN {quote(name)}")

    def feature_geojson(self, table: sa.Table, names: list[str]) -> ColumnElement[str] | None:
        """A GeoJSON Feature as text, built by the database; None where Python encodes instead."""
        return None

    @abstractmethod
    def spatial_extent(self, conn: Connection, table: sa.Table) -> tuple[float, float, float, float] | None:
        """(west, south, east, north) of the table's geometries, cheaply: an estimate, not an exact box."""

    def vector_tile(
        self,
        conn: Connection,
        tables: LayerTables,
        spec: TileSpec,
        names: list[str],
        filters: list[ColumnElement[bool]],
    ) -> VectorTile:
        """One layer of a vector tile: the features in it, or their aggregates when there are too many.

        This default reads the candidates and encodes them in Python: points with ``layers.mvtpoints``,
        other shapes with ``layers.vectortiles``; a backend that can build the tile in SQL overrides it.
        """
        table = tables.current
        layer = tables.definition.id
        if tables.definition.geometry_type is GeometryType.POINT:
            tile = self.point_tile(conn, tables, spec, names, filters)
            if tile is not None:
                return tile
        else:
            stmt = (
                sa.select(table.c.fid, self.geom_as_wkb(table.c.geom), *(table.c[n] for n in names))
                .where(self.box_prefilter(table, spec.lonlat_box()), *filters)
                .limit(MAX_FEATURES + 1)
            )
            rows = conn.execute(stmt).all()
            if len(rows) <= MAX_FEATURES:
                geometries = shapely.from_wkb([row[1] for row in rows])
                properties = [dict(zip(names, row[2:], strict=True)) for row in rows]
                with _ENCODING:
                    tile = encode_features(layer, spec, [row[0] for row in rows], geometries, properties)
                if len(tile.data) <= MAX_BYTES:
                    return tile
        inside = sa.select(self.geom_as_wkb(table.c.geom)).where(
            self.box_prefilter(table, spec.lonlat_box(buffered=False)), *filters
        )
        geometries = shapely.from_wkb(conn.execute(inside).scalars().all())
        return encode_aggregates(layer, spec, representative_points(geometries))

    def point_tile(
        self,
        conn: Connection,
        tables: LayerTables,
        spec: TileSpec,
        names: list[str],
        filters: list[ColumnElement[bool]],
    ) -> VectorTile | None:
        """A point layer's tile, written by ``layers.mvtpoints``; None when it must be aggregated instead."""
        points = self.point_columns(conn, tables, spec, names, filters)
        if points is None:
            return None
        with _ENCODING:
            tile = encode_point_rows(tables.definition.id, spec, points)
        return tile if len(tile.data) <= MAX_BYTES else None

    def point_columns(
        self,
        conn: Connection,
        tables: LayerTables,
        spec: TileSpec,
        names: list[str],
        filters: list[ColumnElement[bool]],
    ) -> PointColumns | None:
        """The points in the tile's buffered box, column by column; None when there are over ``MAX_FEATURES``."""
        table = tables.current
        stmt = (
            sa.select(table.c.fid, sa.func.ST_X(table.c.geom), sa.func.ST_Y(table.c.geom), *(table.c[n] for n in names))
            .where(self.box_prefilter(table, spec.lonlat_box()), *filters)
            .limit(MAX_FEATURES + 1)
        )
        # The driver's own rows: SQLAlchemy's row objects cost more than the read itself here, so only
        # the columns whose type converts values (dates and times in SQLite) are passed through it.
        result = conn.execute(stmt)
        try:
            rows = result.cursor.fetchall()
        finally:
            result.close()
        if len(rows) > MAX_FEATURES:
            return None
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * (3 + len(names))
        for i, column in enumerate(stmt.selected_columns):
            convert = column.type.dialect_impl(conn.dialect).result_processor(conn.dialect, None)
            if convert is not None:
                columns[i] = [convert(v) for v in columns[i]]
        kinds = {f.name: f.type for f in tables.definition.fields}
        properties = [(n, kinds[n], columns[3 + i]) for i, n in enumerate(names)]
        return PointColumns(columns[0], columns[1], columns[2], properties)

    def analyze(self, conn: Connection, table: sa.Table) -> None:
        """Refresh planner statistics after a bulk change."""
        conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.quote(table.name)}")


def driver_connection(conn: Connection) -> Any:
    """The DBAPI connection under SQLAlchemy's, for what only the driver offers (COPY, executemany)."""
    driver = conn.connection.driver_connection
    assert driver is not None, "the connection is closed"
    return driver
