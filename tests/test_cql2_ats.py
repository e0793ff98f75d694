"""The CQL2 1.0 Abstract Test Suite over its own GeoPackage, imported with ``twin import`` as it is.

``ats-predicates.json`` holds the standard's 351 predicates with their expected counts; three of
them look like errata in the standard (see ``cql2-examples/README.md``: the data has 3 names starting
"Ch", not 2, and only one "Chiș…"), so they are checked against what the data holds instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point

from layers.features import FeatureInput
from layers.model import LayerDefinition
from layers.store import LayerStore
from tests.conftest import _empty, real_data
from tests.signin import ADMIN_KEY, signed_in
from twin.app import create_app
from twin.settings import TwinSettings

EXAMPLES = "cql2-examples"
LAYERS = ("ne_110m_admin_0_countries", "ne_110m_populated_places_simple", "ne_110m_rivers_lake_centerlines")
#: The errata, with the count the GeoPackage gives: Chișinău, Chicago, Chengdu; and Chișinău alone.
ERRATA = {
    "ACCENTI(name) LIKE accenti('Ch%')": 3,
    "ACCENTI(CASEI(name)) LIKE accenti(casei('Chiș%'))": 1,
    "ACCENTI(CASEI(name)) LIKE accenti(casei('cHis%'))": 1,
}
#: The classes of the standard this suite covers, all of which Twin declares.
CLASSES = (
    "basic-cql2",
    "advanced-comparison-operators",
    "case-insensitive-comparison",
    "accent-insensitive-comparison",
    "basic-spatial-functions",
    "basic-spatial-functions-plus",
    "spatial-functions",
    "temporal-functions",
    "property-property",
    "arithmetic",
)


@pytest.fixture
def ats(store_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The test dataset's three layers, each imported by ``twin import`` into an empty store."""
    gpkg = real_data(f"{EXAMPLES}/data/ne110m4cql2.gpkg")
    _empty(LayerStore.open(store_url)).close()
    env = {**os.environ, "TWIN_DATA_DIR": str(tmp_path)}
    if store_url.startswith("postgresql"):
        env["TWIN_DATABASE_URL"] = store_url
    for layer in LAYERS:
        done = subprocess.run(
            [sys.executable, "-m", "twin", "import", str(gpkg), "--layer", layer, "--source-layer", layer],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    store = LayerStore.open(store_url)
    try:
        with signed_in(
            TestClient(create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path), store=store))
        ) as client:
            yield client
    finally:
        _empty(store).close()


def test_every_predicate_of_the_abstract_test_suite_gives_its_count(ats: TestClient) -> None:
    predicates = json.loads(real_data(f"{EXAMPLES}/ats-predicates.json").read_text())
    assert len(predicates) == 351 and {p["conformance_class"] for p in predicates} == set(CLASSES)
    wrong = []
    for case in predicates:
        text = case["predicate_cql2_text"]
        expected = ERRATA.get(text, case["expected_count"])
        response = ats.get(f"/collections/{case['data_source']}/items", params={"filter": text, "limit": 1000})
        count = response.json()["numberReturned"] if response.status_code == 200 else response.text[:200]
        if count != expected:
            wrong.append((case["conformance_class"], text, count, expected))
    assert wrong == [], f"{len(wrong)} of {len(predicates)} predicates give another count: {wrong[:20]}"


def test_the_classes_that_pass_are_declared_and_no_other(ats: TestClient) -> None:
    declared = set(ats.get("/conformance").json()["conformsTo"])
    prefix = "http://www.opengis.net/spec/cql2/1.0/conf/"
    assert {prefix + c for c in CLASSES} <= declared
    assert prefix + "array-functions" not in declared  # Twin has no array properties
    assert {prefix + "cql2-text", prefix + "cql2-json"} <= declared


@pytest.fixture
def wards(store: LayerStore, tmp_path: Path) -> Iterator[TestClient]:
    store.create_layer(
        LayerDefinition(id="wards", title="Phường", geometry_type="Point", fields=[{"name": "ten", "type": "string"}])
    )
    names = ["Quy Nhơn", "Quy Nhơn Bắc", "Đống Đa", "Nhơn Bình", "Hà Nội", "QUY NHON"]
    store.insert_features(
        "wards", [FeatureInput(Point(109.2, 13.7 + i / 100), {"ten": n}) for i, n in enumerate(names)]
    )
    with signed_in(
        TestClient(create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path), store=store))
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("cql2", "found"),
    [
        ("ACCENTI(CASEI(ten)) = ACCENTI(CASEI('quy nhon'))", ["Quy Nhơn", "QUY NHON"]),
        ("ACCENTI(ten) = ACCENTI('Quy Nhon')", ["Quy Nhơn"]),  # ACCENTI alone keeps case, as CQL2 says
        ("ACCENTI(ten) = ACCENTI('quy nhon')", []),
        ("ACCENTI(CASEI(ten)) LIKE ACCENTI(CASEI('%nhon%'))", ["Quy Nhơn", "Quy Nhơn Bắc", "Nhơn Bình", "QUY NHON"]),
        ("ACCENTI(CASEI(ten)) = ACCENTI(CASEI('dong da'))", ["Đống Đa"]),  # đ is a letter of its own, folded to d
        ("CASEI(ten) = CASEI('hà nội')", ["Hà Nội"]),
        ("ten LIKE 'quy%'", []),  # LIKE is case-sensitive on both databases
    ],
)
def test_vietnamese_names_are_found_without_their_marks(wards: TestClient, cql2: str, found: list[str]) -> None:
    response = wards.get("/collections/wards/items", params={"filter": cql2})
    assert response.status_code == 200, response.text
    assert sorted(f["properties"]["ten"] for f in response.json()["features"]) == sorted(found)
