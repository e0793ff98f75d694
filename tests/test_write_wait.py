"""SpatiaLite under a long write: other writers wait a bounded time in a bounded queue, then get 503 with
Retry-After (never a 500 after 60 s); readers keep reading; the write-ahead log shrinks after a large
write, committed or not; uploads a crash left behind are removed when the server starts."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import shapely
from shapely.geometry import Point

from layers.errors import InvalidInputError
from layers.features import FeatureInput
from layers.model import LayerDefinition
from layers.store import LayerStore
from layers.store.writer_queue import StoreBusyError, WriteLimits
from layers.validation import RowBatch

HEADERS = {"X-API-Key": "k"}
LAYER = {"id": "sensors", "title": "Cảm biến", "geometry_type": "Point", "fields": [{"name": "name", "type": "string"}]}
FEATURE = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [109.2, 13.77]}, "properties": {"name": "a"}}

# Another process holding SQLite's write lock, as a long import in another worker or a `twin import` does.
_HOLD_WRITE_LOCK = """
import sys, time
import pysqlite3.dbapi2 as sqlite
db = sqlite.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(600)
"""


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_WRITE_LOCK, str(database)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait(timeout=10)


def _open(path: Path, **limits: float) -> LayerStore:
    store = LayerStore.open(f"sqlite:///{path}", write_limits=WriteLimits(**limits))  # type: ignore[arg-type]
    store.create_layer(LayerDefinition.model_validate(LAYER))
    return store


def _one() -> list[FeatureInput]:
    return [FeatureInput(Point(109.2, 13.77), {"name": "a"})]


def test_a_writer_waits_its_time_then_is_told_to_retry_while_readers_read(tmp_path: Path) -> None:
    store = _open(tmp_path / "twin.sqlite", wait_s=1.0)
    store.insert_features("sensors", _one())
    with write_lock_held(tmp_path / "twin.sqlite"):
        started = time.monotonic()
        with pytest.raises(StoreBusyError) as refused:
            store.insert_features("sensors", _one())
        assert 0.9 < time.monotonic() - started < 5
        assert refused.value.context["retry_after"] == 5.0
        started = time.monotonic()
        assert store.count("sensors") == 1 and store.extent("sensors").bbox is not None
        assert time.monotonic() - started < 0.5
    assert store.insert_features("sensors", _one())
    assert store.count("sensors") == 2
    store.close()


def test_writers_queue_in_a_bounded_queue_and_the_rest_are_refused_at_once(tmp_path: Path) -> None:
    store = _open(tmp_path / "twin.sqlite", wait_s=20.0, max_waiting=2)
    outcomes: list[tuple[str, float]] = []
    started = time.monotonic()

    def write() -> None:
        try:
            store.insert_features("sensors", _one())
            outcomes.append(("written", time.monotonic() - started))
        except StoreBusyError:
            outcomes.append(("refused", time.monotonic() - started))

    with write_lock_held(tmp_path / "twin.sqlite"):
        started = time.monotonic()
        writers = [threading.Thread(target=write) for _ in range(5)]
        for writer in writers:
            writer.start()
        time.sleep(1.5)
        # One writer has this process's turn (SQLite makes it wait for the other process), two wait for it.
        assert sorted(what for what, _ in outcomes) == ["refused", "refused"]
        assert all(seconds < 1.0 for _, seconds in outcomes)
    for writer in writers:
        writer.join(timeout=30)
    assert sorted(what for what, _ in outcomes) == ["refused"] * 2 + ["written"] * 3
    assert store.count("sensors") == 3
    store.close()


def _points(n: int, *, fail_after: bool) -> Iterator[RowBatch]:
    rng = np.random.default_rng(7)
    for start in range(0, n, 10_000):
        geometries = shapely.points(rng.uniform(109.1, 109.3, 10_000), rng.uniform(13.7, 13.9, 10_000))
        yield RowBatch(geometries, {"name": [f"điểm {start + i}" for i in range(10_000)]}, start + 1)
    if fail_after:
        raise InvalidInputError(f"feature {n + 1}: a bad value at the very end")


def _wal(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


@pytest.mark.parametrize("committed", [False, True], ids=["rolled-back", "committed"])
def test_the_write_ahead_log_is_truncated_after_a_large_write(tmp_path: Path, committed: bool) -> None:
    kept = _open(tmp_path / "kept.sqlite", wal_checkpoint_bytes=2**40)  # never checkpointed by Twin: as before
    truncated = _open(tmp_path / "truncated.sqlite", wal_checkpoint_bytes=2**20)
    for store in (kept, truncated):
        if committed:
            store.load("sensors", _points(200_000, fail_after=False))
        else:
            with pytest.raises(InvalidInputError):
                store.load("sensors", _points(200_000, fail_after=True))
    assert _wal(tmp_path / "kept.sqlite") > 8 * 2**20
    assert _wal(tmp_path / "truncated.sqlite") == 0
    assert truncated.count("sensors") == kept.count("sensors") == (200_000 if committed else 0)
    kept.close()
    truncated.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The server's environment: a writer waits one second for another before it is told to retry."""
    return {**os.environ, "TWIN_DATA_DIR": str(tmp_path / "var"), "TWIN_API_KEYS": '["k"]', "TWIN_WRITE_WAIT_S": "1"}


def test_http_writes_during_a_long_write_get_503_with_retry_after_and_reads_go_on(
    server: str, env: dict[str, str]
) -> None:
    assert httpx.post(f"{server}/admin/layers", json=LAYER, headers=HEADERS).status_code == 201
    items = f"{server}/collections/sensors/items"
    assert httpx.post(items, json=FEATURE, headers=HEADERS).status_code == 201
    with write_lock_held(Path(env["TWIN_DATA_DIR"]) / "twin.sqlite"):
        for _ in range(4):  # both workers
            started = time.monotonic()
            refused = httpx.post(items, json=FEATURE, headers=HEADERS, timeout=30)
            assert time.monotonic() - started < 10
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert int(refused.headers["retry-after"]) >= 1
            assert "busy" in refused.json()["detail"]
            read = httpx.get(items, timeout=5, headers=HEADERS)
            assert read.status_code == 200 and len(read.json()["features"]) == 1
    assert httpx.post(items, json=FEATURE, headers=HEADERS).status_code == 201


def test_uploads_left_by_a_crash_are_removed_at_start_and_live_ones_kept(
    env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    data_dir = Path(env["TWIN_DATA_DIR"])
    dead, live = data_dir / "twin-upload-dead", data_dir / "twin-upload-live"
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "parcels.gpkg").write_bytes(b"\0" * 2**20)
        (folder / ".owner").touch()
    owner = os.open(live / ".owner", os.O_RDWR)
    fcntl.flock(owner, fcntl.LOCK_EX)  # as a worker importing it holds it
    try:
        request.getfixturevalue("server")
        assert not dead.exists()
        assert (live / "parcels.gpkg").exists()
    finally:
        os.close(owner)
