"""Browser tests: Debian's chromium, headless, through Playwright, against a live ``twin serve`` with the sample city.

No browser is downloaded: Playwright drives ``/usr/bin/chromium`` (``apt-get install chromium``; ``make test``
does it). WebGL2 runs on the CPU through SwiftShader. Screenshots land in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_client_built() -> Path:
    """The built client; built here when missing (``make test`` builds it first, so this is for bare pytest)."""
    dist = ROOT / "frontend" / "dist"
    if not (dist / "index.html").is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("the map client is not built and npm is missing: run `make client`")
        frontend = ROOT / "frontend"
        if not (frontend / "node_modules").is_dir():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=frontend, check=True)
        subprocess.run([npm, "run", "build"], cwd=frontend, check=True)
    return dist


@pytest.fixture(scope="session")
def live_server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``twin serve`` with the Quy Nhơn sample city in a fresh data folder, on a free port."""
    ensure_client_built()
    data = tmp_path_factory.mktemp("browser-var")
    # The embedded store, whatever the environment points at: the sample city is loaded fresh here.
    env = {k: v for k, v in os.environ.items() if k != "TWIN_DATABASE_URL"} | {"TWIN_DATA_DIR": str(data)}
    subprocess.run([sys.executable, "-m", "twin", "samples"], env=env, check=True, capture_output=True)
    port = _free_port()
    log = (data / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"twin serve did not start: {(data / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="vi-VN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def wait_idle(page: Any, after: int = 0, timeout: float = 60_000) -> int:
    """Wait until the map has gone idle more than ``after`` times; returns the idle count."""
    page.wait_for_function(
        "n => window.__twin && window.__twin.idleCount > n && window.__twin.mapIdle", arg=after, timeout=timeout
    )
    return int(page.evaluate("window.__twin.idleCount"))


def settle(page: Any, quiet_ms: int = 600, timeout: float = 60_000) -> None:
    """Idle, and still idle after ``quiet_ms``: late sources (label points, viewport data) have landed."""
    deadline = time.monotonic() + timeout / 1000
    while time.monotonic() < deadline:
        count = wait_idle(page, 0, timeout)
        page.wait_for_timeout(quiet_ms)
        if page.evaluate("window.__twin.mapIdle") and page.evaluate("window.__twin.idleCount") == count:
            return
    raise TimeoutError("the map did not settle")


def screenshot(page: Any, name: str, **kwargs: Any) -> bytes:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return bytes(page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), **kwargs))


def pixel_stddev(png: bytes) -> float:
    """Standard deviation of the grey levels: a blank (single-colour) picture is ~0."""
    from io import BytesIO

    from PIL import Image, ImageStat

    return float(ImageStat.Stat(Image.open(BytesIO(png)).convert("L")).stddev[0])


def mean_difference(a: bytes, b: bytes) -> float:
    from io import BytesIO

    from PIL import Image, ImageChops, ImageStat

    first, second = (Image.open(BytesIO(x)).convert("L") for x in (a, b))
    return float(ImageStat.Stat(ImageChops.difference(first, second)).mean[0])
