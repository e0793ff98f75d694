"""Layer extents are measured once per data version: right after every kind of write, in every process,
and without scanning the layer again while nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import Point

from layers.features import FeatureInput
from layers.model import LayerDefinition, LayerPatch
from layers.store import LayerStore
from layers.validation import RowBatch

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
REPORTS = LayerDefinition.model_validate(
    {
        "id": "reports",
        "title": "Phản ánh",
        "kind": "incident",
        "geometry_type": "Point",
        "time_field": "opened",
        "end_time_field": "closed",
        "fields": [{"name": "opened", "type": "datetime"}, {"name": "closed", "type": "datetime"}],
    }
)
HEADERS = {"X-API-Key": "k"}


def _report(lon: float, lat: float, opened: datetime, days: int = 1) -> FeatureInput:
    return FeatureInput(Point(lon, lat), {"opened": opened, "closed": opened + timedelta(days=days)})


@contextmanager
def statements(store: LayerStore) -> Iterator[list[str]]:
    """The SQL statements the store runs meanwhile."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", note)


def test_the_extent_follows_every_write_and_is_not_measured_again_meanwhile(store: LayerStore) -> None:
    store.create_layer(REPORTS)
    assert store.extent("reports").interval is None
    [first] = store.insert_features("reports", [_report(109.20, 13.77, T0)])
    assert store.extent("reports").interval == (T0, T0 + timedelta(days=1))
    with statements(store) as seen:
        assert store.extent("reports").interval == (T0, T0 + timedelta(days=1))
    assert len([s for s in seen if "twin_layer_data" in s]) == 1 and not [s for s in seen if "l_reports" in s], seen

    store.insert_features("reports", [_report(109.21, 13.78, T0 + timedelta(days=3), days=2)])
    assert store.extent("reports").interval == (T0, T0 + timedelta(days=5))
    store.update_feature("reports", first, properties={"opened": T0 - timedelta(days=1)})
    assert store.extent("reports").interval == (T0 - timedelta(days=1), T0 + timedelta(days=5))
    store.delete_feature("reports", first)
    assert store.extent("reports").interval == (T0 + timedelta(days=3), T0 + timedelta(days=5))

    # A bulk load far away: the box grows too (loads refresh PostGIS's statistics, which its box comes from).
    far = RowBatch(np.array([Point(110.5, 15.0)]), {"opened": [T0 + timedelta(days=9)], "closed": [None]})
    store.load("reports", [far])
    extent = store.extent("reports")
    assert extent.bbox is not None and extent.bbox[2] >= 110.5 - 1e-3 and extent.bbox[3] >= 15.0 - 1e-3
    assert extent.interval is not None and extent.interval[0] == T0 + timedelta(days=3)

    # A redefinition moves the version too: without a time field, no interval.
    store.alter_layer("reports", LayerPatch.model_validate({"time_field": None, "end_time_field": None}))
    assert store.extent("reports").interval is None


def test_another_process_sees_the_extent_move_after_a_write(store_url: str, store: LayerStore) -> None:
    """A second store on the same database stands for another worker: its cache is its own."""
    store.create_layer(REPORTS)
    store.insert_features("reports", [_report(109.20, 13.77, T0)])
    other = LayerStore.open(store_url)
    try:
        assert other.extent("reports").interval == (T0, T0 + timedelta(days=1))
        store.insert_features("reports", [_report(109.20, 13.77, T0 + timedelta(days=7))])
        assert other.extent("reports").interval == (T0, T0 + timedelta(days=8))
        store.drop_layer("reports")
        store.create_layer(REPORTS)
        assert other.extent("reports").interval is None
        store.insert_features("reports", [_report(109.20, 13.77, T0 + timedelta(days=20))])
        assert other.extent("reports").interval == (T0 + timedelta(days=20), T0 + timedelta(days=21))
    finally:
        other.close()


def test_collections_from_both_workers_show_a_write_at_once(server: str) -> None:
    layer = REPORTS.model_dump(mode="json") | {"end_time_field": None}
    assert httpx.post(f"{server}/admin/layers", json=layer, headers=HEADERS).status_code == 201

    def feature(opened: datetime) -> dict[str, object]:
        geometry = shapely.geometry.mapping(Point(109.2, 13.77))
        return {"type": "Feature", "geometry": geometry, "properties": {"opened": opened.isoformat()}}

    items = f"{server}/collections/reports/items"
    assert httpx.post(items, json=feature(T0), headers=HEADERS).status_code == 201

    def intervals() -> set[tuple[str, ...]]:
        found = set()
        for _ in range(8):  # requests spread over both workers
            [reports] = [
                c
                for c in httpx.get(f"{server}/collections", headers=HEADERS).json()["collections"]
                if c["id"] == "reports"
            ]
            found.add(tuple(reports["extent"]["temporal"]["interval"][0]))
        return found

    assert intervals() == {("2026-03-01T08:00:00Z", "2026-03-01T08:00:00Z")}
    assert httpx.post(items, json=feature(T0 + timedelta(hours=5)), headers=HEADERS).status_code == 201
    assert intervals() == {("2026-03-01T08:00:00Z", "2026-03-01T13:00:00Z")}
