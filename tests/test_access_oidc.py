"""OIDC bearer tokens: signed by a key the test makes, checked against a JWKS the test serves on loopback.

No outside identity provider: the test is the provider. A token's roles and areas come from the
claims the settings name (here Keycloak's ``realm_access.roles``); its signature, issuer, audience
and expiry are checked, and every token that fails one of them is a 401.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm
from shapely.geometry import Point, box

from layers.features import FeatureInput
from layers.model import LayerDefinition
from layers.store import LayerStore
from layers.store.principals import AuditQuery
from twin.app import create_app
from twin.settings import TwinSettings

ISSUER = "https://id.quynhon.test/realms/ioc"
AUDIENCE = "twin"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    public = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    document = json.dumps({"keys": [{**public, "kid": "test-1", "use": "sig", "alg": "RS256"}]}).encode()

    class JWKS(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), JWKS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()


def _token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "officer-7", "iat": now, "exp": now + 300, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "test-1"})


@pytest.fixture
def client(store: LayerStore, jwks_url: str, tmp_path: Path) -> Iterator[TestClient]:
    store.create_layer(
        LayerDefinition.model_validate(
            {"id": "wards", "title": "Phường", "kind": "admin_area", "geometry_type": "Polygon",
             "fields": [{"name": "name", "type": "string"}], "access": {"public": True}}
        )
    )  # fmt: skip
    store.insert_features("wards", [FeatureInput(box(109.20, 13.75, 109.22, 13.77), {"name": "Ghềnh Ráng"})])
    store.create_layer(
        LayerDefinition.model_validate(
            {
                "id": "incidents",
                "title": "Phản ánh",
                "geometry_type": "Point",
                "fields": [{"name": "t", "type": "string"}],
            }
        )
    )
    store.insert_features(
        "incidents", [FeatureInput(Point(109.21, 13.76), {"t": "in"}), FeatureInput(Point(109.30, 13.80), {"t": "out"})]
    )
    settings = TwinSettings(
        data_dir=tmp_path,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=jwks_url,
        oidc_roles_claim="realm_access.roles",
        oidc_areas_claim="twin_areas",
        auth_cache_s=0,
    )
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as test_client:
        yield test_client


def _titles(client: TestClient, token: str) -> list[str] | int:
    answer = client.get("/collections/incidents/items", headers={"Authorization": f"Bearer {token}"})
    if answer.status_code != 200:
        return answer.status_code
    return sorted(f["properties"]["t"] for f in answer.json()["features"])


def test_a_token_gives_its_roles_and_areas(client: TestClient, signing_key: rsa.RSAPrivateKey) -> None:
    officer = _token(signing_key, realm_access={"roles": ["ward_officer"]}, twin_areas=["ghềnh ráng"])
    assert _titles(client, officer) == ["in"]
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {officer}"}).json()
    assert me["principal"] == "oidc:officer-7" and me["areas"] == ["Ghềnh Ráng"] and me["roles"] == ["ward_officer"]
    province = _token(signing_key, realm_access={"roles": ["province"]})
    assert _titles(client, province) == ["in", "out"]
    nobody = _token(signing_key)  # signed in, with no role: the public layers only
    assert _titles(client, nobody) == 403


def test_tokens_that_do_not_check_out_are_refused_and_audited(
    client: TestClient, signing_key: rsa.RSAPrivateKey, store: LayerStore
) -> None:
    roles = {"realm_access": {"roles": ["province"]}}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    bad = {
        "expired": _token(signing_key, exp=now - 3600, **roles),
        "wrong audience": _token(signing_key, aud="another-app", **roles),
        "wrong issuer": _token(signing_key, iss="https://evil.test", **roles),
        "another key": _token(other_key, **roles),
        "alg none": jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60, **roles}, None, "none"),
        "a shared secret (HS256)": jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60, **roles},
            "a-shared-secret-of-more-than-32-bytes",
            "HS256",
            headers={"kid": "test-1"},
        ),
    }  # fmt: skip
    for name, token in bad.items():
        answer = client.get("/collections/incidents/items", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, name
        assert answer.headers["content-type"] == "application/problem+json"
    refused = store.audit(AuditQuery(action="signin", outcome="refused", limit=None))
    assert len(refused) >= len(bad) and all(token not in (e.detail or "") for token in bad.values() for e in refused)


def test_without_an_oidc_provider_tokens_are_refused(store: LayerStore, tmp_path: Path) -> None:
    token = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "a-shared-secret-of-more-than-32-bytes", "HS256")
    with TestClient(create_app(TwinSettings(data_dir=tmp_path), store), raise_server_exceptions=False) as client:
        answer = client.get("/collections", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and "OIDC" in answer.json()["detail"]
