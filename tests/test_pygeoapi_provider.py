"""``twin.pygeoapi`` under pygeoapi from PyPI, in a venv of its own, against Twin's own answers.

pygeoapi 0.21 (``examples/pygeoapi-requirements.txt``) and Twin's dependencies (from ``pyproject.toml``)
are installed into a venv kept in ``~/.cache/twin`` (or ``TWIN_PYGEOAPI_VENV``), keyed on both lists and
the Python version, so a fresh clone reuses it; Twin itself comes from this checkout (``PYTHONPATH``).
pygeoapi's Starlette app runs under uvicorn on a free port with ``examples/pygeoapi-config.yml`` over a
store filled with the sample city (SpatiaLite, and PostGIS), and ``twin serve`` serves the same store:
items, one item, queryables, CQL2 filters, bbox, sorting and offsets, and VN-2000 output must agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "examples" / "pygeoapi-requirements.txt"
CONFIG = REPO / "examples" / "pygeoapi-config.yml"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
#: pip's words when it cannot reach the package index (then the tests skip, saying so).
_OFFLINE = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "No matching distribution",
)


def _twin_dependencies() -> list[str]:
    return list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


def _venv_folder() -> Path:
    if os.environ.get("TWIN_PYGEOAPI_VENV"):
        return Path(os.environ["TWIN_PYGEOAPI_VENV"]).resolve()
    key = hashlib.sha256(
        "\n".join([REQUIREMENTS.read_text(), *_twin_dependencies(), sys.version]).encode()
    ).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "twin"
    return cache / f"pygeoapi-venv-{key}"


@pytest.fixture(scope="session")
def pygeoapi_python() -> Path:
    """The venv's python, built once (a few minutes) and reused while the requirements stay the same."""
    folder = _venv_folder()
    python = folder / "bin" / "python"
    if (folder / ".complete").exists():
        return python
    shutil.rmtree(folder, ignore_errors=True)  # a build that did not finish
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, "-r", str(REQUIREMENTS), *_twin_dependencies()], capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        if any(word in done.stderr for word in _OFFLINE):
            pytest.skip(f"pip cannot reach the package index to install pygeoapi: {done.stderr.strip()[-300:]}")
        pytest.fail(f"installing pygeoapi failed:\n{done.stderr[-3000:]}")
    (folder / ".complete").write_text(REQUIREMENTS.read_text())
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["spatialite", "postgis"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with the sample city (small, fixed clock), on each backend; ``server`` serves it."""
    data = tmp_path_factory.mktemp(f"pygeoapi-{request.param}")
    environment = {k: v for k, v in os.environ.items() if k != "TWIN_DATABASE_URL"}
    environment |= {"TWIN_DATA_DIR": str(data), "TWIN_API_KEYS": '["k"]', "COLUMNS": "200"}
    if request.param == "postgis":
        environment["TWIN_DATABASE_URL"] = request.getfixturevalue("postgis_url")
        environment["TWIN_STORE_URL"] = environment["TWIN_DATABASE_URL"]
    else:
        environment["TWIN_STORE_URL"] = f"sqlite:///{data / 'twin.sqlite'}"
    command = [sys.executable, "-m", "twin", "samples", "--scale", "0.05", "--as-of", "2026-11-01"]
    subprocess.run(command, env=environment, check=True, capture_output=True)
    # pygeoapi reads the layers that are not public as this key's holder (as_key in the configuration);
    # the test asks Twin with the same key, so both answer for the same reader.
    command = [sys.executable, "-m", "twin", "keys", "add", "pygeoapi", "--role", "gis_client"]
    made = subprocess.run(command, env=environment, check=True, capture_output=True, text=True)
    GIS_KEY["X-API-Key"] = made.stdout.strip().splitlines()[-1]
    return environment | {"TWIN_PYGEOAPI_KEY": "pygeoapi"}


@pytest.fixture(scope="module")
def pygeoapi(env: dict[str, str], pygeoapi_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pygeoapi's Starlette app under uvicorn, configured by examples/pygeoapi-config.yml, over the store."""
    folder = tmp_path_factory.mktemp("pygeoapi")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        **env,
        "PYTHONPATH": str(REPO),
        "PYGEOAPI_CONFIG": str(CONFIG),
        "PYGEOAPI_OPENAPI": str(folder / "openapi.yml"),
        "PYGEOAPI_URL": url,
        "PYGEOAPI_PORT": str(port),
    }
    bin_dir = pygeoapi_python.parent
    subprocess.run(
        [str(bin_dir / "pygeoapi"), "openapi", "generate", str(CONFIG), "--output-file", str(folder / "openapi.yml")],
        env=environment,
        check=True,
        capture_output=True,
    )
    log = (folder / "pygeoapi.log").open("wb")
    command = [str(pygeoapi_python), "-m", "uvicorn", "pygeoapi.starlette_app:APP", "--port", str(port)]
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/conformance?f=json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pygeoapi did not start: {(folder / 'pygeoapi.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


#: The key Twin is asked with (pygeoapi ignores it: it reads as the key named in its configuration).
GIS_KEY: dict[str, str] = {}


def _get(url: str, **params: Any) -> httpx.Response:
    return httpx.get(url, params=params, headers={"Accept": "application/json", **GIS_KEY}, timeout=60)


def _features(url: str, layer: str, **params: Any) -> list[dict[str, Any]]:
    """Every feature an items query selects, from pygeoapi (``f=json``) or Twin, in one answer."""
    answer = _get(f"{url}/collections/{layer}/items", **{"limit": 10000, "f": "json", **params})
    assert answer.status_code == 200, answer.text
    return [{k: f[k] for k in ("id", "geometry", "properties")} for f in answer.json()["features"]]


def _ids(features: list[dict[str, Any]]) -> list[int]:
    return [f["id"] for f in features]


def test_items_and_one_item_are_twins(pygeoapi: str, server: str) -> None:
    for layer in ("wards", "parcels", "incidents", "sensors"):
        theirs, ours = _features(pygeoapi, layer), _features(server, layer)
        assert theirs == ours and len(ours) > 0, layer
    page = _get(f"{pygeoapi}/collections/wards/items", limit=5, f="json").json()
    assert page["numberMatched"] == 21 and page["numberReturned"] == 5
    assert any(link["rel"] == "next" for link in page["links"])
    one = _get(f"{pygeoapi}/collections/parcels/items/7", f="json")
    twin = _get(f"{server}/collections/parcels/items/7")
    assert one.status_code == 200 and one.headers["Content-Crs"] == twin.headers["Content-Crs"]
    assert {k: one.json()[k] for k in ("id", "geometry", "properties")} == {
        k: twin.json()[k] for k in ("id", "geometry", "properties")
    }
    assert _get(f"{pygeoapi}/collections/parcels/items/99999999", f="json").status_code == 404
    assert _get(f"{pygeoapi}/collections/parcels/items/abc", f="json").status_code == 404


def test_queryables_are_the_layer_fields(pygeoapi: str, server: str) -> None:
    for layer in ("incidents", "parcels"):
        theirs = _get(f"{pygeoapi}/collections/{layer}/queryables", f="json").json()["properties"]
        ours = _get(f"{server}/collections/{layer}/queryables").json()["properties"]
        assert list(theirs) == list(ours), layer
        for name, schema in ours.items():
            if name == "geometry":
                continue
            assert theirs[name]["type"] == schema["type"], name
            assert theirs[name].get("format") == schema.get("format"), name
            assert theirs[name].get("enum") == schema.get("enum"), name


#: The same question in pygeoapi's filter language (pygeofilter's ECQL) and in Twin's (CQL2 text). pygeofilter
#: 0.4's ECQL cannot parse ``NOT (`` before a parenthesised predicate; ``NOT a = b`` it can.
FILTERS = [
    ("status='new' AND urgency<>'urgent'", "status='new' AND urgency<>'urgent'"),
    (
        "ward IN ('Ghềnh Ráng','Nhơn Bình') AND resolved_at IS NULL",
        "ward IN ('Ghềnh Ráng','Nhơn Bình') AND resolved_at IS NULL",
    ),
    ("title NOT LIKE '%Quang Trung%' AND status IS NOT NULL", "NOT title LIKE '%Quang Trung%' AND status IS NOT NULL"),
    (
        "INTERSECTS(geometry, POLYGON((109.15 13.7,109.26 13.7,109.26 13.85,109.15 13.85,109.15 13.7)))",
        "S_INTERSECTS(geometry, POLYGON((109.15 13.7,109.26 13.7,109.26 13.85,109.15 13.85,109.15 13.7)))",
    ),
    ("BBOX(geometry, 109.18, 13.74, 109.24, 13.80)", "S_INTERSECTS(geometry, BBOX(109.18, 13.74, 109.24, 13.80))"),
    ("DWITHIN(geometry, POINT(109.22 13.77), 2500, meters)", "S_DWITHIN(geometry, POINT(109.22 13.77), 2500, meters)"),
    ("reported_at AFTER 2026-10-01T00:00:00Z", "T_AFTER(reported_at, TIMESTAMP('2026-10-01T00:00:00Z'))"),
    (
        "reported_at DURING 2026-06-01T00:00:00Z/2026-09-01T00:00:00Z",
        "T_DURING(reported_at, INTERVAL('2026-06-01T00:00:00Z','2026-09-01T00:00:00Z'))",
    ),
    (
        "status='closed' OR (status='new' AND NOT urgency='routine')",
        "status='closed' OR (status='new' AND NOT urgency='routine')",
    ),
]


def test_filters_are_pushed_down_to_twin(pygeoapi: str, server: str) -> None:
    """Each filter (one server start for all of them: the suite shares two cores) gives Twin's features."""
    everything = _ids(_features(server, "incidents"))
    for ecql, cql2_text in FILTERS:
        ours = _features(server, "incidents", filter=cql2_text)
        theirs = _features(pygeoapi, "incidents", filter=ecql)
        assert theirs == ours, ecql
        assert 0 < len(ours) < len(everything), f"{cql2_text} selects some features, not none or all"


def test_cql2_json_body_bbox_sorting_offset_and_datetime(pygeoapi: str, server: str) -> None:
    tree = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "status"}, "new"]},
            {"op": "isNull", "args": [{"property": "resolved_at"}]},
        ],
    }
    posted = httpx.post(
        f"{pygeoapi}/collections/incidents/items",
        params={"f": "json", "limit": 10000},
        content=json.dumps(tree),
        headers={"Content-Type": "application/query-cql-json"},
        timeout=60,
    )
    assert posted.status_code == 200, posted.text
    ours = _features(server, "incidents", filter=json.dumps(tree), **{"filter-lang": "cql2-json"})
    assert _ids(posted.json()["features"]) == _ids(ours) and ours

    box = "109.18,13.74,109.24,13.80"
    assert _features(pygeoapi, "parcels", bbox=box) == _features(server, "parcels", bbox=box)

    ordered = _features(server, "incidents", sortby="-reported_at,ward")
    page = _features(pygeoapi, "incidents", sortby="-reported_at,ward", offset=7, limit=5)
    assert page == ordered[7:12]
    deep = _get(f"{pygeoapi}/collections/incidents/items", f="json", sortby="ward", offset=240, limit=50).json()
    assert _ids(deep["features"]) == _ids(_features(server, "incidents", sortby="ward"))[240:]

    narrow = _features(pygeoapi, "incidents", properties="status,ward", status="new")
    assert narrow == _features(server, "incidents", properties="status,ward", status="new")
    assert all(set(f["properties"]) == {"status", "ward"} for f in narrow) and narrow

    when = "2026-09-01T00:00:00Z/.."
    assert _features(pygeoapi, "incidents", datetime=when) == _features(server, "incidents", datetime=when)
    hits = _get(f"{pygeoapi}/collections/incidents/items", f="json", resulttype="hits").json()
    assert hits["numberMatched"] == len(_features(server, "incidents"))


