"""Property-based tests from the OpenAPI document (schemathesis): no 5xx, and no answer the document does not describe.

Every operation — the OGC reads, the transactions and the admin API — gets generated
requests, valid and invalid, against a store holding a small sample city.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from layers.features import FeatureInput
from layers.io.importer import import_file
from layers.model import LayerDefinition
from layers.store import LayerStore, LoadMode
from tests.signin import ADMIN_KEY, signed_in
from twin.app import create_app
from twin.samplecity import generate_city
from twin.settings import TwinSettings


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LayerStore]:
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    store = LayerStore.open(f"sqlite:///{folder / 'twin.sqlite'}")
    for sample in generate_city(folder / "samples", scale=0.005):
        definition = LayerDefinition.model_validate(sample.definition)
        import_file(store, sample.path, definition.id, mode=LoadMode.REPLACE, definition=definition)
    yield store
    store.close()


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def test_every_operation_keeps_its_promises(sample_store: LayerStore, tmp_path: Path) -> None:
    # schemathesis's pytest plugin does not run under pytest 9; its Hypothesis strategies do.
    app = create_app(TwinSettings(data_dir=tmp_path, api_keys=["k", ADMIN_KEY]), store=sample_store)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=not os.environ.get("TWIN_FUZZ"),  # CI replays fixed cases; TWIN_FUZZ=1 explores
        )
        def keeps_its_promises(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), "X-API-Key": "k"}
            case.call_and_validate(checks=CHECKS)

        keeps_its_promises()


# --- hostile shapes, on both backends ----------------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\ud800", "a\x00b", "\x00", "\udfff\ud800", "'", "''", "\\", "%", "_", "é\u0301", "\U0010ffff"]),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from(["1e400", "-1e400", "nan", "inf", "9" * 400, "-0", "0x10"]),
    st.integers(1, 3_000).map(lambda n: "(" * n + "name = 'a'" + ")" * n),
    st.integers(1, 3_000).map(lambda n: "NOT (" * n + "n = 1" + ")" * n),
)
PARAMETERS = st.sampled_from(
    ["filter", "bbox", "datetime", "limit", "sortby", "properties", "cursor", "crs", "bbox-crs", "name", "n", "f"]
)
GEOMETRY_TYPES = st.sampled_from(
    ["Circle", "Point", "Polygon", "MultiPolygon", "GeometryCollection", "Feature", "", "point", "\ud800"]
)
COORDINATES = st.recursive(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.text(max_size=3),
        st.none(),
    ),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=20,
)
PROPERTY_VALUES = st.one_of(
    HOSTILE_TEXT, st.integers(min_value=-(2**80), max_value=2**80), st.floats(), st.booleans(), st.none()
)


def _escaped(text: str) -> str:
    """Percent-encoding as a hostile client may send it: a lone surrogate as its (invalid) UTF-8 bytes."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@pytest.fixture
def hostile_client(store: LayerStore, tmp_path: Path) -> Iterator[TestClient]:
    store.create_layer(
        LayerDefinition.model_validate(
            {
                "id": "p",
                "title": "Điểm",
                "geometry_type": "Point",
                "fields": [{"name": "name", "type": "string"}, {"name": "n", "type": "integer"}],
            }
        )
    )
    store.insert_features("p", [FeatureInput(Point(109.2, 13.77), {"name": "Quy Nhơn", "n": 1})])
    app = create_app(TwinSettings(data_dir=tmp_path, api_keys=["k", ADMIN_KEY]), store=store)
    with signed_in(TestClient(app, raise_server_exceptions=False)) as client:
        yield client


def test_hostile_requests_get_4xx_never_5xx(hostile_client: TestClient) -> None:
    failures: list[tuple[str, int, str]] = []
    examples = 40 if not os.environ.get("TWIN_FUZZ") else 400

    @given(name=PARAMETERS, value=HOSTILE_TEXT, path=st.sampled_from(["items", "counts", "queryables"]))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=not os.environ.get("TWIN_FUZZ"))
    def reads(name: str, value: str, path: str) -> None:
        extra = "groupBy=name&" if path == "counts" else ""
        url = f"/collections/p/{path}?{extra}{_escaped(name)}={_escaped(value)}"
        response = hostile_client.get(url)
        if response.status_code >= 500:
            failures.append((url[:200], response.status_code, response.text[:200]))

    @given(kind=GEOMETRY_TYPES, coordinates=COORDINATES, props=st.dictionaries(HOSTILE_TEXT, PROPERTY_VALUES))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=not os.environ.get("TWIN_FUZZ"))
    def writes(kind: str, coordinates: object, props: dict[str, object]) -> None:
        feature = {"type": "Feature", "geometry": {"type": kind, "coordinates": coordinates}, "properties": props}
        body = json.dumps(feature, ensure_ascii=True)  # "\ud800" travels escaped, as JSON allows
        response = hostile_client.post(
            "/collections/p/items",
            content=body,
            headers={"X-API-Key": "k", "Content-Type": "application/geo+json"},
        )
        if response.status_code >= 500:
            failures.append((body[:200], response.status_code, response.text[:200]))

    reads()
    writes()
    deep = '{"type": "Feature", "geometry": null, "properties": {"name": ' + "[" * 50_000 + "]" * 50_000 + "}}"
    for body in (deep, "[" * 100_000, '{"type": "Feature"' + " " * 10):
        response = hostile_client.post("/collections/p/items", content=body, headers={"X-API-Key": "k"})
        assert response.status_code == 400, response.text[:300]
    too_large = hostile_client.post(
        "/collections/p/items",
        content=b" " * (17 * 2**20),
        headers={"X-API-Key": "k", "Content-Type": "application/json"},
    )
    assert too_large.status_code == 413 and too_large.headers["content-type"] == "application/problem+json"
    assert failures == []
    assert hostile_client.get("/collections/p/items").json()["numberReturned"] >= 1  # still answering
