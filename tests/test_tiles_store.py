"""Vector tiles from the store, on both backends, against truth computed here with pyproj and shapely.

Both backends must put the same features, properties and (to within a tile
unit) the same geometry in a tile: PostGIS builds it with ST_AsMVT, SpatiaLite
in Python. Data versions and change boxes drive the tile cache.
"""

from __future__ import annotations

from datetime import UTC, datetime

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
import shapely.affinity
from pyproj import Transformer
from shapely.geometry import Point, Polygon, box, shape

from layers.errors import InvalidInputError
from layers.features import Condition, FeatureInput, Op
from layers.model import LayerDefinition, LayerPatch
from layers.store import LayerStore
from layers.vectortiles import AGGREGATE_GRID, MAX_FEATURES, TileSpec
from tiles.grid import TileAddress, tile_spec

TO_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)
Z, X, Y = 14, 13162, 7559  # the tile over central Quy Nhơn
SPEC = tile_spec(TileAddress("WebMercatorQuad", Z, X, Y))

POINTS = LayerDefinition.model_validate(
    {
        "id": "cameras",
        "title": "Camera giám sát",
        "kind": "camera",
        "geometry_type": "Point",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "level", "type": "integer"},
            {"name": "score", "type": "number"},
            {"name": "online", "type": "boolean"},
            {"name": "seen_at", "type": "datetime"},
            {"name": "note", "type": "string"},
        ],
    }
)
PARCELS = LayerDefinition.model_validate(
    {"id": "parcels", "title": "Thửa đất", "geometry_type": "Polygon", "fields": [{"name": "code", "type": "string"}]}
)


def tile_units(spec: TileSpec, lon: float, lat: float) -> tuple[float, float]:
    """Position in tile units, y down, computed independently of the code under test."""
    x, y = TO_MERCATOR.transform(lon, lat)
    size = spec.east - spec.west
    return (x - spec.west) / size * spec.extent, (spec.north - y) / size * spec.extent


def decode(data: bytes) -> dict[str, list[dict]]:
    decoded = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    return {name: layer["features"] for name, layer in decoded.items()}


def lonlat_grid(n: int, margin_units: float = -200) -> list[tuple[float, float]]:
    """n×n points spread over the tile and past its edges by ``margin_units`` (negative: around it)."""
    w, s, e, north = SPEC.lonlat_box(buffered=False)
    dx, dy = (e - w) * (1 - 2 * margin_units / 4096), (north - s) * (1 - 2 * margin_units / 4096)
    cx, cy = (w + e) / 2, (s + north) / 2
    return [(cx - dx / 2 + dx * i / (n - 1), cy - dy / 2 + dy * j / (n - 1)) for i in range(n) for j in range(n)]


def test_points_in_a_tile_with_their_properties(store: LayerStore) -> None:
    store.create_layer(POINTS)
    where = lonlat_grid(13)
    when = datetime(2026, 3, 1, 1, 2, 3, 456_000, tzinfo=UTC)
    fids = store.insert_features(
        "cameras",
        [
            FeatureInput(
                Point(lon, lat),
                {
                    "name": f"Camera số {i} — Quy Nhơn",
                    "level": i,
                    "score": i / 4,
                    "online": i % 2 == 0,
                    "seen_at": when,
                    "note": None,
                },
            )
            for i, (lon, lat) in enumerate(where)
        ],
    )
    tile = store.vector_tile("cameras", SPEC)
    features = decode(tile.data)["cameras"]
    expected = {}
    for fid, (lon, lat) in zip(fids, where, strict=True):
        tx, ty = tile_units(SPEC, lon, lat)
        if -64 <= tx <= 4096 + 64 and -64 <= ty <= 4096 + 64:
            expected[fid] = (tx, ty)
    assert 0 < len(expected) < len(where)
    assert tile.features == len(expected) and not tile.aggregated
    assert {f["id"] for f in features} == set(expected)
    for feature in features:
        x, y = feature["geometry"]["coordinates"]
        ex, ey = expected[feature["id"]]
        assert abs(x - ex) <= 0.51 and abs(y - ey) <= 0.51
        props = feature["properties"]
        i = props["level"]
        assert props == {
            "name": f"Camera số {i} — Quy Nhơn",
            "level": i,
            "score": pytest.approx(i / 4),
            "online": i % 2 == 0,
            "seen_at": "2026-03-01T01:02:03Z",
        }