def test_crs_output_is_twins_vn2000(pygeoapi: str, server: str) -> None:
    for code in ("9217", "4756", "3405", "4326", "3857"):
        crs = f"{EPSG}{code}"
        theirs = _get(f"{pygeoapi}/collections/sensors/items", f="json", limit=10000, crs=crs)
        ours = _get(f"{server}/collections/sensors/items", limit=10000, crs=crs)
        assert theirs.headers["Content-Crs"] == ours.headers["Content-Crs"] == f"<{crs}>"
        assert [f["geometry"] for f in theirs.json()["features"]] == [f["geometry"] for f in ours.json()["features"]]
        one = _get(f"{pygeoapi}/collections/wards/items/2", f="json", crs=crs).json()
        assert one["geometry"] == _get(f"{server}/collections/wards/items/2", crs=crs).json()["geometry"], code
    refused = _get(f"{pygeoapi}/collections/sensors/items", f="json", crs=f"{EPSG}32649")
    assert refused.status_code == 400


def test_bad_requests_say_what_is_wrong(pygeoapi: str) -> None:
    unknown = _get(f"{pygeoapi}/collections/incidents/items", f="json", filter="no_such_field = 1")
    assert unknown.status_code == 400 and "no_such_field" in unknown.json()["description"]
    assert _get(f"{pygeoapi}/collections/incidents/items", f="json", q="ngập").status_code == 400
    exists = _get(f"{pygeoapi}/collections/incidents/items", f="json", filter="status EXISTS")
    assert exists.status_code == 400


