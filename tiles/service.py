"""Tiles for one or several layers, cached and never stale.

Every request first reads the catalog version and the data version of the
layers it asks for (one short query). A cached tile built at those versions is
served as is. When a layer has moved on, the boxes its writes touched since
are read: if none meets the tile (with its buffer), the tile is still right
and is kept, now tagged with the new versions; otherwise it is built again.
The versions are read before the features, so a tile can be older than its
tag only by writes that are then re-checked, never by ones that are missed.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from layers.errors import NotFoundError
from layers.features import Condition
from layers.model import LayerDefinition
from layers.store import LayerStore
from layers.vectortiles import TileSpec
from tiles.cache import CachedTile, TileCache
from tiles.grid import TileAddress, tile_spec

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class LayerScope:
    """What of a layer one reader may see: extra conditions, and a key naming them for the cache."""

    where: tuple[Condition, ...] = ()
    key: str = "*"


@dataclass(frozen=True, slots=True)
class TileRequest:
    address: TileAddress
    layers: tuple[LayerDefinition, ...]
    properties: tuple[str, ...] | None = None
    scopes: tuple[LayerScope, ...] | None = None  # one per layer; None: everything


class TileService:
    """Builds tiles through the store and keeps them in a ``TileCache``."""

    def __init__(self, cache: TileCache, gzip_level: int = 6) -> None:
        self.cache = cache
        self.gzip_level = gzip_level

    def tile(self, store: LayerStore, request: TileRequest) -> CachedTile:
        spec = tile_spec(request.address)
        shown = [
            (layer, scope)
            for layer, scope in zip(request.layers, request.scopes or [LayerScope()] * len(request.layers), strict=True)
            if layer.style.min_zoom <= spec.z <= layer.style.max_zoom
        ]
        if not shown:
            raise NotFoundError(
                f"no layer of {', '.join(layer.id for layer in request.layers)} is drawn at zoom {spec.z}",
            )
        ids = [layer.id for layer, _ in shown]
        now = self.cache_versions(store, ids)
        key = _key(request, [scope for _, scope in shown])
        cached = self.cache.get(key)
        if cached is not None and cached.catalog == now[0]:
            if cached.versions == now[1]:
                return cached
            if self._untouched(store, cached, now[1], spec):
                kept = cached.at(now[1])
                self.cache.put(key, kept)
                return kept
        single = len(request.layers) == 1
        parts = [
            store.vector_tile(
                layer.id,
                spec,
                properties=request.properties if single else _own(layer, request.properties),
                where=scope.where,
            )
            for layer, scope in shown
        ]
        raw = b"".join(part.data for part in parts)
        entry = CachedTile(
            raw=raw,
            gzip=gzip.compress(raw, self.gzip_level, mtime=0) if raw else b"",
            etag='"' + hashlib.blake2b(raw, digest_size=12).hexdigest() + '"',
            catalog=now[0],
            versions=now[1],
            features=sum(part.features for part in parts),
            aggregated=any(part.aggregated for part in parts),
        )
        self.cache.put(key, entry)
        return entry

    @staticmethod
    def cache_versions(store: LayerStore, layer_ids: Sequence[str]) -> tuple[int, tuple[tuple[str, int], ...]]:
        found = store.data_versions(layer_ids)
        return found.catalog, tuple((layer, found.layers[layer]) for layer in layer_ids)

    @staticmethod
    def _untouched(store: LayerStore, cached: CachedTile, now: tuple[tuple[str, int], ...], spec: TileSpec) -> bool:
        """True if no write since the tile was built touched its box (buffer included)."""
        box = spec.lonlat_box()
        before = dict(cached.versions)
        for layer, version in now:
            if before.get(layer) == version:
                continue
            if layer not in before:
                return False
            changes = store.changes_since(layer, before[layer])
            if changes is None or any(change is None or _meets(change, box) for change in changes):
                return False
        return True


def _meets(a: Box, b: Box) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _own(layer: LayerDefinition, properties: tuple[str, ...] | None) -> list[str] | None:
    """The asked-for properties this layer has (several layers share one ``properties`` list)."""
    if properties is None:
        return None
    return [name for name in properties if layer.field(name) is not None]


def _key(request: TileRequest, scopes: Sequence[LayerScope]) -> str:
    layers = ",".join(layer.id for layer in request.layers)
    properties = "*" if request.properties is None else ",".join(request.properties)
    return f"{request.address.key}|{layers}|{properties}|{'|'.join(scope.key for scope in scopes)}"
