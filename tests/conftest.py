"""Fixtures: a fresh store on each backend, a PostGIS server for the session, real data paths."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from layers.store import LayerStore
from layers.store.principals import audit_table, keys_table
from tests.pgserver import postgres_available, postgres_server

REPO = Path(__file__).resolve().parents[1]

#: Debian's chromium, driven by Playwright (no browser is downloaded); WebGL2 runs on the CPU through SwiftShader.
CHROMIUM = os.environ.get("TWIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist", "--no-sandbox"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium for the whole run: Playwright's sync API allows one driver per thread."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def real_data(name: str) -> Path:
    """A file of ../shared/data (or TWIN_REAL_DATA); the test skips with the reason when it is absent."""
    folder = Path(os.environ.get("TWIN_REAL_DATA", REPO.parent / "shared" / "data"))
    path = folder / name
    if not path.exists():
        pytest.skip(f"real data file {path} is absent (set TWIN_REAL_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def postgis_url() -> Iterator[str]:
    reason = postgres_available()
    if reason:
        if os.environ.get("TWIN_REQUIRE_POSTGIS"):
            pytest.fail(reason)
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


def _empty(store: LayerStore) -> LayerStore:
    """No layer, key or audit entry left (the PostGIS database is shared by the session's tests)."""
    for layer in store.list_layers():
        store.drop_layer(layer.id)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(keys_table))
        conn.execute(sa.delete(audit_table))
    return store


@pytest.fixture(params=["spatialite", "postgis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "spatialite":
        return f"sqlite:///{tmp_path / 'twin.sqlite'}"
    url: str = request.getfixturevalue("postgis_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[LayerStore]:
    """An empty store on each backend: the contract suite runs once per backend."""
    opened = _empty(LayerStore.open(store_url))
    yield opened
    _empty(opened)
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[LayerStore]:
    opened = LayerStore.open(f"sqlite:///{tmp_path / 'twin.sqlite'}")
    yield opened
    opened.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TWIN_DATA_DIR": str(tmp_path / "var"), "TWIN_API_KEYS": '["k"]', "COLUMNS": "200"}


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """``twin serve`` with two workers in its own process, on a free port, with the store in ``env``.

    Its output goes to a file, not a pipe: nobody reads a pipe while the test runs, and a server
    whose log fills the pipe's 64 KiB blocks on its next line, in the middle of a request.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "twin", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            process.kill()
            pytest.fail(f"server did not start: {log.read_text()[-4000:]}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
