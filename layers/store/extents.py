"""Layer extents, kept per layer data version.

A layer's temporal extent is the min and max of its time fields: a scan of the
whole table, as neither backend indexes those fields (and SpatiaLite's spatial
extent is a scan of the R*Tree). ``/collections`` shows every layer's extent, so
a catalog of large layers cost seconds on every request. Every write moves the
layer's data version (``layers.store.changes``), so an extent measured at one
version stays right until the next: the catalog then costs one primary-key read
per layer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from layers.store.backend import SpatialBackend
from layers.store.tables import LayerDataVersion, LayerTables

_data = LayerDataVersion.__table__  # type: ignore[attr-defined]
#: Read for every layer of a catalog page: built once (building the select costs more than running it).
_VERSION_QUERY = sa.select(_data.c.version).where(_data.c.layer_id == sa.bindparam("layer_id"))


@dataclass(frozen=True)
class LayerExtent:
    bbox: tuple[float, float, float, float] | None
    interval: tuple[Any, Any] | None


def data_version(conn: Connection, layer_id: str) -> int:
    """The layer's data version (0 for a layer never written)."""
    return int(conn.execute(_VERSION_QUERY, {"layer_id": layer_id}).scalar_one_or_none() or 0)


def measure_extent(conn: Connection, backend: SpatialBackend, tables: LayerTables) -> LayerExtent:
    """Where and when the layer's features are, read from the database."""
    bbox = backend.spatial_extent(conn, tables.current)
    layer = tables.definition
    if layer.time_field is None:
        return LayerExtent(bbox, None)
    begins = tables.current.c[layer.time_field]
    ends = tables.current.c[layer.end_time_field] if layer.end_time_field else begins
    first, last = conn.execute(sa.select(sa.func.min(begins), sa.func.max(ends))).one()
    return LayerExtent(bbox, None if first is None else (first, last))


class ExtentCache:
    """Extents by layer, each tagged with the data version it was measured at."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, LayerExtent]] = {}

    def get(self, layer_id: str, version: int) -> LayerExtent | None:
        with self._lock:
            entry = self._entries.get(layer_id)
        return entry[1] if entry is not None and entry[0] == version else None

    def put(self, layer_id: str, version: int, extent: LayerExtent) -> None:
        with self._lock:
            current = self._entries.get(layer_id)
            if current is None or current[0] <= version:  # a slower reader never puts back an older extent
                self._entries[layer_id] = (version, extent)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
