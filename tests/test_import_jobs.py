"""HTTP imports as jobs (OGC API – Processes style): 202 and a status URL that every worker serves,
progress, the report or the problem, and a job cut short by a crash or a stop that ends failed with the
store as it was."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from tests.signin import ADMIN_KEY, signed_in
from twin.app import create_app
from twin.settings import TwinSettings

KEY = "k"
HEADERS = {"X-API-Key": KEY}
ASYNC = {**HEADERS, "Prefer": "respond-async"}
CSV = "ten,so_nha,lon,lat\nTrần Hưng Đạo,12,109.22,13.77\nLê Lợi,5,109.21,13.76\n".encode()
BAD_CSV = b"ten,so_nha,lon,lat\nA,1,109.2,13.7\nB,hai,109.2,13.7\n"


def points_file(path: Path, n: int) -> Path:
    """A GeoPackage of ``n`` points with two attributes: an import of some seconds."""
    rng = np.random.default_rng(3)
    geometries = shapely.points(rng.uniform(109.15, 109.3, n), rng.uniform(13.7, 13.85, n))
    table = pa.table(
        {
            "name": pa.array(np.char.add("điểm ", np.arange(n).astype(str))),
            "value": pa.array(rng.uniform(0, 100, n)),
            "geometry": pa.array(shapely.to_wkb(geometries), type=pa.binary()),
        }
    )
    pyogrio.write_arrow(
        table, path, layer="points", driver="GPKG", geometry_name="geometry", geometry_type="Point", crs="EPSG:4326"
    )
    return path


def until_finished(get: Any, url: str, timeout_s: float = 120) -> list[dict[str, Any]]:
    """Every status document read until the job finished (one read per new connection)."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = get(url, headers=HEADERS)
        assert answer.status_code == 200, answer.text
        seen.append(answer.json())
        if seen[-1]["status"] in ("successful", "failed"):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"the job did not finish: {seen[-1]}")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # Small files well within the wait even on a loaded machine; the large one asks for a shorter wait.
    settings = TwinSettings(data_dir=tmp_path, api_keys=[KEY, ADMIN_KEY], import_jobs=1, import_wait_s=30)
    with signed_in(TestClient(create_app(settings), raise_server_exceptions=False)) as test_client:
        yield test_client


def test_respond_async_answers_202_with_a_status_url_then_the_report(client: TestClient, tmp_path: Path) -> None:
    accepted = client.post("/admin/layers/streets/import", files={"file": ("duong.csv", CSV)}, headers=ASYNC)
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["preference-applied"] == "respond-async"
    location = accepted.headers["location"]
    assert accepted.json()["status"] in ("accepted", "running", "successful")
    assert accepted.json()["links"][0] == {
        "href": location,
        "rel": "self",
        "type": "application/json",
        "title": "This job",
    }
    final = until_finished(client.get, location)[-1]
    assert final["status"] == "successful" and final["progress"] == 100, final
    assert final["processID"] == "import" and final["layer"] == "streets" and final["file"] == "duong.csv"
    assert final["result"] | {"seconds": 0} == {
        "layer_id": "streets",
        "created": True,
        "inserted": 2,
        "archived": 0,
        "source_crs": "EPSG:4326",
        "seconds": 0,
        "skipped": 0,
        "skipped_features": [],
    }
    assert client.get("/admin/layers/streets").json()["feature_count"] == 2
    assert not list(tmp_path.glob("twin-upload-*"))


def test_a_failed_job_shows_the_problem_and_changes_nothing(client: TestClient) -> None:
    assert (
        client.post("/admin/layers/streets/import", files={"file": ("duong.csv", CSV)}, headers=HEADERS).status_code
        == 200
    )
    accepted = client.post(
        "/admin/layers/streets/import", files={"file": ("bad.csv", BAD_CSV)}, data={"mode": "replace"}, headers=ASYNC
    )
    assert accepted.status_code == 202
    final = until_finished(client.get, accepted.headers["location"])[-1]
    assert final["status"] == "failed" and "result" not in final
    assert final["problem"]["status"] == 400
    assert "feature 2: field 'so_nha' expects an integer, got 'hai'" in final["problem"]["detail"]
    assert client.get("/admin/layers/streets").json()["feature_count"] == 2


