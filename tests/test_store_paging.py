"""``LayerStore.page``: statements prepared once per shape answer exactly what freshly built ones do.

``store.query`` builds its statement afresh every time (``feature_select``);
``store.page`` reuses a statement per query shape with new values bound. Both
run on both backends over the same rows, for many shapes and values.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from shapely.geometry import Point

from layers.features import BBox, Condition, FeatureInput, FeatureQuery, Op, SortKey
from layers.model import LayerDefinition, LayerPatch
from layers.store import LayerStore

SITES = LayerDefinition.model_validate(
    {
        "id": "sites",
        "title": "Sites",
        "kind": "generic",
        "geometry_type": "Point",
        "fields": [
            {"name": "kind", "type": "string"},
            {"name": "level", "type": "integer"},
            {"name": "seen_at", "type": "datetime"},
        ],
    }
)


@pytest.fixture
def sites(store: LayerStore) -> LayerStore:
    rng = random.Random(11)
    store.create_layer(SITES)
    features = []
    for i in range(120):
        lon = rng.choice([-179.9, 179.9, 109.2]) + rng.uniform(-0.05, 0.05)
        properties = {
            "kind": rng.choice(["a", "b", None]),
            "level": rng.choice([1, 2, 3, None]),
            "seen_at": None if i % 5 == 0 else datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randint(0, 5)),
        }
        features.append(FeatureInput(Point(lon, rng.uniform(-1, 1)), properties))
    store.insert_features("sites", features)
    return store


QUERIES = [
    FeatureQuery(limit=7),
    FeatureQuery(limit=7, bbox=BBox(109.0, -2, 109.5, 2)),
    FeatureQuery(limit=7, bbox=BBox(179.0, -2, -179.0, 2)),  # across the antimeridian: two boxes
    FeatureQuery(limit=7, where=[Condition("kind", Op.EQ, "a"), Condition("level", Op.GE, 2)]),
    FeatureQuery(limit=7, where=[Condition("kind", Op.IS_NULL), Condition("level", Op.NOT_NULL)]),
    FeatureQuery(limit=7, sort=[SortKey("level", descending=True), SortKey("seen_at")], properties=["kind"]),
    FeatureQuery(limit=7, sort=[SortKey("kind")], bbox=BBox(179.0, -2, -179.0, 2)),
]


def walk(store: LayerStore, query: FeatureQuery, geojson: bool) -> list[int]:
    seen: list[int] = []
    after: tuple[Any, ...] | None = None
    while True:
        current = query
        if after is not None:
            current = FeatureQuery(**{**_fields(query), "after_id": after[-1], "after_values": list(after[:-1])})
        page = store.page("sites", lambda _layer, q=current: q, geojson=geojson, count_cap=50)  # type: ignore[misc]
        seen += page.ids
        if page.next_after is None:
            return seen
        after = page.next_after


def _fields(query: FeatureQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in query.__slots__}  # type: ignore[attr-defined]


@pytest.mark.parametrize("geojson", [True, False])
@pytest.mark.parametrize("query", QUERIES, ids=range(len(QUERIES)))
def test_pages_walk_exactly_what_a_fresh_statement_returns(
    sites: LayerStore, query: FeatureQuery, geojson: bool
) -> None:
    everything = [f.id for f in sites.query("sites", FeatureQuery(**{**_fields(query), "limit": None}))]
    assert walk(sites, query, geojson) == everything
    first = sites.page("sites", lambda _layer: query, geojson=geojson, count_cap=50)
    expected = len(everything) if len(everything) <= 50 else None
    assert first.matched == expected


def test_a_changed_layer_gets_new_statements(sites: LayerStore) -> None:
    query = FeatureQuery(limit=5, where=[Condition("kind", Op.EQ, "a")])
    before = sites.page("sites", lambda _layer: query)
    assert before.features is not None and set(before.features[0].properties) == {"kind", "level", "seen_at"}
    sites.alter_layer("sites", LayerPatch.model_validate({"rename_fields": {"kind": "category"}}))
    renamed = FeatureQuery(limit=5, where=[Condition("category", Op.EQ, "a")])
    after = sites.page("sites", lambda _layer: renamed)
    assert after.ids == before.ids
    assert after.features is not None and set(after.features[0].properties) == {"category", "level", "seen_at"}
