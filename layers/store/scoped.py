"""The store as one principal sees it: what the routers receive, never the raw store.

Every method is the ``LayerStore`` method of the same name with the reader's ``Scope`` bound,
so no route can forget it: the store applies it where it builds its statements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry

from layers.access import Scope
from layers.features import Condition, Feature, FeatureInput, FeaturePage, FeatureQuery
from layers.model import LayerDefinition, LayerPatch
from layers.store.changes import Box, DataVersions
from layers.store.extents import LayerExtent
from layers.store.principals import ApiKey, AuditEntry, AuditQuery
from layers.store.store import LayerStore, LoadMode, LoadResult
from layers.validation import RowBatch
from layers.vectortiles import TileSpec, VectorTile


class ScopedReader:
    """Reads and writes of one ``Scope`` over a ``LayerStore``."""

    def __init__(self, store: LayerStore, scope: Scope) -> None:
        self.store = store
        self.scope = scope

    # --- what a cache compares with (no features, no scope to apply) --------

    def write_generation(self) -> int | None:
        return self.store.write_generation()

    def data_versions(self, layer_ids: Sequence[str]) -> DataVersions:
        return self.store.data_versions(layer_ids)

    def all_data_versions(self) -> DataVersions:
        return self.store.all_data_versions()

    def changes_since(self, layer_id: str, version: int) -> list[Box | None] | None:
        return self.store.changes_since(layer_id, version)

    # --- reads ---------------------------------------------------------------

    def list_layers(self) -> list[LayerDefinition]:
        return self.store.list_layers(self.scope)

    def get_layer(self, layer_id: str, *, catalog: int | None = None) -> LayerDefinition:
        return self.store.get_layer(layer_id, catalog=catalog, scope=self.scope)

    def query(self, layer_id: str, query: FeatureQuery = FeatureQuery()) -> list[Feature]:
        return self.store.query(layer_id, query, self.scope)

    def page(
        self,
        layer_id: str,
        make_query: Callable[[LayerDefinition], FeatureQuery],
        *,
        geojson: bool = False,
        count_cap: int | None = None,
    ) -> FeaturePage:
        return self.store.page(layer_id, make_query, geojson=geojson, count_cap=count_cap, scope=self.scope)

    def iter_batches(
        self, layer_id: str, query: FeatureQuery = FeatureQuery(), batch_size: int = 10_000
    ) -> Iterator[list[Feature]]:
        return self.store.iter_batches(layer_id, query, batch_size, self.scope)

    def count(self, layer_id: str, query: FeatureQuery = FeatureQuery()) -> int:
        return self.store.count(layer_id, query, self.scope)

    def count_by(self, layer_id: str, field: str, query: FeatureQuery = FeatureQuery()) -> dict[Any, int]:
        return self.store.count_by(layer_id, field, query, self.scope)

    def count_up_to(self, layer_id: str, query: FeatureQuery, cap: int) -> int | None:
        return self.store.count_up_to(layer_id, query, cap, self.scope)

    def extent(self, layer_id: str) -> LayerExtent:
        return self.store.extent(layer_id, self.scope)

    def spatial_extent(self, layer_id: str) -> tuple[float, float, float, float] | None:
        return self.store.spatial_extent(layer_id, self.scope)

    def vector_tile(
        self,
        layer: str | LayerDefinition,
        spec: TileSpec,
        properties: Sequence[str] | None = None,
        where: Sequence[Condition] = (),
    ) -> VectorTile:
        return self.store.vector_tile(layer, spec, properties, where, self.scope)

    def get_feature(self, layer_id: str, fid: int, as_of: datetime | None = None) -> Feature:
        return self.store.get_feature(layer_id, fid, as_of, self.scope)

    def history(self, layer_id: str, fid: int) -> list[Feature]:
        return self.store.history(layer_id, fid, self.scope)

    def within_distance(
        self,
        layer_id: str,
        lon: float,
        lat: float,
        metres: float,
        where: Sequence[Condition] = (),
        limit: int | None = None,
    ) -> list[Feature]:
        return self.store.within_distance(layer_id, lon, lat, metres, where, limit, self.scope)

    def containing(self, layer_id: str, lon: float, lat: float) -> list[Feature]:
        return self.store.containing(layer_id, lon, lat, self.scope)

    def nearest(
        self,
        layer_id: str,
        lon: float,
        lat: float,
        k: int,
        where: Sequence[Condition] = (),
        max_metres: float | None = None,
    ) -> list[Feature]:
        return self.store.nearest(layer_id, lon, lat, k, where, max_metres, self.scope)

    # --- keys and the audit trail (admin only: the store refuses anyone else) ---

    def add_key(
        self, name: str, roles: Sequence[str], areas: Sequence[str] = (), expires_at: datetime | None = None
    ) -> tuple[ApiKey, str]:
        return self.store.add_key(name, roles, areas, expires_at, self.scope)

    def list_keys(self) -> list[ApiKey]:
        return self.store.list_keys(self.scope)

    def revoke_key(self, name: str) -> ApiKey:
        return self.store.revoke_key(name, self.scope)

    def audit(self, query: AuditQuery) -> list[AuditEntry]:
        return self.store.audit(query, self.scope)

    # --- writes --------------------------------------------------------------

    def create_layer(self, layer: LayerDefinition) -> LayerDefinition:
        return self.store.create_layer(layer, self.scope)

    def alter_layer(self, layer_id: str, patch: LayerPatch) -> LayerDefinition:
        return self.store.alter_layer(layer_id, patch, self.scope)

    def drop_layer(self, layer_id: str) -> None:
        self.store.drop_layer(layer_id, self.scope)

    def insert_features(self, layer_id: str, features: Sequence[FeatureInput]) -> list[int]:
        return self.store.insert_features(layer_id, features, self.scope)

    def update_feature(
        self,
        layer_id: str,
        fid: int,
        *,
        geometry: BaseGeometry | None = None,
        properties: Mapping[str, Any] | None = None,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Feature:
        return self.store.update_feature(
            layer_id,
            fid,
            geometry=geometry,
            properties=properties,
            replace=replace,
            expected_version=expected_version,
            scope=self.scope,
        )

    def delete_feature(self, layer_id: str, fid: int, expected_version: int | None = None) -> None:
        self.store.delete_feature(layer_id, fid, expected_version, self.scope)

    def load(
        self,
        layer_id: str,
        batches: Iterable[RowBatch],
        *,
        mode: LoadMode = LoadMode.APPEND,
        definition: LayerDefinition | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> LoadResult:
        return self.store.load(layer_id, batches, mode=mode, definition=definition, progress=progress, scope=self.scope)
