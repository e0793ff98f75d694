"""The tile cache: encoded tiles in memory (LRU by bytes) and, optionally, on disk.

An entry remembers the catalog version and each layer's data version it was
built at, and the lon/lat box it covers. ``TileService`` decides whether an
entry is still good; this module only keeps entries.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
V = TypeVar("V")

#: Browsers and MapLibre revalidate each time (a 304 is cheap); nothing stale outlives a write.
CACHE_CONTROL = "no-cache"


@dataclass(frozen=True, slots=True)
class CachedTile:
    """A tile ready to send, and what it was built from and last checked against.

    ``catalog`` and ``versions`` are the database versions it is known to be
    right for; ``generation`` is the shared write counter read when it was last
    checked (None: the store has no counter), in the ``TileService`` epoch ``epoch``.
    ``gzip`` is filled the first time a client accepts it.
    """

    raw: bytes
    gzip: bytes | None
    etag: str
    catalog: int
    versions: tuple[tuple[str, int], ...]
    generation: int | None
    epoch: int
    features: int
    aggregated: bool

    @property
    def size(self) -> int:
        return len(self.raw) + len(self.gzip or b"") + 200

    def checked(
        self, catalog: int, versions: tuple[tuple[str, int], ...], generation: int | None, epoch: int
    ) -> CachedTile:
        return replace(self, catalog=catalog, versions=versions, generation=generation, epoch=epoch)

    def with_gzip(self, data: bytes) -> CachedTile:
        return replace(self, gzip=data)

    def headers(self) -> dict[str, str]:
        """The HTTP headers every answer with this tile carries (200, 204 or 304)."""
        headers = {"ETag": self.etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
        if self.aggregated:
            headers["X-Twin-Aggregated"] = "true"
        return headers

    def matches(self, if_none_match: str | None) -> bool:
        """True when an ``If-None-Match`` header names this tile: the client's copy is current."""
        return etag_matches(if_none_match, self.etag)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an ``If-None-Match`` header names ``etag`` (weak or strong) or is ``*``."""
    if not if_none_match:
        return False
    tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return if_none_match.strip() == "*" or etag in tags


class BytesLRU(Generic[V]):
    """Thread-safe least-recently-used map bounded by the total size of its values."""

    def __init__(self, max_bytes: int, size: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size = size
        self._entries: OrderedDict[str, V] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: V) -> None:
        size = self._size(value)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= self._size(old)
            self._entries[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= self._size(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes, "max_bytes": self.max_bytes}


class TileCache:
    """Thread-safe LRU of tiles by total bytes, with an optional SQLite file behind it.

    The disk file outlives the process and is shared by the server's workers;
    its entries carry their versions, so they are checked like memory entries.
    """

    def __init__(self, max_bytes: int, disk_dir: Path | None = None) -> None:
        self.max_bytes = max_bytes
        self._memory: BytesLRU[CachedTile] = BytesLRU(max_bytes, lambda entry: entry.size)
        self._disk = _DiskCache(disk_dir / "tiles.sqlite") if disk_dir is not None else None

    def get(self, key: str) -> CachedTile | None:
        entry = self._memory.get(key)
        if entry is not None or self._disk is None:
            return entry
        entry = self._disk.get(key)
        if entry is not None:
            self._memory.put(key, entry)
        return entry

    def put(self, key: str, entry: CachedTile) -> None:
        self._memory.put(key, entry)
        if self._disk is not None:
            self._disk.put(key, entry)

    def clear(self) -> None:
        self._memory.clear()
        if self._disk is not None:
            self._disk.clear()

    @property
    def stats(self) -> dict[str, int]:
        return self._memory.stats


class _DiskCache:
    """Tiles in one SQLite file (WAL, so several worker processes share it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        with self._connection() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tile (key TEXT PRIMARY KEY, meta TEXT NOT NULL, raw BLOB, gz BLOB)"
            )

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=5, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> CachedTile | None:
        row = self._connection().execute("SELECT meta, raw, gz FROM tile WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        meta = json.loads(row[0])
        return CachedTile(
            raw=row[1],
            gzip=row[2],
            etag=meta["etag"],
            catalog=meta["catalog"],
            versions=tuple((layer, version) for layer, version in meta["versions"]),
            generation=meta["generation"],
            epoch=-1,  # epochs belong to one process: a tile from disk is checked once before use
            features=meta["features"],
            aggregated=meta["aggregated"],
        )

    def put(self, key: str, entry: CachedTile) -> None:
        meta = {
            "etag": entry.etag,
            "catalog": entry.catalog,
            "versions": entry.versions,
            "generation": entry.generation,
            "features": entry.features,
            "aggregated": entry.aggregated,
        }
        try:
            self._connection().execute(
                "INSERT OR REPLACE INTO tile (key, meta, raw, gz) VALUES (?, ?, ?, ?)",
                (key, json.dumps(meta), entry.raw, entry.gzip),
            )
        except sqlite3.OperationalError as exc:  # another worker holds the write lock: memory still has it
            log.debug("tile %s not written to the disk cache: %s", key, exc)

    def clear(self) -> None:
        self._connection().execute("DELETE FROM tile")