def test_properties_and_conditions_narrow_a_tile(store: LayerStore) -> None:
    store.create_layer(POINTS)
    where = lonlat_grid(5, margin_units=400)
    store.insert_features(
        "cameras", [FeatureInput(Point(p), {"name": f"c{i}", "level": i % 3}) for i, p in enumerate(where)]
    )
    tile = store.vector_tile("cameras", SPEC, properties=["name"], where=[Condition("level", Op.EQ, 1)])
    features = decode(tile.data)["cameras"]
    assert len(features) == sum(1 for i in range(25) if i % 3 == 1)
    assert all(set(f["properties"]) == {"name"} for f in features)


def test_a_definition_looked_up_earlier_gives_way_to_the_current_layer(store: LayerStore, store_url: str) -> None:
    """A tile asked for with a definition from an earlier lookup (the tile service's way, to read the
    catalog once a request) is drawn with the layer as it is once this worker has seen a change."""
    store.create_layer(POINTS)
    w, s, e, n = SPEC.lonlat_box(buffered=False)
    store.insert_features("cameras", [FeatureInput(Point((w + e) / 2, (s + n) / 2), {"name": "Cổng A", "level": 3})])
    earlier = store.get_layer("cameras")
    assert decode(store.vector_tile(earlier, SPEC).data)["cameras"][0]["properties"]["name"] == "Cổng A"
    other_worker = LayerStore.open(store_url)
    try:
        other_worker.alter_layer("cameras", LayerPatch(rename_fields={"name": "ten"}, drop_fields=["level"]))
    finally:
        other_worker.close()
    current = store.get_layer("cameras")  # this worker reads the new catalog
    for asked in (earlier, current):
        [feature] = decode(store.vector_tile(asked, SPEC).data)["cameras"]
        assert feature["properties"] == {"ten": "Cổng A"}


def test_polygons_are_clipped_to_the_buffer(store: LayerStore) -> None:
    store.create_layer(PARCELS)
    w, s, e, n = SPEC.lonlat_box(buffered=False)
    cx, cy = (w + e) / 2, (s + n) / 2
    width = e - w
    inside = box(cx - width / 10, cy - width / 10, cx + width / 10, cy + width / 10)
    across = box(w - width / 2, cy, cx, cy + width / 8)  # crosses the west edge
    outside = box(e + width / 4, cy, e + width / 2, cy + width / 8)  # beyond the buffer
    fids = store.insert_features(
        "parcels", [FeatureInput(g, {"code": c}) for g, c in ((inside, "A"), (across, "B"), (outside, "C"))]
    )
    features = {f["id"]: f for f in decode(store.vector_tile("parcels", SPEC).data)["parcels"]}
    assert set(features) == {fids[0], fids[1]}
    clipped = shape(features[fids[1]]["geometry"])
    minx, _, maxx, _ = clipped.bounds
    assert minx == -64  # clipped at the buffer's edge
    assert abs(maxx - 2048) <= 1
    square = shape(features[fids[0]]["geometry"])
    corners = [tile_units(SPEC, x, y) for x, y in inside.exterior.coords]
    assert square.is_valid and square.area == pytest.approx(Polygon(corners).area, rel=0.01)


def test_an_empty_tile_has_no_bytes(store: LayerStore) -> None:
    store.create_layer(PARCELS)
    store.insert_features("parcels", [FeatureInput(box(0, 0, 0.1, 0.1), {"code": "far"})])
    tile = store.vector_tile("parcels", SPEC)
    assert tile.data == b"" and tile.features == 0


