"""The store contract: the same expectations, run against SpatiaLite and PostGIS.

Distances are checked against pyproj's geodesic on WGS84, computed here
independently of the store.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from layers.errors import ConflictError, InvalidInputError, NotFoundError, PreconditionFailedError
from layers.features import BBox, Condition, FeatureInput, FeatureQuery, Op, TimeRange
from layers.model import LayerDefinition, LayerPatch
from layers.store import LayerStore, LoadMode
from layers.validation import batch_from_features

GEOD = Geod(ellps="WGS84")
CENTRE = (109.22, 13.77)  # Quy Nhơn

POINTS = LayerDefinition.model_validate(
    {
        "id": "sensors",
        "title": "Cảm biến",
        "kind": "sensor",
        "geometry_type": "Point",
        "fields": [
            {"name": "name", "type": "string", "required": True},
            {"name": "kind", "type": "string", "choices": ["pm25", "water_level"]},
            {"name": "value", "type": "number"},
            {"name": "floors", "type": "integer"},
            {"name": "active", "type": "boolean"},
            {"name": "installed", "type": "date"},
            {"name": "observed_at", "type": "datetime"},
        ],
        "time_field": "observed_at",
    }
)
WARDS = LayerDefinition.model_validate(
    {
        "id": "wards",
        "title": "Phường",
        "kind": "admin_area",
        "geometry_type": "MultiPolygon",
        "fields": [{"name": "name", "type": "string", "required": True}],
    }
)


def offset(lon: float, lat: float, azimuth: float, metres: float) -> Point:
    x, y, _ = GEOD.fwd(lon, lat, azimuth, metres)
    return Point(x, y)


def sensor(i: int, geom: Point, **props: object) -> FeatureInput:
    return FeatureInput(geom, {"name": f"Trạm {i}", "kind": "pm25", "value": float(i), **props})


def test_insert_and_read_back_every_type(store: LayerStore) -> None:
    store.create_layer(POINTS)
    props = {
        "name": "Trạm Quy Nhơn",
        "kind": "water_level",
        "value": 1.25,
        "floors": 3,
        "active": True,
        "installed": "2024-05-01",
        "observed_at": "2026-11-01T08:00:00+07:00",
    }
    [fid] = store.insert_features("sensors", [FeatureInput(Point(*CENTRE), props)])
    feature = store.get_feature("sensors", fid)
    assert feature.geometry.equals(Point(*CENTRE))
    assert feature.properties == {
        **props,
        "installed": date(2024, 5, 1),
        "observed_at": datetime(2026, 11, 1, 1, 0, tzinfo=UTC),
    }
    assert feature.version == 1
    with pytest.raises(NotFoundError):
        store.get_feature("sensors", fid + 1000)


def test_multipolygon_layer_accepts_polygons(store: LayerStore) -> None:
    store.create_layer(WARDS)
    [fid] = store.insert_features("wards", [FeatureInput(box(109.2, 13.7, 109.3, 13.8), {"name": "Lê Lợi"})])
    assert isinstance(store.get_feature("wards", fid).geometry, MultiPolygon)


@pytest.mark.parametrize(
    ("geometry", "props", "message"),
    [
        (Point(*CENTRE), {"name": "x", "floors": "three"}, "field 'floors' expects an integer"),
        (Point(*CENTRE), {"name": "x", "kind": "noise"}, "must be one of pm25, water_level"),
        (Point(*CENTRE), {"kind": "pm25"}, "field 'name' is required"),
        (Point(*CENTRE), {"name": "x", "colour": "red"}, "unknown property 'colour'"),
        (LineString([(109, 13), (109.1, 13.1)]), {"name": "x"}, "geometry is a LineString"),
        (Point(580000, 1520000), {"name": "x"}, "not longitude/latitude"),
        (Point(*CENTRE), {"name": "x", "observed_at": "yesterday"}, "ISO-8601 date-time"),
    ],
)
def test_invalid_features_are_refused_and_nothing_is_written(
    store: LayerStore, geometry: object, props: dict[str, object], message: str
) -> None:
    store.create_layer(POINTS)
    store.insert_features("sensors", [sensor(1, Point(*CENTRE))])
    with pytest.raises(InvalidInputError, match=message):
        store.insert_features("sensors", [sensor(2, Point(*CENTRE)), FeatureInput(geometry, props)])  # type: ignore[arg-type]
    assert store.count("sensors") == 1


def test_invalid_polygon_names_the_feature(store: LayerStore) -> None:
    store.create_layer(WARDS)
    bowtie = Polygon([(109.2, 13.7), (109.3, 13.8), (109.3, 13.7), (109.2, 13.8)])
    with pytest.raises(InvalidInputError, match=r"feature 2: invalid geometry: self-intersection at \("):
        store.insert_features(
            "wards", [FeatureInput(box(109, 13, 109.1, 13.1), {"name": "a"}), FeatureInput(bowtie, {"name": "b"})]
        )
    assert store.count("wards") == 0


def test_update_merge_replace_and_optimistic_locking(store: LayerStore) -> None:
    store.create_layer(POINTS)
    [fid] = store.insert_features("sensors", [sensor(1, Point(*CENTRE), floors=2)])
    merged = store.update_feature("sensors", fid, properties={"value": 9.5}, expected_version=1)
    assert merged.version == 2
    assert store.get_feature("sensors", fid).properties["floors"] == 2  # merge keeps other fields
    with pytest.raises(PreconditionFailedError, match="at version 2, not 1"):
        store.update_feature("sensors", fid, properties={"value": 1.0}, expected_version=1)
    moved = Point(109.23, 13.78)
    store.update_feature("sensors", fid, geometry=moved, properties={"name": "Mới"}, replace=True)
    current = store.get_feature("sensors", fid)
    assert current.geometry.equals(moved)
    assert current.properties["name"] == "Mới" and current.properties["floors"] is None
    assert current.version == 3
    with pytest.raises(InvalidInputError, match="'name' is required"):
        store.update_feature("sensors", fid, properties={"value": 1.0}, replace=True)
    assert store.get_feature("sensors", fid).version == 3


def test_history_and_as_of(store: LayerStore) -> None:
    store.create_layer(POINTS)
    [a, b] = store.insert_features("sensors", [sensor(1, Point(*CENTRE)), sensor(2, Point(109.21, 13.76))])
    before_changes = datetime.now(UTC)
    time.sleep(0.01)
    store.update_feature("sensors", a, properties={"value": 100.0})
    store.delete_feature("sensors", b)
    after_changes = datetime.now(UTC)

    assert store.count("sensors") == 1
    assert store.count("sensors", FeatureQuery(as_of=before_changes)) == 2
    assert store.get_feature("sensors", a, as_of=before_changes).properties["value"] == 1.0
    assert store.get_feature("sensors", b, as_of=before_changes).valid_to is not None
    with pytest.raises(NotFoundError, match="as of"):
        store.get_feature("sensors", b, as_of=after_changes)
    versions = store.history("sensors", a)
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].valid_to == versions[1].valid_from
    assert [v.properties["value"] for v in versions] == [1.0, 100.0]
    assert len(store.history("sensors", b)) == 1
    # Spatial and attribute filters apply to past versions too.
    window = BBox(109.205, 13.755, 109.215, 13.765)
    assert [f.id for f in store.query("sensors", FeatureQuery(bbox=window, as_of=before_changes))] == [b]
    assert store.query("sensors", FeatureQuery(bbox=window)) == []


def test_bbox_attribute_filters_paging_and_properties(store: LayerStore) -> None:
    store.create_layer(POINTS)
    lons = np.linspace(109.10, 109.30, 21)
    store.insert_features(
        "sensors", [sensor(i, Point(lon, 13.77), floors=i if i % 2 else None) for i, lon in enumerate(lons)]
    )
    inside = store.query("sensors", FeatureQuery(bbox=BBox(109.195, 13.7, 109.255, 13.8)))
    assert [f.properties["value"] for f in inside] == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]

    def values(*conditions: Condition) -> list[float]:
        return [f.properties["value"] for f in store.query("sensors", FeatureQuery(where=conditions))]

    assert values(Condition("value", Op.GE, 19)) == [19.0, 20.0]
    assert values(Condition("value", Op.LT, "2")) == [0.0, 1.0]  # text from a query string is typed by the field
    assert values(Condition("name", Op.LIKE, "Trạm 1_")) == [float(v) for v in range(10, 20)]
    assert values(Condition("floors", Op.IN, [3, 5])) == [3.0, 5.0]
    assert len(values(Condition("floors", Op.IS_NULL))) == 11
    assert values(Condition("floors", Op.NE, 1), Condition("value", Op.LE, 3)) == [3.0]
    with pytest.raises(InvalidInputError, match="no field 'height'"):
        values(Condition("height", Op.EQ, 1))

    pages, after = [], None
    while page := store.query("sensors", FeatureQuery(limit=8, after_id=after, properties=["name"])):
        pages.append(page)
        after = page[-1].id
    assert [len(p) for p in pages] == [8, 8, 5]
    assert set(pages[0][0].properties) == {"name"}
    assert store.count("sensors", FeatureQuery(where=[Condition("floors", Op.NOT_NULL)])) == 10
    batches = list(store.iter_batches("sensors", batch_size=6))
    assert [len(b) for b in batches] == [6, 6, 6, 3]


def test_bbox_across_the_antimeridian(store: LayerStore) -> None:
    store.create_layer(POINTS)
    store.insert_features("sensors", [sensor(1, Point(179.5, 0)), sensor(2, Point(-179.5, 0)), sensor(3, Point(0, 0))])
    found = store.query("sensors", FeatureQuery(bbox=BBox(179, -1, -179, 1)))
    assert sorted(f.properties["value"] for f in found) == [1.0, 2.0]


def test_time_filter(store: LayerStore) -> None:
    store.create_layer(POINTS)
    store.insert_features(
        "sensors",
        [sensor(i, Point(*CENTRE), observed_at=f"2026-0{i}-15T00:00:00Z") for i in range(1, 6)],
    )
    june = TimeRange(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert [f.properties["value"] for f in store.query("sensors", FeatureQuery(time=june))] == [2.0, 3.0]
    open_start = TimeRange(None, datetime(2026, 1, 31, tzinfo=UTC))
    assert store.count("sensors", FeatureQuery(time=open_start)) == 1


def test_distance_within_in_metres(store: LayerStore) -> None:
    store.create_layer(POINTS)
    rng = np.random.default_rng(7)
    distances = rng.uniform(0, 1000, 200)
    azimuths = rng.uniform(-180, 180, 200)
    store.insert_features(
        "sensors", [sensor(i, offset(*CENTRE, az, d)) for i, (az, d) in enumerate(zip(azimuths, distances))]
    )
    found = store.within_distance("sensors", *CENTRE, 500)
    expected = sorted(i for i, d in enumerate(distances) if d <= 500)
    assert sorted(int(f.properties["value"]) for f in found) == expected
    assert [f.distance_m for f in found] == sorted(f.distance_m for f in found)  # nearest first
    for f in found:
        assert f.distance_m == pytest.approx(distances[int(f.properties["value"])], abs=0.01)


def test_distance_to_polygons_and_lines(store: LayerStore) -> None:
    store.create_layer(WARDS)
    square = box(109.20, 13.76, 109.21, 13.77)
    store.insert_features("wards", [FeatureInput(square, {"name": "Hải Cảng"})])
    east_edge_500m = offset(109.21, 13.765, 90, 480)
    assert [f.properties["name"] for f in store.within_distance("wards", east_edge_500m.x, east_edge_500m.y, 500)] == [
        "Hải Cảng"
    ]
    assert store.within_distance("wards", east_edge_500m.x, east_edge_500m.y, 450) == []
    assert store.within_distance("wards", 109.205, 13.765, 1)[0].distance_m == 0


def test_nearest_k_matches_brute_force(store: LayerStore) -> None:
    store.create_layer(POINTS)
    rng = np.random.default_rng(11)
    lons, lats = rng.uniform(109.1, 109.35, 300), rng.uniform(13.6, 13.9, 300)
    store.insert_features("sensors", [sensor(i, Point(x, y)) for i, (x, y) in enumerate(zip(lons, lats))])
    _, _, truth = GEOD.inv(np.full(300, CENTRE[0]), np.full(300, CENTRE[1]), lons, lats)
    nearest = store.nearest("sensors", *CENTRE, 7)
    assert [int(f.properties["value"]) for f in nearest] == list(np.argsort(truth)[:7])
    assert len(store.nearest("sensors", 0.0, 0.0, 500)) == 300  # fewer features than asked for
    pm = store.nearest("sensors", *CENTRE, 3, where=[Condition("value", Op.GE, 150)])
    assert [int(f.properties["value"]) for f in pm] == [i for i in np.argsort(truth) if i >= 150][:3]


def test_point_in_polygon(store: LayerStore) -> None:
    store.create_layer(WARDS)
    store.insert_features(
        "wards",
        [
            FeatureInput(box(109.20, 13.76, 109.22, 13.78), {"name": "Lê Lợi"}),
            FeatureInput(box(109.22, 13.76, 109.24, 13.78), {"name": "Trần Phú"}),
        ],
    )
    assert [f.properties["name"] for f in store.containing("wards", 109.21, 13.77)] == ["Lê Lợi"]
    assert [f.properties["name"] for f in store.containing("wards", 109.23, 13.77)] == ["Trần Phú"]
    assert store.containing("wards", 109.30, 13.77) == []


def test_layer_lifecycle_and_other_workers_see_changes(store: LayerStore, store_url: str) -> None:
    other_worker = LayerStore.open(store_url)
    try:
        assert other_worker.list_layers() == []
        store.create_layer(POINTS)
        with pytest.raises(ConflictError):
            store.create_layer(POINTS)
        store.insert_features("sensors", [sensor(1, Point(*CENTRE), floors=4)])
        assert [d.id for d in other_worker.list_layers()] == ["sensors"]
        store.alter_layer(
            "sensors",
            LayerPatch(
                title="Trạm quan trắc",
                add_fields=[{"name": "note", "type": "string"}],
                rename_fields={"floors": "levels"},
                drop_fields=["active"],
            ),
        )
        seen = other_worker.get_layer("sensors")
        assert seen.title == "Trạm quan trắc"
        assert [f.name for f in seen.fields] == ["name", "kind", "value", "levels", "installed", "observed_at", "note"]
        [feature] = other_worker.query("sensors")
        assert feature.properties["levels"] == 4 and feature.properties["note"] is None
        with pytest.raises(InvalidInputError, match="unknown field 'nope'"):
            store.alter_layer("sensors", LayerPatch(drop_fields=["nope"]))
        store.drop_layer("sensors")
        assert other_worker.list_layers() == []
        with pytest.raises(NotFoundError):
            other_worker.count("sensors")
    finally:
        other_worker.close()


def test_load_is_one_transaction(store: LayerStore) -> None:
    store.create_layer(POINTS)
    store.insert_features("sensors", [sensor(0, Point(*CENTRE))])

    def batches() -> object:
        yield batch_from_features(POINTS, [Point(109.2, 13.7)] * 3, [{"name": "a"}] * 3)
        raise InvalidInputError("feature 4: broken")

    with pytest.raises(InvalidInputError):
        store.load("sensors", batches(), mode=LoadMode.REPLACE)  # type: ignore[arg-type]
    assert [f.properties["name"] for f in store.query("sensors")] == ["Trạm 0"]

    good = batch_from_features(POINTS, [Point(109.2, 13.7)] * 3, [{"name": "b"}] * 3)
    result = store.load("sensors", [good], mode=LoadMode.REPLACE)
    assert (result.inserted, result.archived) == (3, 1)
    assert store.count("sensors", FeatureQuery(bbox=BBox(109.19, 13.69, 109.21, 13.71))) == 3
    assert store.nearest("sensors", 109.2, 13.7, 1)[0].properties["name"] == "b"  # index rebuilt


def test_load_creates_a_layer_atomically(store: LayerStore) -> None:
    def failing() -> object:
        yield batch_from_features(WARDS, [box(109.2, 13.7, 109.3, 13.8)], [{"name": "x"}])
        raise InvalidInputError("feature 2: broken")

    with pytest.raises(InvalidInputError):
        store.load("wards", failing(), definition=WARDS)  # type: ignore[arg-type]
    assert store.list_layers() == []


def test_bulk_loaded_and_inserted_times_compare_alike(store: LayerStore) -> None:
    store.create_layer(POINTS)
    instant = "2026-03-15T00:00:00Z"  # whole seconds: formats that drop ".000000" would not compare equal
    loaded = batch_from_features(POINTS, [Point(*CENTRE)], [{"name": "bulk", "observed_at": instant}])
    store.load("sensors", [loaded])
    store.insert_features("sensors", [sensor(1, Point(*CENTRE), observed_at=instant)])
    exact = datetime(2026, 3, 15, tzinfo=UTC)
    found = store.query("sensors", FeatureQuery(time=TimeRange(exact, exact)))
    assert sorted(f.properties["name"] for f in found) == ["Trạm 1", "bulk"]
    bulk = next(f for f in found if f.properties["name"] == "bulk")
    assert store.get_feature("sensors", bulk.id, as_of=bulk.valid_from).id == bulk.id


@pytest.mark.parametrize("centre", [CENTRE, (0.0, 0.0004), (179.9995, -65.0), (-73.98, 40.75)])
def test_distance_within_is_exact_at_the_edge(store: LayerStore, centre: tuple[float, float]) -> None:
    """Features a few centimetres either side of the radius, in every direction, at several latitudes."""
    store.create_layer(POINTS)
    features = []
    for i, azimuth in enumerate(range(0, 360, 15)):
        features.append(sensor(2 * i, offset(*centre, azimuth, 499.95)))
        features.append(sensor(2 * i + 1, offset(*centre, azimuth, 500.05)))
    store.insert_features("sensors", features)
    found = store.within_distance("sensors", *centre, 500)
    assert sorted(int(f.properties["value"]) for f in found) == list(range(0, 48, 2))


def test_within_distance_with_a_limit_returns_the_nearest(store: LayerStore) -> None:
    store.create_layer(POINTS)
    rng = np.random.default_rng(5)
    distances = rng.uniform(0, 800, 150)
    store.insert_features(
        "sensors", [sensor(i, offset(*CENTRE, float(rng.uniform(0, 360)), d)) for i, d in enumerate(distances)]
    )
    found = store.within_distance("sensors", *CENTRE, 500, limit=10)
    assert [int(f.properties["value"]) for f in found] == list(np.argsort(distances)[:10])
    assert len(store.within_distance("sensors", *CENTRE, 20, limit=10)) == int((distances <= 20).sum())


def test_migrations_create_what_the_models_describe(store: LayerStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlmodel import SQLModel

    import layers.store.backend

    config = Config()
    config.set_main_option("script_location", str(Path(layers.store.backend.__file__).with_name("migrations")))
    head = ScriptDirectory.from_config(config).get_current_head()
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head
    catalog = {t for t in SQLModel.metadata.tables if t.startswith("twin_")}
    assert {"twin_layer", "twin_catalog", "twin_layer_data", "twin_layer_change"} <= catalog
    about_catalog = [d for d in differences if _table_of(d) in catalog]
    assert about_catalog == []


def _table_of(difference: object) -> str | None:
    """The table an Alembic difference is about (layer and SpatiaLite tables are not in the models)."""
    first = difference[0] if isinstance(difference, list) else difference
    for item in first[1:]:  # type: ignore[index]
        table = getattr(item, "table", item)
        name = getattr(table, "name", None) if not isinstance(table, str) else table
        if name:
            return str(name)
    return None


def test_extent(store: LayerStore) -> None:
    store.create_layer(POINTS)
    assert store.extent("sensors").bbox is None
    store.insert_features(
        "sensors",
        [
            sensor(1, Point(109.10, 13.60), observed_at="2026-01-01T00:00:00Z"),
            sensor(2, Point(109.30, 13.90), observed_at="2026-06-01T00:00:00Z"),
        ],
    )
    extent = store.extent("sensors")
    assert extent.bbox == pytest.approx((109.10, 13.60, 109.30, 13.90), abs=1e-4)
    assert extent.interval == (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
