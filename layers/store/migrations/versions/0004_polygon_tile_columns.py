"""Polygon layers on PostGIS keep their geometry in Web Mercator and its minimum clearance, for tiles.

Both are generated columns (see ``layers.store.postgis_tiles``); new layers get
them when created, and this adds them to the polygon layers made before.
SpatiaLite encodes tiles in Python and needs neither.

Revision ID: 0004
Revises: 0003
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_POLYGONAL = ("Polygon", "MultiPolygon")


def _polygon_tables(bind: sa.engine.Connection) -> list[tuple[str, str]]:
    """(table, geometry type) of every polygon layer."""
    tables = []
    for (definition,) in bind.execute(sa.text("SELECT definition FROM twin_layer")):
        layer = json.loads(definition) if isinstance(definition, str) else definition
        if layer.get("geometry_type") in _POLYGONAL:
            tables.append(("l_" + layer["id"], layer["geometry_type"]))
    return tables


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name, geometry_type in _polygon_tables(bind):
        op.execute(
            f'ALTER TABLE "{name}" ADD COLUMN IF NOT EXISTS _mercator geometry({geometry_type}, 3857) '
            "GENERATED ALWAYS AS (ST_ForcePolygonCW(ST_Transform(geom, 3857))) STORED"
        )
        op.execute(
            f'ALTER TABLE "{name}" ADD COLUMN IF NOT EXISTS _clearance double precision '
            "GENERATED ALWAYS AS (ST_MinimumClearance(geom)) STORED"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name, _ in _polygon_tables(bind):
        op.execute(f'ALTER TABLE "{name}" DROP COLUMN IF EXISTS _mercator')
        op.execute(f'ALTER TABLE "{name}" DROP COLUMN IF EXISTS _clearance')
