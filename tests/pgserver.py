"""A throwaway PostgreSQL + PostGIS server for tests and benchmarks.

``initdb`` refuses to run as root (CI runs as root), so when we are root the
server runs as the ``postgres`` user, in a temporary directory it owns.
``TWIN_TEST_DATABASE_URL`` skips all of this and uses a running server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def postgres_available() -> str | None:
    """None when a server can be started here, else the reason it cannot."""
    if os.environ.get("TWIN_TEST_DATABASE_URL"):
        return None
    if _bin_dir() is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql-15-postgis-3)"
    if not glob.glob("/usr/share/postgresql/*/extension/postgis.control"):
        return "PostGIS not installed (apt-get install postgresql-15-postgis-3)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres_server(tuning: dict[str, str] | None = None) -> Iterator[str]:
    """Start a server, create a PostGIS database ``twin``, yield its URL, stop and delete it."""
    if url := os.environ.get("TWIN_TEST_DATABASE_URL"):
        yield url
        return
    bin_dir = _bin_dir()
    assert bin_dir is not None, postgres_available()
    root = Path(tempfile.mkdtemp(prefix="twin-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    settings = {"fsync": "off", "listen_addresses": "127.0.0.1", "unix_socket_directories": str(root)}
    settings.update(tuning or {})
    options = " ".join(f"-c {k}={v}" for k, v in settings.items())
    data = root / "data"
    run = {"check": True, "capture_output": True}
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"], **run)
        subprocess.run(
            [
                *as_user,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                f"-p {port} {options}",
                "-l",
                str(root / "log"),
                "-w",
                "start",
            ],
            **run,
        )
        psql = [*as_user, str(bin_dir / "psql"), "-h", str(root), "-p", str(port), "-U", "postgres", "-q"]
        subprocess.run([*psql, "-c", "CREATE DATABASE twin"], **run)
        subprocess.run([*psql, "-d", "twin", "-c", "CREATE EXTENSION postgis"], **run)
        yield f"postgresql://postgres@127.0.0.1:{port}/twin"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
