"""The wall view at 4K: it renders the map and the KPI panels."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import pixel_stddev, screenshot, settle

pytestmark = pytest.mark.browser


def test_wall_renders_at_3840x2160(browser: Any, live_server: str) -> None:
    context = browser.new_context(viewport={"width": 3840, "height": 2160}, locale="vi-VN")
    page = context.new_page()
    try:
        page.goto(f"{live_server}/wall?rotate=0")
        page.wait_for_function("window.__twin && window.__twin.kpis !== null", timeout=90_000)
        settle(page, timeout=90_000)
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
    finally:
        context.close()
