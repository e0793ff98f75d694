"""SQLite's one writer at a time, made into a bounded queue with a deadline.

SQLite lets one transaction write at a time. Left to itself, every other writer
sleeps and polls in SQLite's busy handler until ``busy_timeout`` and then fails
with "database is locked": during an import longer than the timeout, every
write sent over HTTP became a 500, and each waiting writer held one of the
server's threads, which readers need too. Here, the writers of one process wait
their turn on a lock (handed over at once, no polling), at most ``max_waiting``
of them (the others are refused at once), each for at most ``wait_s``; writers
in other processes are waited for by SQLite's busy handler, within what is left
of the same deadline. A writer that does not get its turn raises
``StoreBusyError``, which the web layer answers with 503 and ``Retry-After``.

A large write, committed or rolled back, leaves SQLite's write-ahead log as
large as the write (SQLite reuses the file, it never shrinks it), so after a
write that left it over ``wal_checkpoint_bytes`` the log is checkpointed and
truncated, while the writer still holds its turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from layers.errors import UnavailableError
from layers.store.backend import WRITE_OPTION

log = logging.getLogger(__name__)

#: Execution option of a write's connection: how many milliseconds SQLite may still wait for a writer
#: in another process (the SpatiaLite backend sets it as ``busy_timeout`` for its ``BEGIN IMMEDIATE``).
WAIT_OPTION = "twin_write_wait_ms"
#: How long opening the store waits to write: workers start together, and the first may be creating the catalog.
OPEN_WAIT_S = 120.0
#: SQLite's result codes for a lock held by another connection.
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
#: How long a connection's statements wait for a lock outside a write's turn (reads, in WAL mode, almost
#: never wait); the SpatiaLite backend sets it on every connection.
BUSY_TIMEOUT_MS = 60_000
#: How long the checkpoint after a large write waits for readers to leave the log before giving up.
_CHECKPOINT_WAIT_MS = 1000


@dataclass(frozen=True)
class WriteLimits:
    """How writers wait for each other where the database has one writer at a time."""

    wait_s: float = 15.0
    max_waiting: int = 8
    wal_checkpoint_bytes: int = 64 * 2**20
    #: What a refused writer is told to wait before trying again (the ``Retry-After`` header).
    retry_after_s: float = 5.0


class StoreBusyError(UnavailableError):
    """Another write holds the store for longer than this write may wait: try again later."""

    title = "Store busy"


class WriterQueue:
    """The turns of one process's writers on one SQLite database file."""

    def __init__(self, engine: Engine, limits: WriteLimits = WriteLimits()) -> None:
        self.engine = engine
        self.limits = limits
        database = engine.url.database
        self.wal_path = Path(f"{database}-wal") if database and database != ":memory:" else None
        self._turn = threading.Lock()
        self._count_lock = threading.Lock()
        self._waiting = 0

    @contextmanager
    def turn(self, wait_s: float | None = None) -> Iterator[dict[str, Any]]:
        """Wait for this process's turn to write; yield the execution options of the writing connection.

        ``wait_s`` overrides the limit (opening the store waits longer: workers start together)."""
        wait = self.limits.wait_s if wait_s is None else wait_s
        deadline = time.monotonic() + wait
        with self._count_lock:
            if self._waiting >= self.limits.max_waiting:
                raise self._busy(f"{self._waiting} writes are already waiting for their turn")
            self._waiting += 1
        try:
            got = self._turn.acquire(timeout=wait)
        finally:
            with self._count_lock:
                self._waiting -= 1
        if not got:
            raise self._busy(f"another write has held the store for over {wait:g} s")
        try:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            try:
                yield {WRITE_OPTION: True, WAIT_OPTION: remaining_ms}
            except sa.exc.OperationalError as exc:
                if getattr(exc.orig, "sqlite_errorcode", None) in _BUSY_CODES:
                    raise self._busy(f"another process has held the store for over {wait:g} s") from exc
                raise
            finally:
                self._checkpoint_if_large()
        finally:
            self._turn.release()

    def _busy(self, why: str) -> StoreBusyError:
        return StoreBusyError(
            f"the store is busy with another write ({why}); try again later",
            retry_after=self.limits.retry_after_s,
        )

    def _checkpoint_if_large(self) -> None:
        """Copy the log into the database and truncate it, if a write left it over the limit.

        Readers in other processes may still be reading from the log: the checkpoint waits a moment
        for them, then leaves the rest to the next large write (SQLite keeps the log correct either way).
        """
        if self.wal_path is None:
            return
        try:
            size = self.wal_path.stat().st_size
        except FileNotFoundError:
            return
        if size <= self.limits.wal_checkpoint_bytes:
            return
        started = time.perf_counter()
        raw = self.engine.raw_connection()  # no SQLAlchemy transaction: a checkpoint cannot run inside one
        try:
            driver = raw.driver_connection
            assert driver is not None
            driver.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
            try:
                busy, frames, copied = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                driver.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except Exception:
            log.exception("checkpoint of %s failed", self.wal_path)
            return
        finally:
            raw.close()
        seconds = time.perf_counter() - started
        if busy:
            log.info("write-ahead log of %d MB checkpointed in part (%d of %d pages)", size >> 20, copied, frames)
        else:
            log.info("write-ahead log of %d MB checkpointed and truncated in %.1f s", size >> 20, seconds)
