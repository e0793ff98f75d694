"""The door's optional parts: the rate limit (per key, per address) and CORS for named origins."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from layers.store import LayerStore
from twin.app import create_app
from twin.settings import TwinSettings


def test_the_rate_limit_counts_each_key_and_each_address_apart(sqlite_store: LayerStore, tmp_path: Path) -> None:
    settings = TwinSettings(data_dir=tmp_path, api_keys=["k1", "k2"], rate_limit_per_minute=3)
    with TestClient(create_app(settings, sqlite_store)) as client:
        anonymous = [client.get("/collections").status_code for _ in range(4)]
        assert anonymous == [200, 200, 200, 429]
        refused = client.get("/collections")
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "TWIN_RATE_LIMIT_PER_MINUTE" in refused.json()["detail"]
        first = [client.get("/collections", headers={"X-API-Key": "k1"}).status_code for _ in range(4)]
        assert first == [200, 200, 200, 429]
        assert client.get("/collections", headers={"X-API-Key": "k2"}).status_code == 200  # its own count
        assert client.get("/healthz").status_code == 200  # health checks are not counted


def test_cors_answers_the_named_origins_only(sqlite_store: LayerStore, tmp_path: Path) -> None:
    settings = TwinSettings(data_dir=tmp_path, cors_origins=["https://ioc.binhdinh.gov.vn"])
    with TestClient(create_app(settings, sqlite_store)) as client:
        asked = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-api-key"}
        allowed = client.options("/collections", headers={"Origin": "https://ioc.binhdinh.gov.vn", **asked})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://ioc.binhdinh.gov.vn"
        assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
        other = client.options("/collections", headers={"Origin": "https://evil.example", **asked})
        assert "access-control-allow-origin" not in other.headers
        read = client.get("/collections", headers={"Origin": "https://ioc.binhdinh.gov.vn"})
        assert read.headers["access-control-allow-origin"] == "https://ioc.binhdinh.gov.vn"


def test_the_pages_policy_lets_the_planner_reach_the_oidc_token_endpoint_only(
    sqlite_store: LayerStore, tmp_path: Path
) -> None:
    plain = TwinSettings(data_dir=tmp_path)
    with TestClient(create_app(plain, sqlite_store)) as client:
        policy = client.get("/collections?f=html").headers["content-security-policy"]
    assert "connect-src 'self';" in policy and "frame-ancestors 'none'" in policy
    oidc = TwinSettings(data_dir=tmp_path, oidc_token_url="https://id.binhdinh.gov.vn/realms/ioc/token")
    with TestClient(create_app(oidc, sqlite_store)) as client:
        policy = client.get("/collections?f=html").headers["content-security-policy"]
    assert "connect-src 'self' https://id.binhdinh.gov.vn;" in policy
