"""The HTTP app: health, the admin API, and RFC 9457 problems for every error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from layers.store import LayerStore
from twin.app import create_app
from twin.settings import TwinSettings

KEY = "test-key-123"
HEADERS = {"X-API-Key": KEY}
LAYER = {
    "id": "cameras",
    "title": "Camera giao thông",
    "kind": "camera",
    "geometry_type": "Point",
    "fields": [
        {"name": "name", "type": "string", "title": "Tên", "required": True},
        {"name": "stream_url", "type": "string"},
    ],
}


@pytest.fixture
def settings(tmp_path: Path) -> TwinSettings:
    return TwinSettings(data_dir=tmp_path, api_keys=[KEY])


@pytest.fixture
def client(settings: TwinSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status and body["title"]
    assert body["request_id"] == response.headers["x-request-id"]  # type: ignore[attr-defined]
    return body


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["backend"] == "spatialite"


def test_readiness_fails_when_the_database_is_gone(settings: TwinSettings) -> None:
    from layers.store.postgis import PostGISBackend

    backend = PostGISBackend()
    dead = LayerStore(backend.create_engine("postgresql://nobody@127.0.0.1:9/none"), backend)
    with TestClient(create_app(settings, store=dead), raise_server_exceptions=False) as client:
        body = assert_problem(client.get("/readyz"), 503)
    assert "127.0.0.1" not in str(body) and "nobody" not in str(body)


def test_admin_layer_lifecycle(client: TestClient) -> None:
    created = client.post("/admin/layers", json=LAYER, headers=HEADERS)
    assert created.status_code == 201 and created.headers["location"] == "/admin/layers/cameras"
    assert created.json()["title"] == "Camera giao thông"
    assert [d["id"] for d in client.get("/admin/layers", headers=HEADERS).json()] == ["cameras"]
    assert client.get("/admin/layers/cameras", headers=HEADERS).json()["feature_count"] == 0

    altered = client.patch(
        "/admin/layers/cameras",
        json={"add_fields": [{"name": "status", "type": "string", "choices": ["online", "offline"]}]},
        headers=HEADERS,
    )
    assert altered.status_code == 200 and altered.json()["fields"][-1]["name"] == "status"
    assert_problem(client.post("/admin/layers", json=LAYER, headers=HEADERS), 409)
    assert client.delete("/admin/layers/cameras", headers=HEADERS).status_code == 204
    assert_problem(client.get("/admin/layers/cameras", headers=HEADERS), 404)


def test_changes_need_a_valid_api_key(client: TestClient) -> None:
    refused = client.post("/admin/layers", json=LAYER)
    assert "X-API-Key" in assert_problem(refused, 401)["detail"]  # type: ignore[operator]
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.post("/admin/layers", json=LAYER, headers={"X-API-Key": "wrong"}), 401)
    assert_problem(client.get("/admin/layers"), 401)
    assert client.get("/admin/layers", headers=HEADERS).json() == []


def test_without_configured_keys_no_key_is_valid(tmp_path: Path) -> None:
    with TestClient(create_app(TwinSettings(data_dir=tmp_path))) as client:
        body = assert_problem(client.post("/admin/layers", json=LAYER, headers=HEADERS), 401)
    assert "not valid" in body["detail"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({**LAYER, "id": "Bad Id"}, "body.id"),
        ({**LAYER, "geometry_type": "Circle"}, "body.geometry_type"),
        ({**LAYER, "fields": [{"name": "fid", "type": "string"}]}, "reserved"),
        ({**LAYER, "time_field": "name"}, "time_field 'name' must name a date or datetime field"),
    ],
)
def test_invalid_definitions_name_the_problem(client: TestClient, payload: dict[str, object], names: str) -> None:
    body = assert_problem(client.post("/admin/layers", json=payload, headers=HEADERS), 400)
    assert names in str(body)
    assert client.get("/admin/layers", headers=HEADERS).json() == []


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404)
    assert_problem(client.put("/healthz"), 405)


def test_server_errors_hide_internals_and_carry_the_request_id(
    settings: TwinSettings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("SELECT secret FROM /var/lib/twin.sqlite")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/boom", headers={"X-Request-ID": "req-42"})
    body = assert_problem(response, 500)
    assert body["request_id"] == "req-42"
    assert "secret" not in response.text and "sqlite" not in response.text
    logged = [r for r in caplog.records if "boom" in r.getMessage()]
    assert logged and logged[0].request_id == "req-42"  # type: ignore[attr-defined]
    assert "SELECT secret" in caplog.text


def test_unsafe_request_ids_are_replaced(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert response.headers["x-request-id"] != "bad id\nwith newline"
    assert len(response.headers["x-request-id"]) == 32


def test_openapi_describes_the_admin_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/admin/layers" in spec["paths"]
    assert "application/problem+json" in str(spec["paths"]["/admin/layers"]["post"]["responses"]["400"])


def test_import_over_http(client: TestClient) -> None:
    csv = "Tên,so_nha,lon,lat\nTrần Hưng Đạo,12,109.22,13.77\nLê Lợi,5,109.21,13.76\n".encode()
    done = client.post("/admin/layers/streets/import", files={"file": ("duong.csv", csv, "text/csv")}, headers=HEADERS)
    assert done.status_code == 200, done.text
    assert done.json() | {"seconds": 0} == {
        "layer_id": "streets",
        "created": True,
        "inserted": 2,
        "archived": 0,
        "source_crs": "EPSG:4326",
        "seconds": 0,
        "skipped": 0,
        "skipped_features": [],
    }
    bad = b"ten,so_nha,lon,lat\nA,1,109.2,13.7\nB,hai,109.2,13.7\n"
    body = assert_problem(
        client.post(
            "/admin/layers/streets/import", files={"file": ("bad.csv", bad)}, data={"mode": "replace"}, headers=HEADERS
        ),
        400,
    )
    assert "feature 2: field 'so_nha' expects an integer, got 'hai'" in body["detail"]  # type: ignore[operator]
    assert client.get("/admin/layers/streets", headers=HEADERS).json()["feature_count"] == 2
    assert_problem(client.post("/admin/layers/streets/import", files={"file": ("x.csv", csv)}), 401)
