"""The province's real 2025 ward polygons: import them and find the ward of a place in Quy Nhơn."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import Point

from layers.errors import InvalidInputError
from layers.io.importer import import_file
from layers.model import LayerKind
from layers.store import LayerStore
from tests.conftest import real_data

# Quy Nhơn: the Nguyễn Tất Thành – Trần Hưng Đạo area in the city centre, and a point out at sea.
CITY_CENTRE = (109.2196, 13.7725)
AT_SEA = (109.35, 13.75)


def test_ward_of_a_known_point_in_quy_nhon(store: LayerStore) -> None:
    path = real_data("gia-lai-binh-dinh-wards-2025.geojson")
    with pytest.raises(InvalidInputError, match=r"feature \d+: invalid geometry: self-intersection at \("):
        import_file(store, path, "wards")
    assert store.list_layers() == []

    report = import_file(store, path, "wards", repair=True, kind=LayerKind.ADMIN_AREA, title="Phường, xã")
    assert report.inserted == 135

    truth = gpd.read_file(path)
    expected = truth[truth.make_valid().contains(Point(*CITY_CENTRE))]["name"].tolist()
    found = [f.properties["name"] for f in store.containing("wards", *CITY_CENTRE)]
    assert found == expected and len(found) == 1
    assert found[0].startswith("Quy Nhơn")  # diacritics kept end to end
    assert store.containing("wards", *AT_SEA) == []

    near = store.within_distance("wards", *CITY_CENTRE, 3000)
    assert found[0] in {f.properties["name"] for f in near}
    assert all(f.distance_m is not None and f.distance_m <= 3000 for f in near)
