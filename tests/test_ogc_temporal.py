"""CQL2 temporal functions, S_DWITHIN and filter-crs, on both backends, against independent truth.

The truths: the OGC CQL2 Abstract Test Suite's expected counts over its own
Natural Earth data; the ``cql2`` library's own evaluator (``Expr.matches``,
Rust, written apart from our SQL translation) over the features we insert;
pyproj's geodesic distances; pyproj transformations for filter-crs.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import cql2
import pytest
from fastapi.testclient import TestClient
from pyproj import Geod, Transformer
from shapely.geometry import Point

from layers.features import FeatureInput
from layers.io.importer import import_file
from layers.io.sources import ReadOptions
from layers.model import LayerDefinition
from layers.store import LayerStore
from tests.conftest import real_data
from tests.signin import ADMIN_KEY, signed_in
from twin.app import create_app
from twin.settings import TwinSettings

EXAMPLES = "cql2-examples"

EVENTS = LayerDefinition.model_validate(
    {
        "id": "events",
        "title": "Sự kiện",
        "kind": "incident",
        "geometry_type": "Point",
        "fields": [
            {"name": "day", "type": "date"},
            {"name": "opened", "type": "datetime"},
            {"name": "closed", "type": "datetime"},
            {"name": "label", "type": "string"},
        ],
    }
)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _event(rng: random.Random, i: int) -> dict[str, Any]:
    """Times on a coarse grid, so equal endpoints (MEETS, STARTS, EQUALS…) really occur."""
    opened = T0 + timedelta(days=rng.randint(0, 9))
    closed = opened + timedelta(days=rng.randint(0, 4))
    return {
        "day": None if i % 11 == 0 else (T0 + timedelta(days=rng.randint(0, 9))).date(),
        "opened": None if i % 13 == 0 else opened,
        "closed": None if i % 17 == 0 else closed,
        "label": f"e{i}",
    }


@pytest.fixture
def events(store: LayerStore) -> tuple[LayerStore, dict[int, dict[str, Any]], dict[int, Point]]:
    rng = random.Random(2026)
    store.create_layer(EVENTS)
    rows = [_event(rng, i) for i in range(90)]
    points = [Point(109.2 + rng.uniform(-0.05, 0.05), 13.77 + rng.uniform(-0.05, 0.05)) for _ in rows]
    ids = store.insert_features("events", [FeatureInput(p, r) for p, r in zip(points, rows, strict=True)])
    return store, dict(zip(ids, rows, strict=True)), dict(zip(ids, points, strict=True))


@pytest.fixture
def client(events: tuple[LayerStore, Any, Any], tmp_path: Path) -> Iterator[TestClient]:
    with signed_in(
        TestClient(create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path), store=events[0]))
    ) as test_client:
        yield test_client


def matching_ids(client: TestClient, collection: str, **params: str) -> set[int]:
    response = client.get(f"/collections/{collection}/items", params={"limit": "10000", **params})
    assert response.status_code == 200, response.text
    return {feature["id"] for feature in response.json()["features"]}


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value.isoformat() if isinstance(value, date) else value


def oracle(rows: dict[int, dict[str, Any]], text: str) -> set[int]:
    """The ids the cql2 library's evaluator accepts (a NULL property matches nothing).

    cql2 0.6 differs from the standard in two places, so the oracle steps
    around them: it widens a DATE() literal to the whole day (the standard's
    test suite counts a date as its instant: see the ATS test below), so dates
    are handed to it as midnight timestamps; and its T_OVERLAPS lets an
    interval that starts inside the other "overlap" it (fixed in later
    cql2-rs), so those two use Allen's definition directly.
    """
    text = re.sub(r"DATE\('(\d{4}-\d\d-\d\d)'\)", r"TIMESTAMP('\1T00:00:00Z')", text)
    if text.startswith(("T_OVERLAPS", "T_OVERLAPPEDBY")):
        return allen_overlaps(rows, text)
    expression = cql2.Expr(text)
    found = set()
    for fid, row in rows.items():
        properties = {k: _iso(v) for k, v in row.items() if v is not None}
        needed = [name for name in ("day", "opened", "closed") if name in text]
        if any(name not in properties for name in needed):
            continue
        if expression.matches({"type": "Feature", "geometry": None, "properties": properties}):
            found.add(fid)
    return found


def allen_overlaps(rows: dict[int, dict[str, Any]], text: str) -> set[int]:
    """A overlaps B: A starts first, B starts inside A, and A ends inside B; OVERLAPPEDBY swaps them."""
    match = re.fullmatch(r"(T_\w+)\((.*)\)", text)
    assert match
    operator, operands = match.groups()
    depths = itertools.accumulate({"(": 1, ")": -1}.get(char, 0) for char in operands)
    at = next(i for i, (char, depth) in enumerate(zip(operands, depths, strict=True)) if char == "," and depth == 0)
    left_text, right_text = operands[:at].strip(), operands[at + 1 :].strip()
    found = set()
    for fid, row in rows.items():
        left, right = _span(left_text, row), _span(right_text, row)
        if left is None or right is None:
            continue
        a, b = (left, right) if operator == "T_OVERLAPS" else (right, left)
        if a[0] < b[0] < a[1] < b[1]:
            found.add(fid)
    return found


def _span(text: str, row: dict[str, Any]) -> tuple[datetime, datetime] | None:
    ends = re.findall(r"'([^']*)'|(\w+)", text.removeprefix("INTERVAL").removeprefix("TIMESTAMP"))
    values: list[datetime] = []
    for literal, name in ends:
        if literal == "..":
            values.append(datetime.max.replace(tzinfo=UTC) if values else datetime.min.replace(tzinfo=UTC))
        elif literal:
            values.append(datetime.fromisoformat(literal.replace("Z", "+00:00")).replace(tzinfo=UTC))
        elif row[name] is None:
            return None
        elif isinstance(row[name], datetime):
            values.append(row[name])
        else:  # a date is its midnight (UTC)
            values.append(datetime(row[name].year, row[name].month, row[name].day, tzinfo=UTC))
    return (values[0], values[-1])


OPERATORS = [
    "T_AFTER",
    "T_BEFORE",
    "T_CONTAINS",
    "T_DISJOINT",
    "T_DURING",
    "T_EQUALS",
    "T_FINISHEDBY",
    "T_FINISHES",
    "T_INTERSECTS",
    "T_MEETS",
    "T_METBY",
    "T_OVERLAPPEDBY",
    "T_OVERLAPS",
    "T_STARTEDBY",
    "T_STARTS",
]
OPERANDS = [
    ("INTERVAL(opened, closed)", "INTERVAL('2026-03-03T00:00:00Z', '2026-03-07T00:00:00Z')"),
    ("INTERVAL(opened, closed)", "INTERVAL('2026-03-05T00:00:00Z', '..')"),
    ("INTERVAL(opened, closed)", "INTERVAL('..', '2026-03-04T00:00:00Z')"),
    ("INTERVAL('2026-03-02T00:00:00Z', '2026-03-08T00:00:00Z')", "INTERVAL(opened, closed)"),
    ("opened", "TIMESTAMP('2026-03-05T00:00:00Z')"),
    ("opened", "INTERVAL('2026-03-04T00:00:00Z', '2026-03-06T00:00:00Z')"),
    ("day", "DATE('2026-03-05')"),
    ("day", "INTERVAL('2026-03-03', '2026-03-06')"),
]


@pytest.mark.parametrize("operator", OPERATORS)
def test_temporal_functions_agree_with_the_cql2_evaluator(
    client: TestClient, events: tuple[LayerStore, dict[int, dict[str, Any]], Any], operator: str
) -> None:
    rows = events[1]
    for left, right in OPERANDS:
        text = f"{operator}({left}, {right})"
        assert matching_ids(client, "events", filter=text) == oracle(rows, text), text


def test_temporal_functions_combine_and_negate(client: TestClient, events: tuple[LayerStore, Any, Any]) -> None:
    rows = events[1]
    text = "T_DURING(INTERVAL(opened, closed), INTERVAL('2026-03-02T00:00:00Z', '..')) AND label <> 'e5'"
    assert matching_ids(client, "events", filter=text) == oracle(rows, text)
    both = {fid for fid, r in rows.items() if r["opened"] is not None}
    before = matching_ids(client, "events", filter="T_BEFORE(opened, TIMESTAMP('2026-03-05T00:00:00Z'))")
    not_before = matching_ids(client, "events", filter="NOT T_BEFORE(opened, TIMESTAMP('2026-03-05T00:00:00Z'))")
    assert before | not_before == both and not before & not_before  # NULL is unknown either way, as in SQL


def test_cql2_json_temporal_filter(client: TestClient, events: tuple[LayerStore, Any, Any]) -> None:
    tree = {"op": "t_intersects", "args": [{"property": "day"}, {"interval": ["2026-03-04", "2026-03-05"]}]}
    expected = {fid for fid, r in events[1].items() if r["day"] in (date(2026, 3, 4), date(2026, 3, 5))}
    assert matching_ids(client, "events", **{"filter": json.dumps(tree), "filter-lang": "cql2-json"}) == expected


def test_a_date_property_against_a_timestamp_is_its_midnight(
    client: TestClient, events: tuple[LayerStore, dict[int, dict[str, Any]], Any]
) -> None:
    rows = events[1]
    days = {fid: r["day"] for fid, r in rows.items() if r["day"] is not None}
    noon = "TIMESTAMP('2026-03-05T12:00:00Z')"
    assert matching_ids(client, "events", filter=f"T_AFTER(day, {noon})") == {
        fid for fid, d in days.items() if d > date(2026, 3, 5)
    }
    assert matching_ids(client, "events", filter=f"T_BEFORE(day, {noon})") == {
        fid for fid, d in days.items() if d <= date(2026, 3, 5)
    }
    assert matching_ids(client, "events", filter=f"T_EQUALS(day, {noon})") == set()
    midnight = "TIMESTAMP('2026-03-05T00:00:00Z')"
    assert matching_ids(client, "events", filter=f"T_EQUALS(day, {midnight})") == {
        fid for fid, d in days.items() if d == date(2026, 3, 5)
    }


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("T_AFTER(label, TIMESTAMP('2026-03-05T00:00:00Z'))", "T_AFTER compares dates and times; 'label' is string"),
        ("T_AFTER(colour, TIMESTAMP('2026-03-05T00:00:00Z'))", "has no property 'colour'"),
        ("T_DURING(opened, INTERVAL('2026-03-05', '2026-03-01'))", "ends before it starts"),
        ("S_DWITHIN(geometry, POLYGON((0 0, 1 0, 1 1, 0 0)), 10)", "S_DWITHIN measures from a point"),
        ("S_DWITHIN(geometry, POINT(109.2 13.7), 10, feet)", "S_DWITHIN takes distances in metres"),
        ("S_DWITHIN(geometry, POINT(109.2 13.7), 30000000)", "distance must lie in"),
    ],
)
def test_bad_temporal_and_distance_filters_are_refused_by_name(client: TestClient, text: str, detail: str) -> None:
    response = client.get("/collections/events/items", params={"filter": text})
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


def test_s_dwithin_measures_metres_on_the_ellipsoid(
    client: TestClient, events: tuple[LayerStore, Any, dict[int, Point]]
) -> None:
    points = events[2]
    geod = Geod(ellps="WGS84")
    centre = (109.2, 13.77)
    distances = {fid: geod.inv(centre[0], centre[1], p.x, p.y)[2] for fid, p in points.items()}
    ranked = sorted(distances.values())
    radius = (ranked[29] + ranked[30]) / 2  # halfway between two features: no feature on the edge
    expected = {fid for fid, d in distances.items() if d <= radius}
    assert len(expected) == 30
    text = f"S_DWITHIN(geometry, POINT({centre[0]} {centre[1]}), {radius})"
    assert matching_ids(client, "events", filter=text) == expected
    assert matching_ids(client, "events", filter=text[:-1] + ", meters)") == expected
    other = (109.23, 13.74)
    far = {fid for fid, p in points.items() if geod.inv(other[0], other[1], p.x, p.y)[2] <= 2_000}
    multi = f"S_DWITHIN(geometry, MULTIPOINT(({centre[0]} {centre[1]}), ({other[0]} {other[1]})), 2000)"
    near = {fid for fid, d in distances.items() if d <= 2_000}
    assert matching_ids(client, "events", filter=multi) == near | far
    assert (
        "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions"
        in client.get("/conformance").json()["conformsTo"]
    )


@pytest.mark.parametrize("code", ["9217", "3405", "3857", "4756", "4326"])
def test_filter_crs_redraws_filter_geometries_in_crs84(client: TestClient, code: str) -> None:
    west, south, east, north = 109.18, 13.75, 109.22, 13.79
    crs84 = f"POLYGON(({west} {south}, {east} {south}, {east} {north}, {west} {north}, {west} {south}))"
    expected = matching_ids(client, "events", filter=f"S_INTERSECTS(geometry, {crs84})")
    assert 5 < len(expected) < 85
    to_crs = Transformer.from_crs("OGC:CRS84", f"EPSG:{code}")
    ring = [(west, south), (east, south), (east, north), (west, north), (west, south)]
    # Densified edges: a straight edge in one CRS bends in another.
    dense = [
        (x0 + (x1 - x0) * k / 50, y0 + (y1 - y0) * k / 50)
        for (x0, y0), (x1, y1) in itertools.pairwise(ring)
        for k in range(50)
    ] + [ring[0]]
    coords = ", ".join("{:.6f} {:.6f}".format(*to_crs.transform(x, y)) for x, y in dense)
    uri = f"http://www.opengis.net/def/crs/EPSG/0/{code}"
    found = matching_ids(client, "events", filter=f"S_INTERSECTS(geometry, POLYGON(({coords})))", **{"filter-crs": uri})
    assert found == expected
    if code == "4326":  # latitude first, in a BBOX too
        bbox = f"S_INTERSECTS(geometry, BBOX({south}, {west}, {north}, {east}))"
        assert matching_ids(client, "events", filter=bbox, **{"filter-crs": uri}) == expected


def test_unsupported_filter_crs_is_refused(client: TestClient) -> None:
    response = client.get(
        "/collections/events/items",
        params={
            "filter": "S_INTERSECTS(geometry, POINT(0 0))",
            "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/2154",
        },
    )
    assert response.status_code == 400 and "filter-crs" in response.json()["detail"]


# --- the standard's own test suite ----------------------------------------------------------


@pytest.fixture
def places(store: LayerStore, tmp_path: Path) -> Iterator[TestClient]:
    gpkg = real_data(f"{EXAMPLES}/data/ne110m4cql2.gpkg")
    import_file(store, gpkg, "places", options=ReadOptions(source_layer="ne_110m_populated_places_simple"))
    with signed_in(
        TestClient(create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path), store=store))
    ) as test_client:
        yield test_client


def test_cql2_abstract_test_suite_temporal_predicates(places: TestClient) -> None:
    predicates = json.loads(real_data(f"{EXAMPLES}/ats-predicates.json").read_text())
    temporal = [
        p
        for p in predicates
        if p["data_source"] == "ne_110m_populated_places_simple"
        and ("t_" in p["predicate_cql2_text"].lower())
        and p["conformance_class"] in ("temporal-functions", "property-property")
    ]
    assert len(temporal) >= 40
    wrong = []
    for case in temporal:
        text = case["predicate_cql2_text"]
        response = places.get("/collections/places/items", params={"filter": text, "limit": 1000})
        count = response.json().get("numberReturned") if response.status_code == 200 else response.text
        if count != case["expected_count"]:
            wrong.append((text, count, case["expected_count"]))
    assert wrong == []
