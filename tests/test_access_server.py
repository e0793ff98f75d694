"""Access against ``twin serve --workers 2``: keys made and revoked from the command line reach
both workers, and the door refuses what it must before reading a byte of the body."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _twin(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "twin", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "TWIN_AUTH_CACHE_S": "1"}


def test_a_key_made_and_revoked_on_the_command_line_works_then_stops_on_every_worker(
    server: str, env: dict[str, str], tmp_path: Path
) -> None:
    wards = tmp_path / "wards.geojson"
    wards.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"Ghềnh Ráng"},'
        '"geometry":{"type":"Polygon","coordinates":[[[109.2,13.75],[109.22,13.75],[109.22,13.77],[109.2,13.77],'
        "[109.2,13.75]]]}}]}",
        encoding="utf-8",
    )
    _twin(env, "import", str(wards), "--layer", "wards", "--kind", "admin_area")
    assert httpx.get(f"{server}/collections/wards/items").status_code == 401  # a new layer is not public
    output = _twin(env, "keys", "add", "officer", "--role", "ward_officer", "--area", "ghềnh ráng")
    key = output.strip().splitlines()[-1]  # the key is the last line, shown once
    assert key.startswith("twin_") and key not in _twin(env, "keys", "list")
    with httpx.Client(base_url=server, headers={"X-API-Key": key}) as client:
        answers = [client.get("/collections/wards/items") for _ in range(8)]  # both workers answer some
        assert all(a.status_code == 200 and len(a.json()["features"]) == 1 for a in answers)
        _twin(env, "keys", "revoke", "officer")
        time.sleep(1.5)  # TWIN_AUTH_CACHE_S
        refused = [client.get("/collections/wards/items") for _ in range(8)]
        assert all(a.status_code == 401 for a in refused), [a.status_code for a in refused]
    audit = _twin(env, "audit", "--refused")
    assert "signin" in audit and "revoked" in audit
    shown = _twin(env, "layers", "access", "wards", "--public")
    assert '"public": true' in shown
    assert httpx.get(f"{server}/collections/wards/items").status_code == 200


def _raw(server: str, request: bytes) -> tuple[float, bytes]:
    host, port = server.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer = conn.recv(65536)
    return time.monotonic() - started, answer


def test_a_huge_upload_without_a_key_is_refused_before_its_body_is_read(server: str) -> None:
    """200 MB announced, none sent: the answer comes at once (the server never waits for the body)."""
    head = (
        "POST /admin/layers/big/import HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {200 * 2**20}\r\n\r\n"
    ).encode()
    seconds, answer = _raw(server, head)
    assert answer.startswith(b"HTTP/1.1 401") and b"application/problem+json" in answer and seconds < 5
    too_big = (
        "POST /collections/roads/items HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\nContent-Type: application/geo+json\r\n"
        f"Content-Length: {64 * 2**20}\r\n\r\n"
    ).encode()
    seconds, answer = _raw(server, too_big)
    assert answer.startswith(b"HTTP/1.1 413") and seconds < 5


def test_cors_is_off_by_default_and_pages_carry_security_headers(server: str) -> None:
    preflight = httpx.options(
        f"{server}/collections",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    page = httpx.get(f"{server}/collections?f=html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{server}/collections").headers["x-content-type-options"] == "nosniff"
