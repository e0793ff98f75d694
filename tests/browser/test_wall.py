"""The wall view: at 4K with its key given in the URL fragment it renders the map and the KPI panels; the key is
kept and taken out of the address bar. Without a key, or with one the server refuses, it shows the public layers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import (
    PUBLIC_LAYERS,
    Keys,
    csp_violations,
    pixel_stddev,
    screenshot,
    settle,
    stored_credential,
    watch,
)

pytestmark = pytest.mark.browser


def test_wall_renders_at_3840x2160(browser: Any, live_server: str, keys: Keys) -> None:
    context = browser.new_context(viewport={"width": 3840, "height": 2160}, locale="vi-VN")
    page = watch(context.new_page())
    try:
        page.goto(f"{live_server}/wall?rotate=0#key={keys.province}")
        page.wait_for_function("() => window.__twin && window.__twin.kpis !== null", timeout=90_000)
        settle(page, timeout=90_000)
        # The key was read once, kept, and taken out of the address bar (and so out of the history).
        assert "key=" not in page.url and keys.province not in page.url
        assert page.url.endswith("/wall?rotate=0")
        assert stored_credential(page) == keys.province
        assert page.evaluate("window.__twin.principal") == keys.province_principal
        assert {"incidents", "sensors", "vessels"} <= set(page.evaluate("window.__twin.layers"))
        png = screenshot(page, "wall-4k")
        assert pixel_stddev(png) > 10
        kpis = page.evaluate("window.__twin.kpis")
        assert kpis["totals"]["open"] > 0 and kpis["totals"]["vesselsAtSea"] > 0
        # The samples' clock is the time they were loaded: some open reports are overdue, not all.
        assert 0 < kpis["totals"]["overdue"] < kpis["totals"]["open"]
        panel = page.locator(".kpi-panel").inner_text()
        assert "Phản ánh đang xử lý" in panel and "Hải Cảng" in panel
        assert page.locator(".maplibregl-ctrl").count() == 0  # no controls on the wall
        assert page.evaluate("window.__twin.scene") == "Toàn thành phố Quy Nhơn"
        assert page.locator("[data-test='key-refused']").is_hidden()
        assert page.errors == [] and csp_violations(page) == []
    finally:
        context.close()


@pytest.mark.parametrize("key", [None, "twin_not-a-wall-key"], ids=["no-key", "refused-key"])
def test_wall_without_a_valid_key_shows_the_public_layers(browser: Any, live_server: str, key: str | None) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 720}, locale="vi-VN")
    page = watch(context.new_page())
    try:
        page.goto(f"{live_server}/wall?rotate=0" + (f"#key={key}" if key else ""))
        page.wait_for_function("() => window.__twin && window.__twin.kpis !== null", timeout=90_000)
        assert page.evaluate("window.__twin.principal") == "public"
        assert set(page.evaluate("window.__twin.layers")) == PUBLIC_LAYERS
        totals = page.evaluate("window.__twin.kpis.totals")
        assert totals["open"] is None and totals["vesselsAtSea"] is None  # no incidents, no vessels to count
        assert stored_credential(page) is None and "key=" not in page.url
        notice = page.locator("[data-test='key-refused']")
        if key:
            assert notice.is_visible() and "the API key is not valid" in notice.inner_text()
            screenshot(page, "wall-refused-key")
        else:
            assert notice.is_hidden()
        assert page.errors == [] and csp_violations(page) == []
    finally:
        context.close()
