"""The feature store: one contract, a SpatiaLite and a PostGIS backend."""

from layers.store.store import LayerStore, LoadMode, LoadResult, backend_for

__all__ = ["LayerStore", "LoadMode", "LoadResult", "backend_for"]
