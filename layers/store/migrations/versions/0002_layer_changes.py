"""Data versions: a counter per layer that every write moves, and where each write landed.

Tile caches key on a layer's data version; the change rows say which part of
the map a write touched, so a cache can keep the tiles it did not touch.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "twin_layer_data",
        sa.Column("layer_id", sa.String(length=64), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "twin_layer_change",
        sa.Column("layer_id", sa.String(length=64), primary_key=True),
        sa.Column("version", sa.BigInteger(), primary_key=True),
        sa.Column("west", sa.Float(), nullable=True),
        sa.Column("south", sa.Float(), nullable=True),
        sa.Column("east", sa.Float(), nullable=True),
        sa.Column("north", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("twin_layer_change")
    op.drop_table("twin_layer_data")
