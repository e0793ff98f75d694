"""``sortby`` on items: order, keyset paging through compound sort keys with NULLs, and refusals.

The truth is Python's own sort of the inserted features: NULL above every
value (last ascending, first descending), the feature id breaking ties.
Strings are ASCII so the databases' collations agree with Python's order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point
from sqlalchemy.dialects import postgresql

from layers.features import Condition, FeatureInput, FeatureQuery, Op, SortKey
from layers.model import LayerDefinition
from layers.store import LayerStore
from layers.store.statements import feature_select
from tests.signin import ADMIN_KEY, signed_in
from twin.app import create_app
from twin.settings import TwinSettings

BUILDINGS = LayerDefinition.model_validate(
    {
        "id": "buildings",
        "title": "Nhà",
        "kind": "generic",
        "geometry_type": "Point",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "height_m", "type": "number"},
            {"name": "floors", "type": "integer"},
            {"name": "built", "type": "date"},
            {"name": "surveyed_at", "type": "datetime"},
            {"name": "listed", "type": "boolean"},
        ],
    }
)


def _properties(rng: random.Random) -> dict[str, Any]:
    """Few distinct values and many NULLs, so ties and NULL runs cross page boundaries."""

    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.25 else value

    return {
        "name": maybe(rng.choice(["an", "binh", "cuong", "dung"])),
        "height_m": maybe(rng.choice([3.5, 7.25, 12.0, 30.0])),
        "floors": maybe(rng.randint(1, 4)),
        "built": maybe(date(2000 + rng.randint(0, 3), 1, 1)),
        "surveyed_at": maybe(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randint(0, 3))),
        "listed": maybe(rng.random() < 0.5),
    }


@pytest.fixture
def buildings(store: LayerStore) -> tuple[LayerStore, dict[int, dict[str, Any]]]:
    rng = random.Random(7)
    store.create_layer(BUILDINGS)
    rows = [_properties(rng) for _ in range(61)]
    ids = store.insert_features(
        "buildings", [FeatureInput(Point(109.2 + i * 1e-3, 13.7), p) for i, p in enumerate(rows)]
    )
    return store, dict(zip(ids, rows, strict=True))


@pytest.fixture
def client(buildings: tuple[LayerStore, dict[int, dict[str, Any]]], tmp_path: Path) -> Iterator[TestClient]:
    with signed_in(
        TestClient(create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path), store=buildings[0]))
    ) as test_client:
        yield test_client


def expected_order(rows: dict[int, dict[str, Any]], sortby: str) -> list[int]:
    """Stable sorts from the last key to the first: the id first, then each key with NULL greatest."""
    order = sorted(rows)
    for token in reversed(sortby.split(",")):
        descending = token.startswith("-")
        name = token.lstrip("+- ")
        order.sort(key=lambda fid: (rows[fid][name] is None, rows[fid][name]), reverse=descending)
    return order


def walk(client: TestClient, params: dict[str, Any]) -> tuple[list[int], int]:
    url: str | None = "/collections/buildings/items"
    seen: list[int] = []
    pages = 0
    while url:
        response = client.get(url, params=params if pages == 0 else None)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [feature["id"] for feature in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        pages += 1
    return seen, pages


SORTS = ["name", "-name", "height_m,-built", "-height_m,name", "built,-surveyed_at,floors", "-listed,-floors", " name"]


@pytest.mark.parametrize("sortby", SORTS)
@pytest.mark.parametrize("encoding", ["database", "python"])
def test_pages_follow_the_sort_order_with_nulls_last_ascending(
    client: TestClient, buildings: tuple[LayerStore, dict[int, dict[str, Any]]], sortby: str, encoding: str
) -> None:
    # GeoJSON in CRS84 is written by PostGIS; another CRS makes Python decode and encode the rows.
    params: dict[str, Any] = {"sortby": sortby, "limit": 7}
    if encoding == "python":
        params["crs"] = "http://www.opengis.net/def/crs/EPSG/0/3857"
    seen, pages = walk(client, params)
    assert seen == expected_order(buildings[1], sortby)
    assert pages == 9


def test_sort_keys_need_not_be_returned_and_combine_with_a_filter(
    client: TestClient, buildings: tuple[LayerStore, dict[int, dict[str, Any]]]
) -> None:
    rows = buildings[1]
    params = {"sortby": "-height_m,built", "properties": "name", "filter": "floors >= 2", "limit": 4}
    seen, _ = walk(client, params)
    wanted = {fid: row for fid, row in rows.items() if row["floors"] is not None and row["floors"] >= 2}
    assert seen == expected_order(wanted, "-height_m,built")
    first = client.get("/collections/buildings/items", params=params).json()
    assert set(first["features"][0]["properties"]) == {"name"}
    assert first["numberMatched"] == len(wanted)


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"sortby": "colour"}, "sortby: collection 'buildings' has no property 'colour'"),
        ({"sortby": "name,-colour"}, "no property 'colour' to sort on"),
        ({"sortby": "geometry"}, "no property 'geometry'"),
        ({"sortby": "name,-name"}, "sortby: 'name' is named twice"),
        ({"sortby": "name,"}, "sortby: expected property names"),
        ({"sortby": "name", "cursor": "12"}, "not a cursor from a next link with a sortby"),
        ({"sortby": "name", "cursor": "e30"}, "not a cursor from a next link with a sortby"),
    ],
)
def test_bad_sortby_is_refused_by_name(client: TestClient, params: dict[str, str], detail: str) -> None:
    response = client.get("/collections/buildings/items", params=params)
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


def test_a_cursor_belongs_to_its_sortby(client: TestClient) -> None:
    body = client.get("/collections/buildings/items", params={"sortby": "name", "limit": 5}).json()
    cursor = next(link["href"] for link in body["links"] if link["rel"] == "next").split("cursor=")[1]
    other = client.get("/collections/buildings/items", params={"sortby": "-name", "cursor": cursor})
    assert other.status_code == 400 and "belongs to another sortby" in other.json()["detail"]
    bad_value = client.get("/collections/buildings/items", params={"sortby": "height_m", "cursor": cursor})
    assert bad_value.status_code == 400


def test_sortables_are_advertised(client: TestClient) -> None:
    collection = client.get("/collections/buildings").json()
    [link] = [link for link in collection["links"] if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/sortables"]
    response = client.get(link["href"])
    assert response.headers["content-type"] == "application/schema+json"
    document = response.json()
    assert set(document["properties"]) == {"name", "height_m", "floors", "built", "surveyed_at", "listed"}
    assert document["properties"]["built"] == {"type": "string", "format": "date"}
    conforms = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/sorting" in conforms
    api = client.get("/api").json()
    for path in ("/collections/{collection_id}/items", "/collections/buildings/items"):
        [sortby] = [p for p in api["paths"][path]["get"]["parameters"] if p["name"] == "sortby"]
        assert sortby["schema"]["type"] == "array"
    [per_layer] = [
        p for p in api["paths"]["/collections/buildings/items"]["get"]["parameters"] if p["name"] == "sortby"
    ]
    assert "-surveyed_at" in per_layer["schema"]["items"]["enum"]


def test_store_sorts_as_of_a_past_time(buildings: tuple[LayerStore, dict[int, dict[str, Any]]]) -> None:
    """The as-of path reads current and history tables through a UNION; its keyset works the same."""
    store, rows = buildings
    before = datetime.now(UTC)
    changed = sorted(rows)[:5]
    for fid in changed:
        store.update_feature("buildings", fid, properties={"height_m": 999.0})
    sort = [SortKey("height_m", descending=True), SortKey("name")]
    everything = store.query("buildings", FeatureQuery(as_of=before, sort=sort))
    assert [f.id for f in everything] == expected_order(rows, "-height_m,name")
    third = everything[2]
    after = store.query(
        "buildings",
        FeatureQuery(
            as_of=before,
            sort=sort,
            after_id=third.id,
            after_values=[third.properties["height_m"], third.properties["name"]],
            limit=5,
        ),
    )
    assert [f.id for f in after] == [f.id for f in everything[3:8]]
    known = [Condition("height_m", Op.NOT_NULL)]  # descending puts NULLs first
    now = store.query("buildings", FeatureQuery(sort=sort, where=known, limit=5))
    assert {f.id for f in now} == set(changed)


def test_deep_pages_use_no_offset(buildings: tuple[LayerStore, dict[int, dict[str, Any]]]) -> None:
    store = buildings[0]
    query = FeatureQuery(sort=[SortKey("name")], after_id=40, after_values=["cuong"], limit=10)
    with store.engine.connect() as conn:
        tables = store.registry.tables(conn, "buildings")
    compiled = feature_select(store.backend, tables, query).compile(dialect=postgresql.dialect())
    sql = str(compiled).upper()
    assert "OFFSET" not in sql and "ORDER BY" in sql  # (SQLite's compiler always writes "OFFSET 0")
    assert {"cuong", 40} <= set(compiled.params.values())  # the keyset is in the WHERE clause
