"""Requests meant to crash or stall the server: each is refused or cut short by name, and the server stays up.

Before the limits of ``layers.filter_limits``, one GET of about 3 KB (a CQL2 text filter with 1,600
nested parentheses, or 1,060 nested ``NOT (``) overflowed the Rust stack of the ``cql2`` parser and
killed the worker; a filter 1,000 deep was a RecursionError (500); a 300-point S_DWITHIN held a core
for 25 s on SpatiaLite. The parser is called in this process too, so a regression crashes the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from shapely.geometry import Point

from layers.errors import InvalidInputError, QueryTimeoutError
from layers.features import FeatureInput, FeatureQuery
from layers.filter_limits import FilterLimits
from layers.model import LayerDefinition
from layers.store import LayerStore
from ogc.params import parse_filter

LAYER = {
    "id": "addresses",
    "title": "Điểm địa chỉ",
    "geometry_type": "Point",
    "fields": [{"name": "name", "type": "string"}, {"name": "so_nha", "type": "integer"}],
}
POINTS = 20_000


def _addresses(n: int = POINTS) -> list[FeatureInput]:
    rng = np.random.default_rng(7)
    lons, lats = rng.uniform(109.15, 109.30, n), rng.uniform(13.70, 13.85, n)
    return [
        FeatureInput(Point(x, y), {"name": f"Số {i} Trần Hưng Đạo", "so_nha": i})
        for i, (x, y) in enumerate(zip(lons, lats, strict=True))
    ]


def _multipoint(n: int) -> str:
    return (
        "MULTIPOINT(" + ", ".join(f"({109.15 + 0.15 * i / n:.5f} {13.70 + 0.15 * i / n:.5f})" for i in range(n)) + ")"
    )


NESTED_PARENTHESES = "(" * 1_600 + "name = 'a'" + ")" * 1_600
NESTED_NOTS = "NOT (" * 1_060 + "name = 'a'" + ")" * 1_060
DEEPER = "(" * 9_000 + "so_nha = 1" + ")" * 9_000  # 18 KB: under the length limit, so depth refuses it
DEEP_JSON = '{"op": "not", "args": [' * 700 + '{"op": "=", "args": [{"property": "so_nha"}, 1]}' + "]}" * 700
LONG_OR = " OR ".join(f"so_nha = {i}" for i in range(1_200))  # SQLite: "Expression tree is too large"
HOSTILE = [
    ("cql2-text", NESTED_PARENTHESES, "filter depth limit"),
    ("cql2-text", NESTED_NOTS, "filter depth limit"),
    ("cql2-text", DEEPER, "filter depth limit"),
    ("cql2-json", DEEP_JSON, "filter depth limit"),
    ("cql2-text", LONG_OR, "more than 500 operators and functions (filter terms limit)"),
    ("cql2-text", "so_nha = 1 AND " + "(" * 20 + "so_nha = 1" + ")" * 20, "filter parentheses limit"),
    ("cql2-text", "x" * 25_000, "limit of 20,000 (filter length)"),
    ("cql2-text", f"S_DWITHIN(geometry, {_multipoint(300)}, 20000)", "S_DWITHIN"),
]


@pytest.mark.parametrize(("language", "text", "named"), HOSTILE, ids=[h[2] + str(i) for i, h in enumerate(HOSTILE)])
def test_the_parser_is_never_handed_a_filter_it_cannot_take(language: str, text: str, named: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInputError) as refused:
        parse_filter(text, language, None)
    assert named in str(refused.value)
    assert time.monotonic() - started < 0.5


def test_limits_are_settings() -> None:
    twelve = "(" * 12 + "so_nha = 1" + ")" * 12
    assert parse_filter(twelve, "cql2-text", None) is not None
    with pytest.raises(InvalidInputError, match="more than 8 grouping parentheses"):
        parse_filter(twelve, "cql2-text", None, FilterLimits(max_parentheses=8))
    assert parse_filter(
        f"S_DWITHIN(geometry, {_multipoint(300)}, 20)", "cql2-text", None, FilterLimits(max_dwithin_points=300)
    )


@pytest.fixture
def env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The server's data folder, with an address layer of 20,000 points, and a read timeout of 2 s."""
    data = Path(env["TWIN_DATA_DIR"])
    data.mkdir(parents=True)
    store = LayerStore.open(f"sqlite:///{(data / 'twin.sqlite').resolve()}")
    store.create_layer(LayerDefinition.model_validate(LAYER))
    store.insert_features("addresses", _addresses())
    store.close()
    return {**env, "TWIN_STATEMENT_TIMEOUT_S": "2"}


