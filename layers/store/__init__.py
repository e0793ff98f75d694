"""The feature store: one contract, a SpatiaLite and a PostGIS backend."""

from layers.store.scoped import ScopedReader
from layers.store.store import DataVersions, LayerExtent, LayerStore, LoadMode, LoadResult, backend_for

#: What reads and writes features: the store itself (the CLI, the system) or the store as one scope sees it.
Reader = LayerStore | ScopedReader

__all__ = [
    "DataVersions",
    "LayerExtent",
    "LayerStore",
    "LoadMode",
    "LoadResult",
    "Reader",
    "ScopedReader",
    "backend_for",
]
