"""The planner under access control: signed out it shows the public layers; a key signs it in (kept across a
reload, forgotten on sign-out); a ward officer sees only their ward; a bad key is refused, saying why; and the
page runs under the server's Content-Security-Policy without a violation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.browser.conftest import (
    CREDENTIAL_STORAGE,
    OFFICER_WARD,
    PUBLIC_LAYERS,
    Keys,
    csp_violations,
    screenshot,
    settle,
    signed_in,
    stored_credential,
    wait_idle,
)
from twin.gate import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.browser


def test_signed_out_the_planner_lists_only_the_public_layers(page: Any, live_server: str) -> None:
    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status in (401, 403) else None)
    page.goto(f"{live_server}/")
    _wait_principal(page, "public")
    settle(page)
    assert set(page.evaluate("window.__twin.layers")) == PUBLIC_LAYERS
    assert _tree_layers(page) == PUBLIC_LAYERS
    assert "Chưa đăng nhập" in page.locator("[data-test='signed-out']").inner_text()
    assert page.locator("[data-test='api-key']").is_visible()
    assert page.locator("[data-test='sign-out']").count() == 0
    assert page.locator("[data-test='sign-in-oidc']").count() == 0  # the server has no OIDC provider
    assert refused == []  # nothing asked for that the public may not read (the default cameras, say)
    assert page.errors == [] and csp_violations(page) == []
    screenshot(page, "planner-signed-out")


def test_signing_in_with_the_province_key_shows_cameras_and_incidents(page: Any, live_server: str, keys: Keys) -> None:
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda r: sent.append((r.url, r.headers.get("x-api-key"))))
    page.goto(f"{live_server}/#layers=wards,roads,cameras,incidents&terrain=0")
    _wait_principal(page, "public")
    wait_idle(page)
    assert not {"cameras", "incidents"} & _tree_layers(page)

    _sign_in(page, keys.province)
    _wait_principal(page, keys.province_principal)
    settle(page)
    assert {"cameras", "incidents", "sensors", "vessels"} <= set(page.evaluate("window.__twin.layers"))
    assert {"cameras", "incidents"} <= _tree_layers(page)
    assert page.locator("input[data-layer='cameras']").is_checked()  # the hash asked for them
    assert page.locator("[data-test='principal']").inner_text() == keys.province_principal
    assert page.locator("[data-test='roles']").inner_text() == "province"
    assert page.locator("[data-test='areas']").inner_text() == "Toàn bộ"
    assert stored_credential(page) == keys.province
    # The map's own requests (TileJSON, tiles) and the client's fetches carry the key.
    restricted = [(url, key) for url, key in sent if "/collections/cameras" in url or "/collections/incidents" in url]
    assert any("/tiles/" in url for url, _ in restricted), restricted
    assert all(key == keys.province for _, key in restricted), restricted
    # The table reads incidents with their sensitive fields (the province role may).
    page.evaluate("window.__twinApp.table.open('incidents')")
    _wait_rows(page)
    assert page.locator(".attributes-table th[title='reporter_name']").count() == 1
    screenshot(page, "planner-signed-in")

    page.reload()  # the key is kept: still signed in
    _wait_principal(page, keys.province_principal)
    assert "cameras" in page.evaluate("window.__twin.layers")

    page.evaluate("window.__twinApp.table.open('incidents')")
    _wait_rows(page)
    page.locator("[data-test='sign-out']").click()
    _wait_principal(page, "public")
    wait_idle(page)
    assert stored_credential(page) is None
    assert set(page.evaluate("window.__twin.layers")) == PUBLIC_LAYERS
    assert _tree_layers(page) == PUBLIC_LAYERS
    # What was read signed in is gone: the table lists public layers only, no incident row is left.
    options = page.locator("[data-test='table-layer'] option").evaluate_all("os => os.map(o => o.value)")
    assert options and set(options) <= PUBLIC_LAYERS, options
    assert page.locator(".attributes-table th[title='reporter_name']").count() == 0
    assert page.errors == [] and csp_violations(page) == []


def test_a_ward_officer_sees_incidents_only_in_their_ward(page: Any, live_server: str, keys: Keys) -> None:
    officer = keys.header(keys.officer)
    theirs = httpx.get(
        f"{live_server}/collections/incidents/counts", params={"groupBy": "ward"}, headers=officer
    ).json()
    everyone = httpx.get(
        f"{live_server}/collections/incidents/counts", params={"groupBy": "ward"}, headers=keys.header(keys.admin)
    ).json()
    assert [c["value"] for c in theirs["counts"]] == [OFFICER_WARD]
    assert 0 < theirs["total"] < everyone["total"]

    signed_in(page, keys.officer)
    # Ghềnh Ráng is the south of the city; camera 1 stands in it.
    page.goto(f"{live_server}/#map=13/13.6700/109.2150/0/0&layers=wards,incidents&terrain=0")
    _wait_principal(page, keys.officer_principal)
    settle(page)
    assert page.locator("[data-test='areas']").inner_text() == OFFICER_WARD
    assert page.locator("[data-test='roles']").inner_text() == "ward_officer"

    # The table (the client's items query with the key) counts and lists their ward's incidents only.
    page.evaluate("window.__twinApp.table.open('incidents')")
    _wait_rows(page)
    assert page.locator(".table-status .status").get_attribute("data-matched") == str(theirs["total"])
    wards = page.evaluate(
        """() => {
          const heads = [...document.querySelectorAll('.attributes-table thead th')];
          const at = heads.findIndex((th) => th.title === 'ward');
          return [...document.querySelectorAll('.attributes-table tbody tr')].map((tr) => tr.children[at].textContent);
        }"""
    )
    assert len(wards) == 100 and set(wards) == {OFFICER_WARD}, set(wards)

    # The map's tiles (fetched by MapLibre with the key) hold their ward's incidents only.
    drawn = page.evaluate(
        """() => {
          const map = window.__twinApp.twin.map;
          const vector = map.getSource('incidents').type === 'vector';
          return map.querySourceFeatures('incidents', vector ? { sourceLayer: 'incidents' } : {})
            .map((f) => f.properties.ward ?? null);
        }"""
    )
    named = [w for w in drawn if w is not None]
    assert named and set(named) == {OFFICER_WARD}, set(drawn)

    assert page.errors == [] and csp_violations(page) == []
    screenshot(page, "planner-ward-officer")


def test_a_bad_key_shows_the_error_and_stays_signed_out(page: Any, live_server: str) -> None:
    page.goto(f"{live_server}/")
    _wait_principal(page, "public")
    wait_idle(page)
    _sign_in(page, "twin_this-is-not-a-key")
    message = page.locator("[data-test='auth-message']")
    message.wait_for(state="visible", timeout=15000)
    assert "Đăng nhập không thành công" in message.inner_text()
    assert "the API key is not valid" in message.inner_text()  # the problem's detail, as the server said it
    screenshot(page, "planner-bad-key")
    assert page.evaluate("window.__twin.principal") == "public"
    assert stored_credential(page) is None
    assert page.locator("[data-test='api-key']").is_visible()
    assert set(page.evaluate("window.__twin.layers")) == PUBLIC_LAYERS

    # A key kept from before that the server now refuses (revoked, mistyped): forgotten, the planner
    # opens signed out and says why, instead of a page of 401s.
    page.evaluate(f"() => localStorage.setItem('{CREDENTIAL_STORAGE}', 'twin_revoked-long-ago')")
    page.reload()
    _wait_principal(page, "public")
    wait_idle(page)
    assert "the API key is not valid" in page.locator("[data-test='auth-message']").inner_text()
    assert stored_credential(page) is None
    assert set(page.evaluate("window.__twin.layers")) == PUBLIC_LAYERS
    assert page.errors == []


def test_no_content_security_policy_violation(page: Any, live_server: str, keys: Keys) -> None:
    response = page.goto(f"{live_server}/#map=15/13.7700/109.2230/0/0&layers=wards,roads,cameras,incidents")
    assert response.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY and "connect-src 'self'" in CONTENT_SECURITY_POLICY
    _wait_principal(page, "public")
    wait_idle(page)
    _sign_in(page, keys.province)
    _wait_principal(page, keys.province_principal)
    settle(page)
    page.evaluate("window.__twinApp.table.open('incidents')")
    _wait_rows(page)
    page.locator("[data-test='search']").fill("hai cang")
    page.wait_for_function("() => window.__twin.lastSearch && window.__twin.lastSearch.query === 'hai cang'")
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(500)
    assert page.errors == []
    assert csp_violations(page) == []

    # The watch does see a violation: a fetch to another origin is blocked, and reported.
    page.evaluate("() => fetch('http://127.0.0.2:9/').catch(() => null)")
    page.wait_for_timeout(200)
    assert any("connect-src" in v for v in csp_violations(page))


def test_the_client_pages_carry_the_servers_policy(live_server: str) -> None:
    for path in ("/", "/wall"):
        page = httpx.get(f"{live_server}{path}", headers={"Accept": "text/html"})
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, path
        assert page.headers["x-content-type-options"] == "nosniff"


def _sign_in(page: Any, key: str) -> None:
    page.locator("[data-test='api-key']").fill(key)
    page.locator("[data-test='sign-in']").click()


def _wait_principal(page: Any, principal: str, timeout: float = 30_000) -> None:
    """The page is signed in as ``principal`` and its map shows what that principal may read."""
    page.wait_for_function("p => window.__twin && window.__twin.principal === p", arg=principal, timeout=timeout)


def _wait_rows(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelector('.table-status .status').dataset.matched !== undefined"
        " && document.querySelectorAll('.attributes-table tbody tr').length > 0",
        timeout=15000,
    )


def _tree_layers(page: Any) -> set[str]:
    return set(page.locator(".layer-tree input[data-layer]").evaluate_all("els => els.map(e => e.dataset.layer)"))
