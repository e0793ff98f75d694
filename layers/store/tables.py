"""SQL tables: the fixed catalog tables and the typed tables built from a layer definition.

Each layer ``x`` lives in two tables:

* ``l_x`` — the current features: ``fid``, ``geom`` (EPSG:4326, spatially
  indexed), one typed column per declared field, ``_version`` and
  ``_valid_from``;
* ``h_x`` — every version that was replaced or deleted, with the interval
  ``[_valid_from, _valid_to)`` in which it was current.

This is the system-versioned table of SQL:2011: inserts cost nothing extra (a
bulk import writes only ``l_x``), an update or delete moves the old row to
``h_x``, and "as of T" is the union of both tables filtered on the interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.engine import Dialect
from sqlmodel import JSON, Column, Field, SQLModel

from layers.model import FieldType, GeometryType, LayerDefinition

SRID = 4326


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so values are
    stored as naive UTC text that sorts and compares correctly. Naive input is
    taken as UTC, as OGC API and CQL2 specify.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LayerRecord(SQLModel, table=True):
    """A row of the catalog: the layer definition as JSON.

    The catalog tables are created and changed by the Alembic migrations in
    ``layers/store/migrations``; these models are how the code reads them.
    """

    __tablename__ = "twin_layer"

    id: str = Field(primary_key=True, max_length=64)
    definition: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class CatalogVersion(SQLModel, table=True):
    """One row whose counter moves with every change to the catalog.

    Each worker compares it with the version it has cached, so a layer created,
    altered or dropped in one process is seen by all others on their next request.
    """

    __tablename__ = "twin_catalog"

    id: int = Field(default=1, primary_key=True)
    version: int = 0


class LayerDataVersion(SQLModel, table=True):
    """A layer's data version: every committed write to its features moves it by one.

    Writers update this row, so writes to one layer are numbered in commit
    order; the row outlives a dropped layer so a recreated one never reuses a number.
    """

    __tablename__ = "twin_layer_data"

    layer_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(sa_type=sa.BigInteger)


class LayerChange(SQLModel, table=True):
    """Where one write landed: the box around every geometry it added, changed or removed.

    A null box means "anywhere" (a whole-layer replace). Only the most recent
    changes are kept; a reader that knows an older version treats everything as changed.
    """

    __tablename__ = "twin_layer_change"

    layer_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True, sa_type=sa.BigInteger)
    west: float | None = None
    south: float | None = None
    east: float | None = None
    north: float | None = None


_COLUMN_TYPES: dict[FieldType, sa.types.TypeEngine[Any] | type[sa.types.TypeEngine[Any]]] = {
    FieldType.STRING: sa.Text,
    FieldType.INTEGER: sa.BigInteger,
    FieldType.NUMBER: sa.Float(precision=53),
    FieldType.BOOLEAN: sa.Boolean,
    FieldType.DATE: sa.Date,
    FieldType.DATETIME: UTCDateTime,
}

ARROW_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.STRING: pa.string(),
    FieldType.INTEGER: pa.int64(),
    FieldType.NUMBER: pa.float64(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.DATE: pa.date32(),
    FieldType.DATETIME: pa.timestamp("us", tz="UTC"),
}

PYTHON_TYPES: dict[FieldType, type] = {
    FieldType.STRING: str,
    FieldType.INTEGER: int,
    FieldType.NUMBER: float,
    FieldType.BOOLEAN: bool,
    FieldType.DATE: date,
    FieldType.DATETIME: datetime,
}


def column_type(field_type: FieldType) -> sa.types.TypeEngine[Any]:
    kind = _COLUMN_TYPES[field_type]
    return kind() if isinstance(kind, type) else kind


def _geometry(layer: LayerDefinition, *, spatial_index: bool) -> Geometry:
    gtype = "GEOMETRY" if layer.geometry_type is GeometryType.GEOMETRY else layer.geometry_type.upper()
    return Geometry(geometry_type=gtype, srid=SRID, spatial_index=spatial_index, nullable=False)


@dataclass(frozen=True)
class LayerTables:
    """The SQLAlchemy tables of one layer, built once per definition version."""

    definition: LayerDefinition
    current: sa.Table
    history: sa.Table

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.definition.fields]


def build_layer_tables(layer: LayerDefinition) -> LayerTables:
    """Describe the layer's tables; nothing touches the database here."""
    metadata = sa.MetaData()

    def fields() -> list[sa.Column[Any]]:
        return [sa.Column(f.name, column_type(f.type), nullable=True) for f in layer.fields]

    current = sa.Table(
        f"l_{layer.id}",
        metadata,
        sa.Column("fid", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("geom", _geometry(layer, spatial_index=True)),
        *fields(),
        sa.Column("_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("_valid_from", UTCDateTime, nullable=False),
    )
    history = sa.Table(
        f"h_{layer.id}",
        metadata,
        sa.Column("hid", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("fid", sa.BigInteger, nullable=False, index=True),
        sa.Column("geom", _geometry(layer, spatial_index=True)),
        *fields(),
        sa.Column("_version", sa.Integer, nullable=False),
        sa.Column("_valid_from", UTCDateTime, nullable=False),
        sa.Column("_valid_to", UTCDateTime, nullable=False, index=True),
    )
    return LayerTables(layer, current, history)
