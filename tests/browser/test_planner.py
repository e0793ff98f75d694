"""The planner view in a real browser: it renders, layers toggle, popups, drawing, search, the filter table.

Tests that need the layers that are not public sign in first (``signed_in``: the key in localStorage, as the
page's sign-in box keeps it); signing in and what each principal sees are tested in test_signin.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pyproj import Geod

from tests.browser.conftest import (
    Keys,
    csp_violations,
    mean_difference,
    pixel_stddev,
    screenshot,
    settle,
    signed_in,
    wait_idle,
)

pytestmark = pytest.mark.browser


def test_map_reaches_idle_and_is_not_blank(page: Any, live_server: str, keys: Keys) -> None:
    signed_in(page, keys.province).goto(f"{live_server}/")
    settle(page)
    state = page.evaluate("window.__twin")
    assert state["styleLoaded"] and state["deckRendered"], state
    assert {"wards", "parcels", "cameras"} <= set(state["layers"])
    png = screenshot(page, "planner-home")
    assert pixel_stddev(png) > 15, "the map looks blank"
    assert page.locator(".layer-tree [data-kind='admin_area']").count() == 1
    assert "Phường, xã" in page.locator(".layer-tree").inner_text()
    assert page.errors == []
    assert csp_violations(page) == []


def test_toggling_a_layer_changes_the_picture(page: Any, live_server: str) -> None:
    page.goto(f"{live_server}/#map=14.5/13.7700/109.2200/0/0&layers=wards,roads,parcels")
    settle(page)
    before = screenshot(page, "toggle-before", clip=_map_box(page))
    count = page.evaluate("window.__twin.idleCount")
    page.locator("input[data-layer='parcels']").uncheck()
    wait_idle(page, count)
    page.wait_for_timeout(300)
    after = screenshot(page, "toggle-after", clip=_map_box(page))
    assert mean_difference(before, after) > 2, "hiding parcels did not change the map"
    assert set(page.url.split("layers=")[1].split("&")[0].split(",")) == {"wards", "roads"}  # the URL follows


def test_popup_shows_known_attributes(page: Any, live_server: str, keys: Keys) -> None:
    camera = httpx.get(f"{live_server}/collections/cameras/items/1", headers=keys.header(keys.admin)).json()
    popup = _open_popup(signed_in(page, keys.province), live_server, camera)
    text = popup.inner_text()
    screenshot(page, "popup-camera")
    assert "Mã camera" in text and camera["properties"]["camera_id"] in text, text
    assert "Trạng thái" in text and "Tên camera" in text
    snapshot = page.locator(".twin-popup a[data-field='snapshot_url']")
    assert snapshot.get_attribute("href") == camera["properties"]["snapshot_url"]
    # The stream is rtsp:, not a web page: shown as text, not made a link (only http and https are).
    assert camera["properties"]["stream_url"].startswith("rtsp:")
    assert page.locator(".twin-popup a[data-field='stream_url']").count() == 0
    assert camera["properties"]["stream_url"] in popup.locator("tr[data-field='stream_url']").inner_text()


def test_a_javascript_url_is_not_a_link_in_a_popup(page: Any, live_server: str, keys: Keys) -> None:
    admin = keys.header(keys.admin)
    url = f"{live_server}/collections/cameras/items/2"
    camera = httpx.get(url, headers=admin).json()
    original = camera["properties"]["snapshot_url"]
    hostile = "javascript:alert(document.domain)"
    patched = httpx.patch(url, json={"properties": {"snapshot_url": hostile}}, headers=admin)
    assert patched.status_code in (200, 204), patched.text
    try:
        popup = _open_popup(signed_in(page, keys.province), live_server, camera)
        assert popup.get_attribute("data-fid") == "2"
        screenshot(page, "popup-javascript-url")
        assert popup.locator("a[data-field='snapshot_url']").count() == 0
        assert page.locator(".twin-popup a[href^='javascript' i]").count() == 0
        assert hostile in popup.locator("tr[data-field='snapshot_url']").inner_text()  # shown, as text
        assert page.errors == []
    finally:
        httpx.patch(url, json={"properties": {"snapshot_url": original}}, headers=admin).raise_for_status()


def test_drawn_circle_returns_what_the_server_returns(page: Any, live_server: str, keys: Keys) -> None:
    signed_in(page, keys.province)
    page.goto(f"{live_server}/#map=15/13.7700/109.2230/0/0&layers=wards,roads,cameras,street_lights&terrain=0")
    settle(page)
    page.locator("[data-test='open-draw']").click()
    for layer in ("cameras", "street_lights"):
        assert page.locator(f"input[data-query-layer='{layer}']").is_checked()
    page.locator("[data-test='radius']").fill("600")
    page.locator("[data-test='draw-circle']").click()
    box = _map_box(page)
    center = page.evaluate("(() => { const c = window.__twinApp.twin.map.getCenter(); return [c.lng, c.lat]; })()")
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => window.__twin.lastDraw !== null", timeout=30000)
    page.wait_for_timeout(500)
    screenshot(page, "draw-circle")
    drawn = page.evaluate("window.__twin.lastDraw")
    ring = drawn["ring"]

    # The ring is a geodesic circle of 600 m on the WGS84 ellipsoid around the clicked point.
    geod = Geod(ellps="WGS84")
    distances = [geod.inv(center[0], center[1], lon, lat)[2] for lon, lat in ring]
    assert len(ring) == 65 and ring[0] == ring[-1]
    assert all(abs(d - 600) < 0.05 for d in distances), (min(distances), max(distances))

    wkt = "POLYGON((" + ", ".join(f"{lon} {lat}" for lon, lat in ring) + "))"
    for layer in ("cameras", "street_lights"):
        expected = _all_ids(live_server, layer, f"S_INTERSECTS(geometry, {wkt})", keys.province)
        assert expected, f"no {layer} inside the circle: pick another spot"
        assert sorted(drawn["results"][layer]) == sorted(expected), layer
        assert drawn["counts"][layer] == len(expected)
        shown = page.locator(f".draw-results tr[data-layer='{layer}'] .count").inner_text()
        assert shown.replace(".", "") == str(len(expected))  # vi-VN groups thousands with "."


def test_search_ignores_diacritics(page: Any, live_server: str) -> None:
    page.goto(f"{live_server}/")
    wait_idle(page)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/collections/address_points/items" in r.url else None)
    box = page.locator("[data-test='search']")
    box.fill("hai cang")
    page.wait_for_function(
        "() => window.__twin.lastSearch && window.__twin.lastSearch.query === 'hai cang'", timeout=15000
    )
    labels = [r["label"] for r in page.evaluate("window.__twin.lastSearch.results")]
    assert any("Hải Cảng" in label for label in labels), labels
    box.fill("quy nhon")
    page.wait_for_function("() => window.__twin.lastSearch.query === 'quy nhon'", timeout=15000)
    results = page.evaluate("window.__twin.lastSearch.results")
    addresses = [r["label"] for r in results if r["layer"] == "address_points"]
    assert addresses and all("Quy Nhơn" in label for label in addresses), results
    # The database folds marks and case (CQL2 ACCENTI, CASEI); the client no longer guesses LIKE patterns.
    filters = [parse_qs(urlsplit(url).query)["filter"][0] for url in asked]
    assert "ACCENTI(CASEI(full_address)) LIKE ACCENTI(CASEI('%quy%nhon%'))" in filters, filters
    screenshot(page, "search")


def test_attribute_table_sends_cql2_to_the_server(page: Any, live_server: str, keys: Keys) -> None:
    signed_in(page, keys.province).goto(f"{live_server}/#layers=wards,incidents")
    wait_idle(page)
    page.evaluate("window.__twinApp.table.open('incidents')")
    _wait_matched(page)
    page.evaluate("window.__twinApp.table.addCondition({property: 'status', op: '=', value: 'new'})")
    page.locator("[data-test='apply-filter']").click()
    page.wait_for_function(
        "() => document.querySelector('[data-test=cql]').textContent.includes('status')", timeout=15000
    )
    assert page.locator("[data-test='cql']").inner_text() == "status = 'new'"
    page.wait_for_function("() => document.querySelectorAll('.attributes-table tbody tr').length > 0", timeout=15000)
    expected = httpx.get(
        f"{live_server}/collections/incidents/items",
        params={"filter": "status = 'new'", "limit": 1},
        headers=keys.header(keys.province),
    ).json()
    matched = page.locator(".table-status .status").get_attribute("data-matched")
    assert matched == str(expected["numberMatched"])
    screenshot(page, "attribute-table")


def _open_popup(page: Any, live_server: str, feature: dict[str, Any]) -> Any:
    """The popup of the camera ``feature``, clicked at the middle of a street-zoom map centred on it."""
    lon, lat = feature["geometry"]["coordinates"]
    page.goto(f"{live_server}/#map=18/{lat:.7f}/{lon:.7f}/0/0&layers=cameras&terrain=0")
    settle(page)
    box = _map_box(page)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    popup = page.locator(".twin-popup .popup-body[data-fid]")
    popup.wait_for(timeout=15000)
    return popup


def _wait_matched(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelector('.table-status .status').dataset.matched !== undefined", timeout=15000
    )


def _map_box(page: Any) -> dict[str, float]:
    box = page.locator("#map").bounding_box()
    assert box is not None
    return {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}


def _all_ids(url: str, layer: str, cql: str, key: str) -> list[int]:
    ids: list[int] = []
    next_url: str | None = f"{url}/collections/{layer}/items"
    params: dict[str, str] | None = {"filter": cql, "limit": "1000", "properties": ""}
    while next_url:
        body = httpx.get(next_url, params=params, headers=Keys.header(key), timeout=30).json()
        ids += [f["id"] for f in body["features"]]
        next_url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        params = None
    return ids
