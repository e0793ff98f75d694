"""The feature store: one contract, a SpatiaLite and a PostGIS backend."""

from layers.store.store import DataVersions, LayerExtent, LayerStore, LoadMode, LoadResult, backend_for

__all__ = ["DataVersions", "LayerExtent", "LayerStore", "LoadMode", "LoadResult", "backend_for"]