def test_too_many_points_are_counted_per_cell(store: LayerStore) -> None:
    store.create_layer(POINTS)
    rng = np.random.default_rng(7)
    w, s, e, n = SPEC.lonlat_box(buffered=False)
    # A cluster in one corner and a spread: more than the cap, partly outside the tile.
    lon = np.concatenate([rng.uniform(w, w + (e - w) * 0.05, 3000), rng.uniform(w - 0.002, e + 0.002, MAX_FEATURES)])
    lat = np.concatenate([rng.uniform(n - (n - s) * 0.05, n, 3000), rng.uniform(s - 0.002, n + 0.002, MAX_FEATURES)])
    store.insert_features("cameras", [FeatureInput(Point(x, y), {"level": 1}) for x, y in zip(lon, lat, strict=True)])
    tile = store.vector_tile("cameras", SPEC)
    assert tile.aggregated
    features = decode(tile.data)["cameras"]
    # Truth: every point inside the tile counted once, in the cell under it.
    mx, my = TO_MERCATOR.transform(lon, lat)
    inside = (mx >= SPEC.west) & (mx < SPEC.east) & (my > SPEC.south) & (my <= SPEC.north)
    cells = np.floor((mx[inside] - SPEC.west) / SPEC.cell) + AGGREGATE_GRID * np.floor(
        (SPEC.north - my[inside]) / SPEC.cell
    )
    ids, counts = np.unique(cells.astype(int) + 1, return_counts=True)
    assert {f["id"]: f["properties"]["_count"] for f in features} == dict(
        zip(ids.tolist(), counts.tolist(), strict=True)
    )
    assert len(features) == tile.features <= AGGREGATE_GRID**2
    for feature in features:  # each aggregate is drawn inside its cell
        x, y = feature["geometry"]["coordinates"]
        cell = feature["id"] - 1
        col, row = cell % AGGREGATE_GRID, cell // AGGREGATE_GRID
        size = 4096 / AGGREGATE_GRID
        assert col * size - 1 <= x <= (col + 1) * size + 1 and row * size - 1 <= y <= (row + 1) * size + 1


def test_data_versions_and_the_boxes_writes_touch(store: LayerStore) -> None:
    store.create_layer(PARCELS)
    start = store.data_versions(["parcels", "nothing"])
    assert start.layers["nothing"] == 0
    v0 = start.layers["parcels"]
    a = Polygon([(109.20, 13.70), (109.21, 13.70), (109.21, 13.71)])
    b = Polygon([(109.30, 13.80), (109.31, 13.80), (109.31, 13.81)])
    [fid] = store.insert_features("parcels", [FeatureInput(a, {"code": "A"})])
    store.update_feature("parcels", fid, geometry=b)
    store.delete_feature("parcels", fid)
    after = store.data_versions(["parcels"])
    assert after.layers["parcels"] == v0 + 3 and after.catalog == start.catalog
    changes = store.changes_since("parcels", v0)
    assert changes is not None and len(changes) == 3
    assert changes[0] == pytest.approx(a.bounds)
    assert changes[1] == pytest.approx((109.20, 13.70, 109.31, 13.81))  # the old place and the new
    assert changes[2] == pytest.approx(b.bounds)
    assert store.changes_since("parcels", v0 + 3) == []
    # A failed write moves nothing.
    with pytest.raises(InvalidInputError):
        store.insert_features("parcels", [FeatureInput(Point(0, 0), {"code": "not a polygon"})])
    assert store.data_versions(["parcels"]).layers["parcels"] == v0 + 3


def test_a_recreated_layer_never_reuses_a_version(store: LayerStore) -> None:
    store.create_layer(PARCELS)
    store.insert_features("parcels", [FeatureInput(box(109.2, 13.7, 109.21, 13.71), {"code": "A"})])
    before = store.data_versions(["parcels"]).layers["parcels"]
    store.drop_layer("parcels")
    store.create_layer(PARCELS)
    after = store.data_versions(["parcels"]).layers["parcels"]
    assert after > before
    assert store.changes_since("parcels", before) == [None, None]  # dropped, created: anywhere


def test_loads_record_their_extent(store: LayerStore) -> None:
    from layers.validation import batch_from_features

    store.create_layer(PARCELS)
    v0 = store.data_versions(["parcels"]).layers["parcels"]
    polygons = [box(109.2 + i / 100, 13.7, 109.205 + i / 100, 13.705) for i in range(3)]
    batch = batch_from_features(PARCELS, polygons, [{"code": str(i)} for i in range(3)])
    store.load("parcels", [batch])
    assert store.changes_since("parcels", v0) == [pytest.approx(tuple(shapely.total_bounds(polygons)))]


