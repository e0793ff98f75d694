"""A wheel built from the project works on its own: installed (not editable) into a fresh venv, outside
the checkout, ``twin samples`` finds the sample city's inputs and ``twin serve`` the built map client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(
    not (REPO / "frontend" / "dist" / "index.html").is_file(), reason="the map client is not built (make client)"
)


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's bin folder, with the wheel installed alone and the suite's venv's packages beside it."""
    root = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", root, REPO, cwd=root)
    [wheel] = root.glob("twin-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twin/client/index.html" in names and "twin/samplecity/data/wards.csv" in names
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    # The dependencies from this venv (a plain path line: its .pth files, the editable install among
    # them, are not read), the project only from the wheel.
    [site] = (venv / "lib").glob("python3*/site-packages")
    (site / "suite-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--no-deps",
        "--quiet",
        wheel,
        cwd=root,
    )
    return venv / "bin"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TWIN_DATABASE_URL")}
    return {**env, "TWIN_DATA_DIR": str(data_dir), "TWIN_API_KEYS": '["k"]'}


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    found = _run(
        installed / "python",
        "-c",
        "import twin, twin.web as w; print(twin.__file__, w.find_client_dist())",
        cwd=tmp_path,
    )
    package, client = found.split()
    assert not package.startswith(str(REPO)) and "site-packages" in package
    assert client.endswith("site-packages/twin/client")


def test_samples_and_serve_work_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    env = _env(tmp_path / "var")
    out = _run(installed / "twin", "samples", "--scale", "0.02", "--as-of", "2026-11-01", cwd=tmp_path, env=env)
    assert "wards" in out and "dem" in out
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [installed / "twin", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
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
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            time.sleep(0.2)
        page = httpx.get(f"{url}/", headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.text == (REPO / "frontend" / "dist" / "index.html").read_text()
        script = next(p for p in (REPO / "frontend" / "dist" / "assets").glob("index-*.js"))
        asset = httpx.get(f"{url}/assets/{script.name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
        assert httpx.get(f"{url}/wall").status_code == 200
        collections = {c["id"] for c in httpx.get(f"{url}/collections").json()["collections"]}
        assert collections == {"wards", "address_points", "parcels", "roads"}  # signed out: the public layers
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