def test_small_files_answer_at_once_and_large_ones_with_202(client: TestClient, tmp_path: Path) -> None:
    """Without a preference, an import that is done within TWIN_IMPORT_WAIT_S answers as before."""
    good = client.post("/admin/layers/streets/import", files={"file": ("duong.csv", CSV)}, headers=HEADERS)
    assert good.status_code == 200 and good.json()["inserted"] == 2
    bad = client.post("/admin/layers/streets/import", files={"file": ("bad.csv", BAD_CSV)}, headers=HEADERS)
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert "feature 2" in bad.json()["detail"]
    big = points_file(tmp_path / "points.gpkg", 300_000).read_bytes()
    slow = client.post(
        "/admin/layers/points/import", files={"file": ("points.gpkg", big)}, headers={**HEADERS, "Prefer": "wait=1"}
    )
    assert slow.status_code == 202 and "preference-applied" not in slow.headers
    # One import at a time in this worker (import_jobs=1): the next is told when to come back.
    busy = client.post("/admin/layers/streets/import", files={"file": ("duong.csv", CSV)}, headers=HEADERS)
    assert busy.status_code == 503 and int(busy.headers["retry-after"]) > 0
    seen = until_finished(client.get, slow.headers["location"])
    assert seen[-1]["status"] == "successful" and seen[-1]["result"]["inserted"] == 300_000
    running = [s for s in seen if s["status"] == "running" and s.get("features_total")]
    assert running and running[0]["features_total"] == 300_000
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and len(set(progress)) > 2, progress
    done = client.post("/admin/layers/streets/import", files={"file": ("duong.csv", CSV)}, headers=HEADERS)
    assert done.status_code == 200 and done.json()["inserted"] == 2 and not done.json()["created"]


def test_job_urls_need_the_key_and_unknown_jobs_are_404(client: TestClient) -> None:
    accepted = client.post("/admin/layers/streets/import", files={"file": ("duong.csv", CSV)}, headers=ASYNC)
    anonymous = client.build_request("GET", accepted.headers["location"])
    del anonymous.headers["X-API-Key"]  # the client signs in every request: this one is sent without
    assert client.send(anonymous).status_code == 401
    assert client.get(accepted.headers["location"], headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/admin/jobs/0123456789abcdef", headers=HEADERS).status_code == 404
    # another signed-in principal is told no more of the job than of one that does not exist
    other = {"X-API-Key": client.app.state.store.add_key("other-department", ["province"])[1]}
    theirs = client.get(accepted.headers["location"], headers=other)
    assert theirs.status_code == 404 and accepted.json()["jobID"] in theirs.json()["detail"]
    assert client.get(accepted.headers["location"], headers=HEADERS).json()["principal"] == "api-key-1"
    assert client.get("/admin/jobs/..%2Fsecret", headers=HEADERS).status_code == 404
    until_finished(client.get, accepted.headers["location"])


def test_every_worker_serves_the_status_of_a_job(server: str, tmp_path: Path) -> None:
    big = points_file(tmp_path / "points.gpkg", 200_000).read_bytes()
    accepted = httpx.post(
        f"{server}/admin/layers/points/import", files={"file": ("points.gpkg", big)}, headers=ASYNC, timeout=60
    )
    assert accepted.status_code == 202
    seen = until_finished(httpx.get, accepted.headers["location"])  # a new connection each time: both workers
    assert seen[-1]["status"] == "successful", seen[-1]
    assert {s["jobID"] for s in seen} == {accepted.json()["jobID"]}
    layers = [c["id"] for c in httpx.get(f"{server}/collections", headers=HEADERS).json()["collections"]]
    assert layers == ["points"]


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    """``twin serve`` in a session of its own, so that the test can kill it with its workers, as a crash does."""
    process = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("the server did not start")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "stop"])
def test_a_job_cut_short_ends_failed_and_leaves_the_store_as_it_was(
    env: dict[str, str], tmp_path: Path, how: signal.Signals
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    big = points_file(tmp_path / "points.gpkg", 600_000).read_bytes()
    process = _serve(env, port)
    try:
        accepted = httpx.post(
            f"{url}/admin/layers/points/import", files={"file": ("points.gpkg", big)}, headers=ASYNC, timeout=60
        )
        assert accepted.status_code == 202
        status_url = accepted.headers["location"]
        deadline = time.monotonic() + 60
        while httpx.get(status_url, headers=HEADERS).json().get("features_read", 0) == 0:
            assert time.monotonic() < deadline, "the import did not start"
            time.sleep(0.1)
        os.killpg(process.pid, how)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    data_dir = Path(env["TWIN_DATA_DIR"])
    process = _serve(env, port)
    try:
        final = httpx.get(status_url, headers=HEADERS).json()
        assert final["status"] == "failed", final
        assert final["problem"]["status"] == 503 and "nothing was imported" in final["problem"]["detail"]
        assert httpx.get(f"{url}/collections", headers=HEADERS).json()["collections"] == []
        assert httpx.get(f"{url}/collections/points", headers=HEADERS).status_code == 404
        assert not list(data_dir.glob("twin-upload-*"))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
