"""The point-layer MVT writer: its tiles decode, with mapbox-vector-tile, to exactly the points and values written."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import mapbox_vector_tile
import numpy as np
import pyarrow as pa
import pytest

from layers.model import FieldType
from layers.mvtpoints import (
    _write_features,
    _write_integer_values,
    _write_text_values,
    compile_encoder,
    encode_points,
    put_varint,
    varint,
    varint_size,
    zigzag,
)
from layers.vectortiles import PointColumns, encode_point_rows, mvt_value
from tiles.grid import TileAddress, tile_spec


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})


def test_varints_and_zigzag_follow_protobuf() -> None:
    values = [0, 1, 127, 128, 300, 16383, 16384, 2**32, 2**63 - 1, 2**64 - 1]
    encoded = []
    for value in values:
        out = np.zeros(12, dtype=np.uint8)
        end = put_varint(out, 1, np.uint64(value))
        assert end - 1 == varint_size(np.uint64(value))
        assert out[0] == 0 and not out[end:].any()  # nothing written outside its bytes
        encoded.append(out[1:end].tobytes())
    assert encoded[:5] == [b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02"]  # protobuf's own examples
    assert [len(e) for e in encoded[5:]] == [2, 3, 5, 9, 10]
    assert [varint(v) for v in values] == encoded  # the pure Python form agrees
    signed = [0, -1, 1, -2, 2147483647, -2147483648, 2**63 - 1, -(2**63)]
    assert [int(zigzag(np.int64(v))) for v in signed] == [0, 1, 2, 3, 4294967294, 4294967295, 2**64 - 2, 2**64 - 1]


def test_points_and_every_kind_of_value_round_trip() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    fids = rng.integers(1, 2**53, n)
    x, y = rng.integers(-64, 4161, n), rng.integers(-64, 4161, n)
    start = datetime(1969, 12, 31, 23, 59, 58, 999_999, tzinfo=UTC)

    def sometimes(values: list, every: int) -> list:
        return [None if i % every == 0 else v for i, v in enumerate(values)]

    columns = [
        ("tên", FieldType.STRING, sometimes([f"Phường Quy Nhơn {i % 97}" for i in range(n)], 11)),
        ("mô tả", FieldType.STRING, sometimes(["đường " * (30 + i % 5) for i in range(n)], 3)),  # over 127 bytes
        ("level", FieldType.INTEGER, sometimes([int(v) for v in rng.integers(-(2**62), 2**62, n)], 5)),
        ("small", FieldType.INTEGER, [int(v) for v in rng.integers(-3, 4, n)]),
        ("score", FieldType.NUMBER, sometimes([float(v) for v in rng.normal(0, 1e6, n)], 7)),
        ("ok", FieldType.BOOLEAN, sometimes([bool(v) for v in rng.integers(0, 2, n)], 4)),
        (
            "day",
            FieldType.DATE,
            sometimes([date(1950, 1, 1) + timedelta(days=int(v)) for v in rng.integers(0, 40_000, n)], 9),
        ),
        (
            "seen_at",
            FieldType.DATETIME,
            sometimes([start + timedelta(microseconds=int(v)) for v in rng.integers(0, 10**12, n)], 6),
        ),
        ("empty", FieldType.STRING, [None] * n),
    ]
    layer = decode(encode_points("điểm", 4096, fids, x, y, columns))["điểm"]
    assert layer["extent"] == 4096 and layer["version"] == 2
    assert len(layer["features"]) == n
    for i, feature in enumerate(layer["features"]):
        assert feature["id"] == fids[i]
        assert feature["geometry"] == {"type": "Point", "coordinates": [int(x[i]), int(y[i])]}
        expected = {key: mvt_value(values[i]) for key, _, values in columns if values[i] is not None}
        assert feature["properties"] == expected


def test_many_columns_no_columns_and_no_points() -> None:
    n = 40
    fids, x, y = np.arange(n), np.arange(n) * 10, np.arange(n) * 20
    wide = [(f"c{k}", FieldType.INTEGER, [k * 1000 + i for i in range(n)]) for k in range(140)]  # keys past 127
    features = decode(encode_points("wide", 4096, fids, x, y, wide))["wide"]["features"]
    assert [f["properties"]["c139"] for f in features] == [139_000 + i for i in range(n)]
    bare = decode(encode_points("bare", 512, fids, x, y, []))["bare"]
    assert bare["extent"] == 512 and [f["properties"] for f in bare["features"]] == [{}] * n
    assert encode_points("none", 4096, fids[:0], x[:0], y[:0], wide) == b""


@pytest.mark.parametrize("value", [0, -1, 2**63 - 1, -(2**63)])
def test_integer_extremes(value: int) -> None:
    features = decode(
        encode_points("x", 4096, np.array([1]), np.array([0]), np.array([0]), [("v", FieldType.INTEGER, [value])])
    )
    assert features["x"]["features"][0]["properties"] == {"v": value}


def test_the_warm_up_compiles_what_a_tile_uses() -> None:
    """After ``compile_encoder`` (run as the server starts), a tile as the PostGIS read hands it over
    (ids and positions as fields of one packed array, every point kept) needs no compiling of its own."""
    compile_encoder()
    loops = (_write_features, _write_text_values, _write_integer_values)
    compiled = [len(loop.signatures) for loop in loops]
    spec = tile_spec(TileAddress("WebMercatorQuad", 15, 26_317, 15_085))
    west, south, east, north = spec.lonlat_box(buffered=False)
    packed = np.zeros(3, dtype=[("fid", "i8"), ("lon", "f8"), ("lat", "f8")])
    packed["fid"] = [7, 8, 9]
    packed["lon"] = np.linspace(west, east, 5)[1:4]
    packed["lat"] = np.linspace(south, north, 5)[1:4]
    properties = [
        ("tên", FieldType.STRING, pa.array(["Nhơn Lý", None, "Ghềnh Ráng"])),
        ("level", FieldType.INTEGER, pa.array([1, -2, None])),
    ]
    tile = encode_point_rows("posts", spec, PointColumns(packed["fid"], packed["lon"], packed["lat"], properties))
    assert tile.features == 3
    assert [len(loop.signatures) for loop in loops] == compiled