#: pygeofilter's ECQL and the CQL2 JSON Twin gets: LIKE wildcards rewritten, NOTs kept, literals typed.
CONVERSIONS = {
    "name LIKE 'a.b%'": {"op": "like", "args": [{"property": "name"}, "a_b%"]},
    "name LIKE 'x_y\\.z'": {"op": "like", "args": [{"property": "name"}, "x\\_y.z"]},
    "name ILIKE 'quy%'": {
        "op": "like",
        "args": [{"op": "casei", "args": [{"property": "name"}]}, {"op": "casei", "args": ["quy%"]}],
    },
    "name NOT LIKE 'a%'": {"op": "not", "args": [{"op": "like", "args": [{"property": "name"}, "a%"]}]},
    "n NOT BETWEEN 1 AND 2": {"op": "not", "args": [{"op": "between", "args": [{"property": "n"}, 1, 2]}]},
    "n NOT IN (1, 2)": {"op": "not", "args": [{"op": "in", "args": [{"property": "n"}, [1, 2]]}]},
    "a = 1 AND b = 2 AND c = 3": {
        "op": "and",
        "args": [{"op": "=", "args": [{"property": p}, v]} for p, v in (("a", 1), ("b", 2), ("c", 3))],
    },
    "t BEFORE 2026-01-02T03:04:05Z": {
        "op": "t_before",
        "args": [{"property": "t"}, {"timestamp": "2026-01-02T03:04:05Z"}],
    },
    "d = DATE('2026-01-02')": {"op": "=", "args": [{"property": "d"}, {"date": "2026-01-02"}]},
    "a + 1 > b": {"op": ">", "args": [{"op": "+", "args": [{"property": "a"}, 1]}, {"property": "b"}]},
}


def test_filter_tree_conversion(pygeoapi_python: Path) -> None:
    """Run in pygeoapi's venv: its parser, our writer."""
    script = (
        "import json, sys\n"
        "from pygeofilter.parsers.ecql import parse\n"
        "from twin.pygeoapi.cql import to_cql2\n"
        "print(json.dumps({text: to_cql2(parse(text)) for text in json.loads(sys.argv[1])}))\n"
    )
    done = subprocess.run(
        [str(pygeoapi_python), "-c", script, json.dumps(list(CONVERSIONS))],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == CONVERSIONS
