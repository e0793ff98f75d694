"""The feature store: one contract, a SpatiaLite and a PostGIS backend."""

from layers.store.store import LayerExtent, LayerStore, LoadMode, LoadResult, backend_for

__all__ = ["LayerExtent", "LayerStore", "LoadMode", "LoadResult", "backend_for"]
