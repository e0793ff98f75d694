"""Browser tests: Debian's chromium, headless, through Playwright, against a live ``twin serve`` with the sample city.

No browser is downloaded: Playwright drives ``/usr/bin/chromium`` (``apt-get install chromium``; ``make test``
does it). WebGL2 runs on the CPU through SwiftShader. Screenshots land in ``test-artifacts/screenshots/``.

The server runs with access control as deployed: an admin key (``TWIN_API_KEYS``), a province key and a
ward officer's key for one ward (``twin keys add``). Signed out, the planner sees the sample's public layers
only; a test that needs the others signs in (``signed_in``, or through the page's own sign-in box).

The pages run under the server's Content-Security-Policy (no ``unsafe-eval``). Playwright's
``wait_for_function`` evals a plain expression again at every poll, which that policy blocks; a function
expression (``"() => …"``) is evaluated once and then called, so every wait here is written as one. A page
the server sends without its policy (the planner at ``/``, see test_signin.py) is given it here, so what is
tested is the client under the policy the server means to send.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"

#: The sample's layers that anyone may read; the rest need a signed-in role.
PUBLIC_LAYERS = {"wards", "address_points", "parcels", "roads"}
#: The ward officer's ward: one of the sample's wards (``twin keys add --area`` refuses an unknown one).
OFFICER_WARD = "Ghềnh Ráng"
#: Where the planner and the wall keep an API key (frontend/src/credential.ts).
CREDENTIAL_STORAGE = "twin.credential"


@dataclass(frozen=True)
class Keys:
    """The live server's keys, and the principal ``/auth/me`` names for each."""

    admin: str
    province: str
    officer: str
    province_principal: str = "key:province"
    officer_principal: str = "key:officer"

    @staticmethod
    def header(key: str) -> dict[str, str]:
        return {"X-API-Key": key}


_KEYS = pytest.StashKey[Keys]()


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


def _add_key(env: dict[str, str], name: str, *options: str) -> str:
    """``twin keys add``: the key is the last line it prints (shown once; the store keeps its hash)."""
    done = subprocess.run(
        [sys.executable, "-m", "twin", "keys", "add", name, *options],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1].strip()


@pytest.fixture(scope="session")
def live_server(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """``twin serve`` with the Quy Nhơn sample city in a fresh data folder, on a free port; its keys in ``keys``."""
    ensure_client_built()
    data = tmp_path_factory.mktemp("browser-var")
    admin = f"browser-admin-{secrets.token_urlsafe(16)}"
    # The embedded store, whatever the environment points at: the sample city is loaded fresh here.
    env = {k: v for k, v in os.environ.items() if k not in ("TWIN_DATABASE_URL", "TWIN_API_KEYS")} | {
        "TWIN_DATA_DIR": str(data),
        "TWIN_API_KEYS": json.dumps([admin]),
    }
    subprocess.run([sys.executable, "-m", "twin", "samples"], env=env, check=True, capture_output=True)
    request.config.stash[_KEYS] = Keys(
        admin=admin,
        province=_add_key(env, "province", "--role", "province"),
        officer=_add_key(env, "officer", "--role", "ward_officer", "--area", OFFICER_WARD),
    )
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


@pytest.fixture(scope="session")
def keys(live_server: str, request: pytest.FixtureRequest) -> Keys:
    return request.config.stash[_KEYS]


#: Every Content-Security-Policy violation of a page, as the DOM reports it (the console says it too).
_WATCH_CSP = """document.addEventListener('securitypolicyviolation', (e) => {
  (window.__cspViolations = window.__cspViolations || []).push(`${e.violatedDirective} ${e.blockedURI}`);
});"""


def watch(page: Any) -> Any:
    """The page with ``errors`` (uncaught exceptions) and ``console`` (every console message) recorded, and its
    Content-Security-Policy violations collected (``csp_violations``): the server's own policy applies."""
    errors: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.add_init_script(_WATCH_CSP)
    page.errors = errors
    page.console = console
    return page


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="vi-VN")
    yield watch(context.new_page())
    context.close()


def csp_violations(page: Any) -> list[str]:
    """What the console and the DOM reported as blocked by the page's Content-Security-Policy."""
    logged = [m for m in page.console if "Content Security Policy" in m or "Content-Security-Policy" in m]
    seen = page.evaluate("() => window.__cspViolations || []")
    return logged + [f"securitypolicyviolation: {v}" for v in seen]


def signed_in(page: Any, key: str) -> Any:
    """The page holds ``key`` where the client keeps it, before any of its scripts run (every load)."""
    page.add_init_script(
        f"try {{ window.localStorage.setItem({json.dumps(CREDENTIAL_STORAGE)}, {json.dumps(key)}); }} catch (e) {{}}"
    )
    return page


def stored_credential(page: Any) -> str | None:
    value = page.evaluate(f"() => window.localStorage.getItem({json.dumps(CREDENTIAL_STORAGE)})")
    return None if value is None else str(value)


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
