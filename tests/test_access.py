"""Who may see and change what, on every path, on both backends.

A small province: two wards (A: Ghềnh Ráng, B: Quy Nhơn Nam) side by side and a stretch of coast
in neither. Incidents (with a ward field and a sensitive reporter phone) and cameras (no ward
field) lie in A, in B and outside both; roads are public. Every principal — public, an officer
of A, an officer of A and B, the province, a GIS client, admin, an expired key, a revoked key, a
bad key, a bad token — asks every path, and no answer may hold a feature outside its scope or a
field it may not read. Writes outside the scope are refused and audited, and change nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import morecantile
import pyogrio
import pytest
import shapely
import sqlalchemy as sa
from fastapi.testclient import TestClient
from shapely.geometry import LineString, Point, box

from layers.access import Scope
from layers.errors import NotFoundError
from layers.features import BBox, FeatureInput, FeatureQuery
from layers.model import LayerDefinition
from layers.store import LayerStore, ScopedReader
from layers.store.principals import AuditQuery, keys_table
from twin.app import create_app
from twin.settings import TwinSettings

ADMIN_KEY = "admin-key-for-tests"
WARD_A = box(109.20, 13.75, 109.22, 13.77)
WARD_B = box(109.22, 13.75, 109.24, 13.77)
#: Points by where they are: inside A, inside B, at sea outside both.
SITES = {
    "A": [(109.205, 13.755), (109.21, 13.76), (109.215, 13.765)],
    "B": [(109.225, 13.755), (109.23, 13.76), (109.235, 13.765)],
    "out": [(109.30, 13.80), (109.31, 13.81)],
}
TILE = morecantile.tms.get("WebMercatorQuad").tile(109.22, 13.76, 12)


def _layer(
    layer_id: str, kind: str, geometry: str, fields: list[dict[str, Any]], access: dict[str, Any]
) -> LayerDefinition:
    return LayerDefinition.model_validate(
        {
            "id": layer_id,
            "title": layer_id,
            "kind": kind,
            "geometry_type": geometry,
            "fields": fields,
            "access": access,
            "style": {"min_zoom": 0},
        }
    )


AREAS = _layer(
    "areas",
    "admin_area",
    "Polygon",
    [{"name": "code", "type": "string"}, {"name": "name", "type": "string"}],
    {"public": True},
)
INCIDENTS = _layer(
    "incidents",
    "incident",
    "Point",
    [
        {"name": "title", "type": "string"},
        {"name": "ward", "type": "string"},
        {"name": "reporter_phone", "type": "string", "sensitive": True},
    ],
    {
        "read": ["province", "ward_officer", "gis_client"],
        "write": ["province", "ward_officer"],
        "sensitive": ["province", "ward_officer"],
    },
)
CAMERAS = _layer(
    "cameras",
    "camera",
    "Point",
    [{"name": "name", "type": "string"}],
    {"read": ["province", "ward_officer", "gis_client"], "write": ["province"]},
)
ROADS = _layer("roads", "infrastructure", "LineString", [{"name": "name", "type": "string"}], {"public": True})


@dataclass(frozen=True)
class Principal:
    name: str
    headers: dict[str, str]
    #: Where its features may be (None: everywhere), which layers it reads, and whether it sees the phone.
    area: shapely.Geometry | None
    layers: frozenset[str]
    phone: bool
    status: int = 200  # what a read of a layer it may not read, or any request with a bad credential, gets


@dataclass
class World:
    store: LayerStore
    client: TestClient
    principals: dict[str, Principal]
    ids: dict[str, dict[str, list[int]]]  # layer → site → fids


@pytest.fixture
def world(store: LayerStore, tmp_path: Path) -> Iterator[World]:
    store.create_layer(AREAS)
    store.insert_features(
        "areas",
        [
            FeatureInput(WARD_A, {"code": "A", "name": "Ghềnh Ráng"}),
            FeatureInput(WARD_B, {"code": "B", "name": "Quy Nhơn Nam"}),
        ],
    )
    ids: dict[str, dict[str, list[int]]] = {}
    for layer in (INCIDENTS, CAMERAS):
        store.create_layer(layer)
        ids[layer.id] = {}
        for site, points in SITES.items():
            features = [
                FeatureInput(
                    Point(p),
                    {"title": f"{site} {i}", "ward": site, "reporter_phone": f"0900 000 {i:03d}"}
                    if layer.id == "incidents"
                    else {"name": f"{site} {i}"},
                )
                for i, p in enumerate(points)
            ]
            ids[layer.id][site] = store.insert_features(layer.id, features)
    store.create_layer(ROADS)
    ids["roads"] = {
        "A": store.insert_features(
            "roads", [FeatureInput(LineString([(109.201, 13.751), (109.219, 13.769)]), {"name": "A"})]
        ),
        "out": store.insert_features(
            "roads", [FeatureInput(LineString([(109.30, 13.80), (109.32, 13.82)]), {"name": "x"})]
        ),
    }
    keys = {
        "officer_a": store.add_key("officer-a", ["ward_officer"], ["Ghềnh Ráng"])[1],
        "officer_ab": store.add_key("officer-ab", ["ward_officer"], ["A", "quy nhơn nam"])[1],
        "province": store.add_key("province", ["province"])[1],
        "gis": store.add_key("gis", ["gis_client"])[1],
        "expired": store.add_key("expired", ["province"], expires_at=datetime.now(UTC) + timedelta(days=1))[1],
        "revoked": store.add_key("revoked", ["province"])[1],
    }
    store.revoke_key("revoked")
    with store.engine.begin() as conn:  # time passes for the expiring key
        conn.execute(
            sa.update(keys_table)
            .where(keys_table.c.name == "expired")
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    ops = {"incidents", "cameras"}
    everything = {"areas", "roads", *ops}
    principals = {
        "public": Principal("public", {}, None, frozenset({"areas", "roads"}), False, 401),
        "officer_a": Principal("officer_a", {"X-API-Key": keys["officer_a"]}, WARD_A, frozenset(everything), True, 403),
        "officer_ab": Principal(
            "officer_ab",
            {"Authorization": f"Bearer {keys['officer_ab']}"},
            WARD_A.union(WARD_B),
            frozenset(everything),
            True,
            403,
        ),
        "province": Principal("province", {"X-API-Key": keys["province"]}, None, frozenset(everything), True, 403),
        "gis": Principal("gis", {"X-API-Key": keys["gis"]}, None, frozenset(everything), False, 403),
        "admin": Principal("admin", {"X-API-Key": ADMIN_KEY}, None, frozenset(everything), True),
    }
    settings = TwinSettings(data_dir=tmp_path, api_keys=[ADMIN_KEY], tile_cache_mb=16, auth_cache_s=0)
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as client:
        client.bad = {  # type: ignore[attr-defined]
            "expired": {"X-API-Key": keys["expired"]},
            "revoked": {"X-API-Key": keys["revoked"]},
            "unknown key": {"X-API-Key": "twin_not-a-key-at-all"},
            "bad token": {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"},
        }
        yield World(store, client, principals, ids)


def _allowed(world: World, who: Principal, layer: str) -> set[int]:
    """The features of ``layer`` the principal may read: all of a public layer, else those in its area."""
    if layer not in who.layers:
        return set()
    fids = {fid for site in world.ids[layer].values() for fid in site}
    if who.area is None or layer == "roads":
        return fids
    return {fid for site, found in world.ids[layer].items() for fid in found if site in _sites_in(who.area)}


def _sites_in(area: shapely.Geometry) -> set[str]:
    return {site for site, points in SITES.items() if all(area.intersects(Point(p)) for p in points)}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def test_the_catalog_lists_what_each_principal_may_read(world: World) -> None:
    for who in world.principals.values():
        listed = {c["id"] for c in world.client.get("/collections", headers=who.headers).json()["collections"]}
        assert listed == who.layers, who.name
        me = world.client.get("/auth/me", headers=who.headers).json()
        assert set(me["layers"]) == who.layers and me["signed_in"] == (who.name != "public")
    assert world.client.get("/auth/me", headers=world.principals["officer_ab"].headers).json()["areas"] == [
        "Ghềnh Ráng",
        "Quy Nhơn Nam",
    ]


@pytest.mark.parametrize("layer", ["incidents", "cameras", "roads"])
def test_items_single_items_and_counts_hold_only_the_scope(world: World, layer: str) -> None:
    client = world.client
    every = {fid for site in world.ids[layer].values() for fid in site}
    for who in world.principals.values():
        allowed = _allowed(world, who, layer)
        answer = client.get(f"/collections/{layer}/items", params={"limit": 100}, headers=who.headers)
        if layer not in who.layers:
            _problem(answer, who.status)
            _problem(client.get(f"/collections/{layer}", headers=who.headers), who.status)
            _problem(client.get(f"/collections/{layer}/items/{min(every)}", headers=who.headers), who.status)
            continue
        page = answer.json()
        assert {f["id"] for f in page["features"]} == allowed, who.name
        assert page["numberMatched"] == len(allowed)
        for feature in page["features"]:
            assert ("reporter_phone" in feature["properties"]) == (who.phone and layer == "incidents"), who.name
        for fid in every:
            one = client.get(f"/collections/{layer}/items/{fid}", headers=who.headers)
            if fid in allowed:
                assert one.status_code == 200 and one.json()["id"] == fid
            else:  # outside: as if it did not exist
                body = _problem(one, 404)
                assert body["detail"] == _problem(
                    client.get(f"/collections/{layer}/items/99999", headers=who.headers), 404
                )["detail"].replace("99999", str(fid))
        field = "name" if layer != "incidents" else "ward"
        counts = client.get(f"/collections/{layer}/counts", params={"groupBy": field}, headers=who.headers).json()
        assert counts["total"] == len(allowed), who.name


def test_exports_in_every_format_hold_only_the_scope(world: World, tmp_path: Path) -> None:
    client = world.client
    officer = world.principals["officer_a"]
    gis = world.principals["gis"]
    allowed = _allowed(world, officer, "incidents")
    as_csv = client.get("/collections/incidents/items?f=csv&limit=100", headers=officer.headers).text
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert {r["ward"] for r in rows} == {"A"} and len(rows) == len(allowed)
    gis_csv = client.get("/collections/incidents/items?f=csv&limit=100", headers=gis.headers).text
    assert "reporter_phone" not in gis_csv and "0900" not in gis_csv
    fgb = client.get("/collections/incidents/items?f=fgb&limit=100", headers=officer.headers)
    path = tmp_path / "page.fgb"
    path.write_bytes(fgb.content)
    frame = pyogrio.read_dataframe(path)
    assert set(frame["ward"]) == {"A"} and len(frame) == len(allowed)
    gis_fgb = tmp_path / "gis.fgb"
    gis_fgb.write_bytes(client.get("/collections/incidents/items?f=fgb&limit=100", headers=gis.headers).content)
    assert "reporter_phone" not in pyogrio.read_info(gis_fgb)["fields"]
    html = client.get("/collections/incidents/items?f=html&limit=100", headers=gis.headers).text
    assert "reporter_phone" not in html and "0900" not in html and "B 0" in html
    officer_html = client.get("/collections/incidents/items?f=html&limit=100", headers=officer.headers).text
    assert "B 0" not in officer_html and "A 0" in officer_html


def test_sensitive_fields_are_absent_from_schemas_filters_sorting_and_counts(world: World) -> None:
    client = world.client
    gis = world.principals["gis"].headers
    for document in ("queryables", "schema", "sortables"):
        assert (
            "reporter_phone" not in client.get(f"/collections/incidents/{document}", headers=gis).json()["properties"]
        )
    officer = world.principals["officer_a"].headers
    assert "reporter_phone" in client.get("/collections/incidents/queryables", headers=officer).json()["properties"]
    refusals = [
        client.get("/collections/incidents/items", params={"filter": "reporter_phone LIKE '0900%'"}, headers=gis),
        client.get("/collections/incidents/items", params={"sortby": "reporter_phone"}, headers=gis),
        client.get("/collections/incidents/items", params={"properties": "reporter_phone"}, headers=gis),
        client.get("/collections/incidents/items", params={"reporter_phone": "0900 000 000"}, headers=gis),
        client.get("/collections/incidents/counts", params={"groupBy": "reporter_phone"}, headers=gis),
    ]
    for refused in refusals:
        body = _problem(refused, 400)
        assert "0900" not in json.dumps(body)
    # The same filter from a role that may read the field is answered.
    found = client.get(
        "/collections/incidents/items", params={"filter": "reporter_phone LIKE '0900%'"}, headers=officer
    )
    assert found.status_code == 200 and len(found.json()["features"]) == len(
        _allowed(world, world.principals["officer_a"], "incidents")
    )


def _tile_ids(content: bytes) -> dict[str, set[int]]:
    if not content:
        return {}
    return {name: {f["id"] for f in layer["features"]} for name, layer in mapbox_vector_tile.decode(content).items()}


def _tile_properties(content: bytes, layer: str) -> set[str]:
    decoded = mapbox_vector_tile.decode(content) if content else {}
    return {key for f in decoded.get(layer, {"features": []})["features"] for key in f["properties"]}


def test_tiles_layer_and_dataset_hold_only_the_scope_and_are_cached_per_scope(world: World) -> None:
    client = world.client
    url = f"WebMercatorQuad/{TILE.z}/{TILE.y}/{TILE.x}"
    for _ in range(2):  # the second round is answered from the tile cache: still each scope its own
        for who in world.principals.values():
            for layer in ("incidents", "cameras", "roads"):
                answer = client.get(f"/collections/{layer}/tiles/{url}", headers=who.headers)
                if layer not in who.layers:
                    _problem(answer, who.status)
                    continue
                assert answer.status_code in (200, 204)
                ids = _tile_ids(answer.content).get(layer, set())
                allowed = _allowed(world, who, layer)
                assert ids <= allowed and ids == {i for i in allowed if i in _in_tile(world, layer)}, (who.name, layer)
                if layer == "incidents":
                    assert ("reporter_phone" in _tile_properties(answer.content, layer)) == who.phone
            dataset = client.get(f"/tiles/{url}", headers=who.headers)
            layers = _tile_ids(dataset.content)
            assert set(layers) <= who.layers, who.name
            for layer, ids in layers.items():
                if layer in world.ids:
                    assert ids <= _allowed(world, who, layer), (who.name, layer)
            refused = client.get(f"/tiles/{url}", params={"collections": "incidents"}, headers=who.headers)
            if "incidents" not in who.layers:
                _problem(refused, who.status)


def _in_tile(world: World, layer: str) -> set[int]:
    """Every feature of the layer in the test tile, whoever may see it."""
    bounds = morecantile.tms.get("WebMercatorQuad").bounds(TILE)
    return {f.id for f in world.store.query(layer, FeatureQuery(bbox=BBox(*bounds)))}


def test_tilejson_and_style_list_only_readable_layers(world: World) -> None:
    client = world.client
    for who in world.principals.values():
        style = client.get("/styles/default", headers=who.headers).json()
        sources = {layer.get("source-layer") for layer in style["layers"] if layer.get("source-layer")}
        assert sources <= who.layers and sources, who.name
        tilejson = client.get("/tiles/WebMercatorQuad/tilejson.json", headers=who.headers).json()
        assert {v["id"] for v in tilejson["vector_layers"]} == who.layers, who.name


def test_bad_credentials_are_refused_on_every_path_and_audited(world: World) -> None:
    client = world.client
    paths = [
        "/collections",
        "/collections/roads/items",
        f"/collections/roads/tiles/WebMercatorQuad/{TILE.z}/{TILE.y}/{TILE.x}",
        "/styles/default",
    ]
    for name, headers in client.bad.items():  # type: ignore[attr-defined]
        for path in paths:
            body = _problem(client.get(path, headers=headers), 401)
            assert body["detail"], (name, path)
        assert client.get("/collections", headers=headers).headers["www-authenticate"]
        _problem(client.post("/collections/incidents/items", json={}, headers=headers), 401)
    refused = world.store.audit(AuditQuery(action="signin", outcome="refused"))
    details = " ".join(e.detail or "" for e in refused)
    assert "expired" in details and "revoked" in details and "not valid" in details
    assert all("twin_not-a-key" not in (e.principal + (e.detail or "")) for e in refused)  # never the key
    assert all(e.client and e.request_id for e in refused)


def _feature(x: float, y: float, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": props}


def test_writes_inside_the_scope_land_outside_are_refused_audited_and_change_nothing(world: World) -> None:
    client, store = world.client, world.store
    officer = world.principals["officer_a"].headers
    before = {f.id: (f.version, f.properties) for f in store.query("incidents")}
    made = client.post(
        "/collections/incidents/items", json=_feature(109.21, 13.752, title="mới", ward="A"), headers=officer
    )
    assert made.status_code == 201
    fid = int(made.headers["location"].rsplit("/", 1)[1])
    outside = client.post(
        "/collections/incidents/items", json=_feature(109.23, 13.76, title="x", ward="B"), headers=officer
    )
    _problem(outside, 403)
    in_b = world.ids["incidents"]["B"][0]
    _problem(
        client.patch(f"/collections/incidents/items/{in_b}", json={"properties": {"title": "x"}}, headers=officer), 404
    )
    _problem(client.delete(f"/collections/incidents/items/{in_b}", headers=officer), 404)
    moved_out = client.patch(
        f"/collections/incidents/items/{fid}",
        json={"geometry": {"type": "Point", "coordinates": [109.23, 13.76]}},
        headers=officer,
    )
    _problem(moved_out, 403)
    # a role that may read but not write, and the public, are refused before the body is read
    _problem(
        client.post(
            "/collections/incidents/items", json=_feature(109.21, 13.76), headers=world.principals["gis"].headers
        ),
        403,
    )
    _problem(client.post("/collections/cameras/items", json=_feature(109.21, 13.76, name="c"), headers=officer), 403)
    _problem(client.post("/collections/roads/items", json=_feature(109.21, 13.76)), 401)
    # roles granted the sensitive field write it; one that cannot read it cannot name it either
    phone = {"properties": {"reporter_phone": "0900 111 222"}}
    assert client.patch(f"/collections/incidents/items/{fid}", json=phone, headers=officer).status_code == 204
    province = world.principals["province"].headers
    assert client.patch(f"/collections/incidents/items/{fid}", json=phone, headers=province).status_code == 204
    after = {f.id: (f.version, f.properties) for f in store.query("incidents")}
    assert {k: v for k, v in after.items() if k != fid} == before
    trail = store.audit(AuditQuery(layer_id="incidents", limit=None))
    ok = [(e.principal, e.action, e.feature_id) for e in trail if e.outcome == "ok"]
    assert ("key:officer-a", "feature.create", fid) in ok and ("key:province", "feature.update", fid) in ok
    refused = [(e.principal, e.action) for e in trail if e.outcome == "refused"]
    assert refused.count(("key:officer-a", "feature.create")) == 1 and ("key:gis", "feature.create") in refused
    assert ("key:officer-a", "feature.update") in refused and ("key:officer-a", "feature.delete") in refused
    assert all(e.request_id and e.client for e in trail if e.principal.startswith("key:"))


def test_history_and_as_of_reads_keep_the_scope(world: World) -> None:
    store = world.store
    fid = world.ids["incidents"]["A"][0]
    store.update_feature("incidents", fid, geometry=Point(109.23, 13.76))  # moved from A into B
    officer = ScopedReader(store, _scope_of(store, "officer-a"))
    versions = officer.history("incidents", fid)
    assert [v.version for v in versions] == [1]  # the version in B is not the officer's
    assert all("reporter_phone" in v.properties for v in versions)
    gis = ScopedReader(store, _scope_of(store, "gis"))
    assert all("reporter_phone" not in v.properties for v in gis.history("incidents", fid))
    past = versions[0].valid_from + timedelta(microseconds=1)
    assert officer.get_feature("incidents", fid, as_of=past).id == fid
    with pytest.raises(NotFoundError):
        officer.get_feature("incidents", fid)  # now in B
    with pytest.raises(NotFoundError):
        officer.history("incidents", world.ids["incidents"]["B"][0])
    assert {f.id for f in officer.nearest("incidents", 109.23, 13.76, 10)} <= _allowed(
        world, world.principals["officer_a"], "incidents"
    )


def _scope_of(store: LayerStore, name: str) -> Scope:
    from twin.auth import scope_of_key_named

    return scope_of_key_named(store, name)


def test_keys_are_stored_hashed_and_managed_by_admins_only(world: World) -> None:
    client = world.client
    admin = world.principals["admin"].headers
    made = client.post(
        "/admin/keys", json={"name": "field-team", "roles": ["ward_officer"], "areas": ["B"]}, headers=admin
    )
    assert made.status_code == 201
    secret = made.json()["key"]
    with world.store.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(sa.select(keys_table)) for v in row)
    assert secret not in stored and secret[:11] in stored  # the hash and the first characters, never the key
    listed = {k["name"]: k for k in client.get("/admin/keys", headers=admin).json()}
    assert listed["field-team"]["areas"] == ["Quy Nhơn Nam"] and "key" not in listed["field-team"]
    assert listed["revoked"]["state"] == "revoked" and listed["expired"]["state"] == "expired"
    officer_b = {"X-API-Key": secret}
    assert {f["id"] for f in client.get("/collections/incidents/items", headers=officer_b).json()["features"]} == set(
        world.ids["incidents"]["B"]
    )
    _problem(client.get("/admin/keys", headers=world.principals["province"].headers), 403)
    _problem(client.get("/admin/keys"), 401)
    _problem(
        client.post("/admin/keys", json={"name": "x", "roles": ["ward_officer"], "areas": ["Nowhere"]}, headers=admin),
        400,
    )
    _problem(client.post("/admin/keys", json={"name": "y", "roles": ["ward_officer"]}, headers=admin), 400)
    assert client.delete("/admin/keys/field-team", headers=admin).json()["state"] == "revoked"
    _problem(client.get("/collections", headers=officer_b), 401)
    actions = [e.action for e in world.store.audit(AuditQuery(limit=None))]
    assert "key.add" in actions and "key.revoke" in actions


def test_the_audit_trail_pages_filters_and_exports(world: World) -> None:
    client = world.client
    admin = world.principals["admin"].headers
    for i in range(3):
        client.post("/collections/incidents/items", json=_feature(109.21, 13.76, title=f"t{i}"), headers=admin)
    first = client.get(
        "/admin/audit", params={"action": "feature.create", "limit": 2, "layer": "incidents"}, headers=admin
    ).json()
    assert len(first["entries"]) == 2 and "next" in first
    rest = client.get(first["next"], headers=admin).json()
    ids = [e["id"] for e in first["entries"] + rest["entries"]]
    assert ids == sorted(set(ids))
    table = client.get("/admin/audit", params={"f": "csv", "principal": "api-key-1"}, headers=admin)
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert rows and all(r["principal"] == "api-key-1" for r in rows)
    _problem(client.get("/admin/audit", headers=world.principals["province"].headers), 403)
    _problem(client.get("/admin/audit", params={"limit": 0}, headers=admin), 400)


def test_layer_access_changes_are_admin_only(world: World) -> None:
    client = world.client
    province = world.principals["province"].headers
    _problem(client.patch("/admin/layers/cameras", json={"access": {"public": True}}, headers=province), 403)
    _problem(client.get("/collections/cameras/items"), 401)
    published = client.patch(
        "/admin/layers/cameras", json={"access": {"public": True}}, headers={"X-API-Key": ADMIN_KEY}
    )
    assert published.status_code == 200
    assert len(client.get("/collections/cameras/items").json()["features"]) == 8


def test_cli_exports_as_a_key_hold_what_its_holder_may_read(world: World, store_url: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TWIN_DATABASE_URL"} | {"TWIN_DATA_DIR": str(tmp_path)}
    if store_url.startswith("postgresql"):
        env["TWIN_DATABASE_URL"] = store_url

    def twin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "twin", *args], env=env, capture_output=True, text=True, timeout=300
        )

    officer, gis = tmp_path / "officer.geojson", tmp_path / "gis.geojson"
    assert twin("export", "incidents", str(officer), "--as", "officer-a").returncode == 0
    assert twin("export", "incidents", str(gis), "--as", "gis").returncode == 0
    mine = pyogrio.read_dataframe(officer)
    assert set(mine["ward"]) == {"A"} and "reporter_phone" in mine.columns
    theirs = pyogrio.read_dataframe(gis)
    assert set(theirs["ward"]) == {"A", "B", "out"} and "reporter_phone" not in theirs.columns
    archive = tmp_path / "officer.pmtiles"
    done = twin("tiles", "export", str(archive), "--layers", "incidents,cameras", "--minzoom", "12", "--maxzoom", "13",
                "--as", "officer-a")  # fmt: skip
    assert done.returncode == 0, done.stderr
    tiled = pyogrio.read_dataframe(archive, layer="incidents")
    assert len(tiled) and set(tiled["ward"]) == {"A"} and "reporter_phone" in tiled.columns
    assert len(pyogrio.read_dataframe(archive, layer="cameras")) == len(SITES["A"])
    refused = twin("export", "incidents", str(tmp_path / "x.geojson"), "--as", "revoked")
    assert refused.returncode == 1 and "revoked" in refused.stderr
    public = twin("tiles", "export", str(tmp_path / "p.pmtiles"), "--layers", "incidents", "--as", "nobody")
    assert public.returncode == 1 and "no key is named 'nobody'" in public.stderr


def test_a_scoped_first_page_count_follows_every_write(world: World) -> None:
    """The capped count of a masked first page is kept per data version (``MatchCounts``): never stale."""
    client = world.client
    officer = world.principals["officer_a"].headers
    counts = []
    for round_ in range(3):
        for _ in range(2):  # the second is answered with the kept count
            page = client.get("/collections/incidents/items", params={"limit": 2}, headers=officer).json()
            counts.append(page["numberMatched"])
        feature = _feature(109.205 + round_ / 1000, 13.758, title=f"n{round_}", ward="A")
        assert client.post("/collections/incidents/items", json=feature, headers=officer).status_code == 201
    assert counts == [3, 3, 4, 4, 5, 5]
    filtered = client.get(
        "/collections/incidents/items", params={"limit": 2, "filter": "title LIKE 'n%'"}, headers=officer
    )
    assert filtered.json()["numberMatched"] == 3  # another filter: its own count
