"""Property-based tests from the OpenAPI document (schemathesis): no 5xx, and no answer the document does not describe.

Every operation — the OGC reads, the transactions and the admin API — gets generated
requests, valid and invalid, against a store holding a small sample city.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from layers.io.importer import import_file
from layers.model import LayerDefinition
from layers.store import LayerStore, LoadMode
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
    app = create_app(TwinSettings(data_dir=tmp_path, api_keys=["k"]), store=sample_store)
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
