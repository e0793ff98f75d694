"""Data versions and change boxes: what tile caches compare their entries with.

Every write transaction moves its layer's data version by one
(``twin_layer_data``) and notes the box it touched (``twin_layer_change``);
these functions run inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from layers.store.tables import LayerChange, LayerDataVersion

#: Change boxes kept per layer; a reader further behind treats the whole layer as changed.
KEEP_CHANGES = 2000

Box = tuple[float, float, float, float]

_data = LayerDataVersion.__table__  # type: ignore[attr-defined]
_changes = LayerChange.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DataVersions:
    """The catalog version and the data version of some layers, read together in one transaction."""

    catalog: int
    layers: dict[str, int]


def record_change(conn: Connection, layer_id: str, box: Box | None) -> None:
    """Move the layer's data version by one and note where the write landed (None: anywhere).

    The upsert takes the layer's row lock, so versions are numbered in commit order.
    """
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    upsert = dialect_insert(_data).values(layer_id=layer_id, version=1)
    version = conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[_data.c.layer_id], set_={"version": _data.c.version + 1}
        ).returning(_data.c.version)
    ).scalar_one()
    west, south, east, north = box if box is not None else (None, None, None, None)
    conn.execute(
        sa.insert(_changes).values(layer_id=layer_id, version=version, west=west, south=south, east=east, north=north)
    )
    if version % 100 == 0:
        conn.execute(
            sa.delete(_changes).where(_changes.c.layer_id == layer_id, _changes.c.version <= version - KEEP_CHANGES)
        )


def read_versions(conn: Connection, catalog: int, layer_ids: Sequence[str] | None) -> DataVersions:
    """The data versions of some layers (0 for one never written), or of every layer when ``layer_ids`` is None."""
    stmt = sa.select(_data.c.layer_id, _data.c.version)
    if layer_ids is not None:
        stmt = stmt.where(_data.c.layer_id.in_(layer_ids))
    found = {layer: int(version) for layer, version in conn.execute(stmt)}
    if layer_ids is not None:
        found = {layer: found.get(layer, 0) for layer in layer_ids}
    return DataVersions(catalog, found)


def changes_since(conn: Connection, layer_id: str, version: int) -> list[Box | None] | None:
    """The boxes written to a layer after ``version`` (None in the list: anywhere).

    None when the changes since then are no longer kept: treat everything as changed.
    """
    rows = conn.execute(
        sa.select(_changes.c.version, _changes.c.west, _changes.c.south, _changes.c.east, _changes.c.north)
        .where(_changes.c.layer_id == layer_id, _changes.c.version > version)
        .order_by(_changes.c.version)
    ).all()
    current = conn.execute(sa.select(_data.c.version).where(_data.c.layer_id == layer_id)).scalar()
    if current is None or current <= version:
        return []
    if len(rows) != current - version:
        return None
    return [None if row[1] is None else (row[1], row[2], row[3], row[4]) for row in rows]


def bounds(geometries: Any) -> Box | None:
    """The box around some geometries, or None when there are none."""
    west, south, east, north = (float(v) for v in shapely.total_bounds(geometries))
    return None if west != west else (west, south, east, north)  # NaN when empty


def union(boxes: Iterable[Box | None]) -> Box | None:
    """The box around some boxes (None ones left out), or None when there are none."""
    present = [b for b in boxes if b is not None]
    if not present:
        return None
    return (
        min(b[0] for b in present),
        min(b[1] for b in present),
        max(b[2] for b in present),
        max(b[3] for b in present),
    )