ROADS = LayerDefinition.model_validate(
    {"id": "roads", "title": "Đường", "geometry_type": "LineString", "fields": [{"name": "name", "type": "string"}]}
)


def _city(store: LayerStore) -> None:
    """Points, lines and polygons over a few z14 tiles of Quy Nhơn, deterministic."""
    rng = np.random.default_rng(11)
    w, s, e, n = SPEC.lonlat_box(buffered=False)
    span = e - w
    store.create_layer(POINTS)
    store.create_layer(PARCELS)
    store.create_layer(ROADS)
    lon, lat = rng.uniform(w - span, e + span, 4000), rng.uniform(s - span, n + span, 4000)
    when = datetime(2026, 5, 1, 12, tzinfo=UTC)
    store.insert_features(
        "cameras",
        [
            FeatureInput(
                Point(x, y), {"name": f"Cam {i}", "level": i, "score": i / 3, "online": i % 2 == 0, "seen_at": when}
            )
            for i, (x, y) in enumerate(zip(lon, lat, strict=True))
        ],
    )
    corners = rng.uniform(0, 1, (600, 2))
    size = rng.uniform(0.0005, 0.004, (600, 2))
    store.insert_features(
        "parcels",
        [
            FeatureInput(
                shapely.affinity.rotate(
                    box(
                        w - span + 3 * span * cx,
                        s - span + 3 * span * cy,
                        w - span + 3 * span * cx + sx,
                        s - span + 3 * span * cy + sy,
                    ),
                    rng.uniform(0, 90),
                ),
                {"code": f"P{i}"},
            )
            for i, ((cx, cy), (sx, sy)) in enumerate(zip(corners, size, strict=True))
        ],
    )
    ends = rng.uniform(0, 1, (80, 4))
    store.insert_features(
        "roads",
        [
            FeatureInput(
                shapely.LineString(
                    [
                        (w - span + 3 * span * a, s - span + 3 * span * b),
                        (w - span + 3 * span * c, s - span + 3 * span * d),
                    ]
                ),
                {"name": f"Đường {i}"},
            )
            for i, (a, b, c, d) in enumerate(ends)
        ],
    )


def test_both_backends_give_the_same_tiles(sqlite_store: LayerStore, postgis_url: str) -> None:
    """Same features in SpatiaLite and PostGIS: every tile decodes to the same features and, to a tile unit, shapes."""
    postgis = LayerStore.open(postgis_url)
    try:
        for layer in postgis.list_layers():
            postgis.drop_layer(layer.id)
        _city(sqlite_store)
        _city(postgis)
        compared = 0
        for z, dx, dy in [(14, 0, 0), (14, 1, 0), (14, 0, -1), (13, 0, 0), (15, 1, 1), (12, 0, 0)]:
            scale = 2 ** (z - 14)
            spec = tile_spec(TileAddress("WebMercatorQuad", z, X * scale + dx, Y * scale + dy))
            for layer in ("cameras", "parcels", "roads"):
                lite, pg = sqlite_store.vector_tile(layer, spec), postgis.vector_tile(layer, spec)
                assert (lite.features, lite.aggregated) == (pg.features, pg.aggregated), (layer, z)
                a = {f["id"]: f for f in decode(lite.data).get(layer, [])}
                b = {f["id"]: f for f in decode(pg.data).get(layer, [])}
                assert set(a) == set(b), (layer, z)
                for fid, feature in a.items():
                    other = b[fid]
                    assert feature["properties"] == pytest.approx(other["properties"]), (layer, z, fid)
                    one, two = shape(feature["geometry"]), shape(other["geometry"])
                    assert one.geom_type.removeprefix("Multi") == two.geom_type.removeprefix("Multi")
                    assert shapely.hausdorff_distance(one, two) <= 1.5, (layer, z, fid)
                compared += len(a)
        assert compared > 3000
    finally:
        for layer in postgis.list_layers():
            postgis.drop_layer(layer.id)
        postgis.close()