def _workers(url: str) -> list[psutil.Process]:
    """The processes that answer on the server's port (uvicorn's workers share its socket)."""
    port = int(url.rsplit(":", 1)[1])
    owners = set()
    for process in psutil.process_iter():
        try:
            if any(
                c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in process.net_connections()
            ):
                owners.add(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
    return sorted(owners, key=lambda p: p.pid)


def test_the_crash_requests_get_400_and_every_worker_stays_up(server: str) -> None:
    items = f"{server}/collections/addresses/items"
    before = {p.pid for p in _workers(server)}
    with httpx.Client(timeout=30, headers={"X-API-Key": "k"}) as client:
        for language, text, named in HOSTILE[:5]:
            for _ in range(3):  # more than once: with two workers, each gets one
                response = client.get(items, params={"filter": text, "filter-lang": language})
                assert response.status_code == 400, response.text[:300]
                assert response.headers["content-type"] == "application/problem+json"
                assert named in response.json()["detail"]
        assert client.get(f"{server}/readyz").status_code == 200
        good = client.get(items, params={"filter": "so_nha < 10", "limit": 100})
        assert good.status_code == 200 and len(good.json()["features"]) == 10
    assert {p.pid for p in _workers(server)} == before and all(p.is_running() for p in _workers(server))


def test_the_costly_distance_search_is_refused_or_bounded(server: str) -> None:
    items = f"{server}/collections/addresses/items"
    with httpx.Client(timeout=60, headers={"X-API-Key": "k"}) as client:
        refused = client.get(items, params={"filter": f"S_DWITHIN(geometry, {_multipoint(300)}, 20000)"})
        assert refused.status_code == 400
        assert "the limit is 100 (filter S_DWITHIN points limit)" in refused.json()["detail"]

        # 100 points, each 20 km around: every address, many times over. About 5 s of SpatiaLite's
        # time; the server's 2 s read limit cuts it short with a 503 that names the setting.
        rss_before = sum(p.memory_info().rss for p in _workers(server))
        started = time.monotonic()
        costly = client.get(items, params={"filter": f"S_DWITHIN(geometry, {_multipoint(100)}, 20000)"})
        elapsed = time.monotonic() - started
        assert costly.status_code == 503, costly.text[:300]
        assert costly.headers["content-type"] == "application/problem+json"
        assert "TWIN_STATEMENT_TIMEOUT_S" in costly.json()["detail"]
        assert elapsed < 4, elapsed
        grown = sum(p.memory_info().rss for p in _workers(server)) - rss_before
        assert grown < 100 * 2**20, f"the workers grew by {grown / 2**20:.0f} MiB"
        # Cut short, not broken: the worker answers the next request on the same connections.
        for _ in range(4):
            assert client.get(items, params={"filter": "so_nha = 5"}).json()["numberMatched"] == 1


# --- the read timeout on each backend ---------------------------------------------------------------

_ENDLESS = {
    "spatialite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
    "postgis": "SELECT pg_sleep(30)",
}
_SLOW = {  # about a second, as a long write statement is
    "spatialite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3e6) "
    "SELECT count(*) FROM n",
    "postgis": "SELECT pg_sleep(1)",
}


@pytest.fixture
def timed_store(store_url: str) -> Iterator[LayerStore]:
    store = LayerStore.open(store_url, read_timeout_s=0.3)
    for layer in store.list_layers():
        store.drop_layer(layer.id)
    store.create_layer(LayerDefinition.model_validate(LAYER))
    yield store
    store.drop_layer("addresses")
    store.close()


def test_a_read_is_stopped_at_its_timeout_and_a_write_is_not(timed_store: LayerStore) -> None:
    backend = timed_store.backend.name
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"0\.3 s a read may take"), timed_store._read() as conn:
        conn.exec_driver_sql(_ENDLESS[backend]).all()
    assert time.monotonic() - started < 3
    with timed_store._write() as conn:  # longer than 0.3 s: writes (imports, indexes) are never cut
        conn.exec_driver_sql(_SLOW[backend]).all()
    assert timed_store.count("addresses") == 0  # the connections the timeouts touched still work


def test_a_streamed_export_slower_than_the_timeout_is_not_cut(timed_store: LayerStore) -> None:
    timed_store.insert_features("addresses", _addresses(3_000))
    seen = 0
    for batch in timed_store.iter_batches("addresses", FeatureQuery(), batch_size=1_000):
        seen += len(batch)
        time.sleep(0.4)  # a slow client: longer than the read timeout between two batches
    assert seen == 3_000


def test_filter_json_depth_counts_objects_not_brackets() -> None:
    shallow = json.dumps({"op": "in", "args": [{"property": "so_nha"}, list(range(100))]})
    assert parse_filter(shallow, "cql2-json", None) is not None


def test_the_geo_libraries_work_when_imported_after_a_spatialite_store_is_opened(tmp_path: Path) -> None:
    """SQLite loads mod_spatialite with RTLD_GLOBAL: its libproj and libgeos would stand in for the
    wheels' own in any module imported afterwards, and the first CRS or WKT call segfaulted."""
    script = f"""
from layers.store import LayerStore
LayerStore.open("sqlite:///{tmp_path / "t.sqlite"}").list_layers()
import geopandas, shapely
from rasterio.crs import CRS
import rio_tiler.io
assert CRS.from_epsg(3857).to_epsg() == 3857
print(geopandas.GeoDataFrame(geometry=[shapely.Point(109.2, 13.77)], crs=4326).to_crs(9217).geometry[0].wkt)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.startswith("POINT (")
