"""A write counter shared by every process on this machine that uses one store.

Each committed write transaction moves it by one. A reader that has checked
its cache against the database at generation G knows, while the counter still
reads G, that nothing has been written since — without asking the database.
The counter lives in a small memory-mapped file next to the data, so server
workers and ``twin`` commands started from the same data folder share it.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)


class SharedCounter:
    """A 64-bit counter in a memory-mapped file: lock-free reads, increments under a file lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self._fd).st_size < _SIZE:
                os.ftruncate(self._fd, _SIZE)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, _SIZE)

    def read(self) -> int:
        value: int = struct.unpack_from(_FORMAT, self._map, 0)[0]
        return value

    def bump(self) -> int:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            value = self.read() + 1
            struct.pack_into(_FORMAT, self._map, 0, value)
            return value
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
