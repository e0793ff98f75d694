"""``properties=`` in tile requests: one cache key per set of names, and a name no layer has refused.

Runs on both backends through the app. The store shares a write counter, as ``twin serve`` opens
it, so a tile asked for again is answered from the cache without reading the database; the builds
are counted at the store's ``vector_tile``, the one call that draws a tile.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point, box

from layers.features import FeatureInput
from layers.model import LayerDefinition
from layers.signal import SharedCounter
from layers.store import LayerStore
from tests.signin import ADMIN_KEY, signed_in
from tiles.grid import TileAddress, tile_spec
from twin.app import create_app
from twin.settings import TwinSettings

Z, X, Y = 14, 13162, 7559  # URLs are /{z}/{row}/{col} = /{z}/{y}/{x}
TILE = f"WebMercatorQuad/{Z}/{Y}/{X}"
W, S, E, N = tile_spec(TileAddress("WebMercatorQuad", Z, X, Y)).lonlat_box(buffered=False)
CX, CY = (W + E) / 2, (S + N) / 2
PROBLEM = "application/problem+json"

LIGHTS = LayerDefinition.model_validate(
    {
        "id": "lights",
        "title": "Đèn đường",
        "kind": "infrastructure",
        "geometry_type": "Point",
        "fields": [{"name": "road", "type": "string"}, {"name": "power_w", "type": "integer"}],
    }
)
PARCELS = LayerDefinition.model_validate(
    {
        "id": "parcels",
        "title": "Thửa đất",
        "kind": "parcel",
        "geometry_type": "Polygon",
        "fields": [{"name": "code", "type": "string"}, {"name": "road", "type": "string"}],
    }
)


def decode(data: bytes) -> dict[str, list[dict[str, Any]]]:
    return {name: layer["features"] for name, layer in mapbox_vector_tile.decode(data).items()}


class Served:
    """The app over a store of lights and parcels, with the tile builds it has made so far."""

    def __init__(self, client: TestClient, store: LayerStore) -> None:
        self.client = client
        self.store = store
        self.builds: list[str] = []
        real = store.vector_tile

        def counted(layer: Any, *args: Any, **kwargs: Any) -> Any:
            self.builds.append(layer if isinstance(layer, str) else layer.id)
            return real(layer, *args, **kwargs)

        store.vector_tile = counted  # type: ignore[method-assign]

    @property
    def cached(self) -> int:
        """How many tiles the app's tile cache holds."""
        entries: int = self.client.app.state.tiles.cache.stats["entries"]  # type: ignore[attr-defined]
        return entries

    def get(self, url: str) -> Any:
        return self.client.get(url, headers={"Accept-Encoding": "identity"})


@pytest.fixture
def served(store_url: str, tmp_path: Path) -> Iterator[Served]:
    store = LayerStore.open(store_url, SharedCounter(tmp_path / "writes.counter"))
    try:
        for layer in store.list_layers():
            store.drop_layer(layer.id)
        store.create_layer(LIGHTS)
        store.create_layer(PARCELS)
        step = (E - W) / 10
        store.insert_features(
            "lights",
            [FeatureInput(Point(W + step * (i + 0.5), CY), {"road": "Trần Hưng Đạo", "power_w": i}) for i in range(5)],
        )
        store.insert_features(
            "parcels", [FeatureInput(box(CX - step, CY - step, CX, CY), {"code": "QN-1", "road": "X"})]
        )
        with signed_in(
            TestClient(create_app(TwinSettings(api_keys=[ADMIN_KEY], data_dir=tmp_path), store=store))
        ) as client:
            yield Served(client, store)
    finally:
        for layer in store.list_layers():
            store.drop_layer(layer.id)
        store.close()


def test_every_spelling_of_one_set_of_properties_is_one_cached_tile(served: Served) -> None:
    layer_tile = f"/collections/lights/tiles/{TILE}"
    first = served.get(f"{layer_tile}?properties=road,power_w,power_w")  # answered before routing
    assert first.status_code == 200
    assert all(set(f["properties"]) == {"road", "power_w"} for f in decode(first.content)["lights"])
    assert (served.builds, served.cached) == (["lights"], 1)
    spellings = ["power_w,road", "road,,power_w", " power_w , road ,", "road,power_w&f=mvt"]  # the last: the route
    for spelling in spellings:
        again = served.get(f"{layer_tile}?properties={spelling}")
        assert again.status_code == 200, spelling
        assert again.content == first.content and again.headers["etag"] == first.headers["etag"], spelling
    assert (served.builds, served.cached) == (["lights"], 1)  # every one a cache hit
    # The front takes the last of repeated parameters, as the route does: one tile whichever answers.
    assert served.get(f"{layer_tile}?properties=power_w&properties=road,power_w").content == first.content
    assert served.builds == ["lights"]
    # An empty list is every property, one more tile; a dataset tile, one more for each spelling too.
    assert served.get(f"{layer_tile}?properties=").content == served.get(layer_tile).content
    assert (served.builds, served.cached) == (["lights", "lights"], 2)
    dataset = f"/tiles/{TILE}?collections=lights,parcels&properties="
    both = served.get(dataset + "road,code,road")
    assert served.get(dataset + "code,road").content == both.content
    assert served.get(dataset + ",road,code").content == both.content
    assert (served.builds[2:], served.cached) == (["lights", "parcels"], 3)


def test_a_property_no_asked_layer_has_is_refused(served: Served) -> None:
    urls = [
        f"/collections/lights/tiles/{TILE}?properties=road,nope",  # the front passes it on to the route
        f"/collections/lights/tiles/{TILE}?properties=road,nope&f=mvt",  # the route
        f"/collections/lights/tiles/{TILE}?properties=code,nope",  # a field of another layer is no help
        f"/tiles/{TILE}?collections=lights,parcels&properties=code,nope,power_w",
        "/collections/lights/tiles/WebMercatorQuad/tilejson.json?properties=nope",
        "/tiles/WebMercatorQuad/tilejson.json?collections=lights,parcels&properties=nope",
    ]
    for url in urls:
        response = served.get(url)
        assert response.status_code == 400, url
        assert response.headers["content-type"] == PROBLEM, url
        problem = response.json()
        assert "'nope'" in problem["detail"] and "road" in problem["detail"], url
        assert "nope" in problem["unknown"] and "road" in problem["known"], url
    assert served.get(urls[0]).json()["known"] == ["road", "power_w"]
    assert served.get(urls[3]).json()["known"] == ["road", "power_w", "code"]
    assert served.cached == 0  # nothing was built or kept for them


def test_dataset_tiles_take_a_property_only_some_layers_have(served: Served) -> None:
    for names in ["code", "CODE"]:  # a name resolves as the layer's fields do, in another case too
        response = served.get(f"/tiles/{TILE}?collections=lights,parcels&properties={names}")
        assert response.status_code == 200, names
        layers = decode(response.content)
        assert [f["properties"] for f in layers["parcels"]] == [{"code": "QN-1"}]
        assert len(layers["lights"]) == 5 and all(f["properties"] == {} for f in layers["lights"])
    tilejson = served.get("/tiles/WebMercatorQuad/tilejson.json?collections=lights,parcels&properties=road,,code,road")
    assert tilejson.json()["tiles"][0].endswith("?collections=lights,parcels&properties=code,road")
    single = served.get("/collections/parcels/tiles/WebMercatorQuad/tilejson.json?properties=road,code")
    assert single.json()["tiles"][0].endswith("/{z}/{y}/{x}?properties=code,road")
