"""Time to the planner view's first idle render in headless Debian chromium, as a markdown table.

Starts ``twin serve`` on the sample city (loaded into a temporary data folder unless ``--data-dir`` holds
one), opens ``/`` in a fresh browser context each run (cold HTTP cache) and reads
``window.__twin.firstIdleMs``: from the client's start to MapLibre's first ``idle`` event with the default
layers drawn (style, tiles or GeoJSON, glyphs, deck.gl overlay). Also reported: navigation to idle as the
test sees it, the number of requests, and the largest GeoJSON answer (the issue's limit: ~10,000 features).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = os.environ.get("TWIN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist", "--no-sandbox"]
VIEWS = {
    "planner, city (default layers)": "/",
    "planner, street 3D (parcels extruded)": (
        "/#map=16.5/13.77200/109.22200/30/60&layers=wards,roads,parcels,cameras&terrain=0"
    ),
    "wall 1920×1080": "/wall?rotate=0",
}


def serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if k != "TWIN_DATABASE_URL"} | {"TWIN_DATA_DIR": str(data_dir)}
    if not (data_dir / "twin.sqlite").exists():
        subprocess.run([sys.executable, "-m", "twin", "samples"], env=env, check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("twin serve did not start")


def measure(browser: Any, url: str, size: tuple[int, int]) -> dict[str, float]:
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    requests: list[str] = []
    largest = [0]

    def on_response(response: Any) -> None:
        requests.append(response.url)
        if "/items" in response.url and response.ok and "json" in response.headers.get("content-type", ""):
            with contextlib.suppress(Exception):
                largest[0] = max(largest[0], int(json.loads(response.body()).get("numberReturned", 0)))

    page.on("response", on_response)
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_function("window.__twin && window.__twin.idleCount > 0", timeout=120_000)
    wall = (time.perf_counter() - started) * 1000
    result = {
        "first_idle_ms": float(page.evaluate("window.__twin.firstIdleMs")),
        "navigation_ms": wall,
        "requests": float(len(requests)),
        "largest_geojson": float(largest[0]),
    }
    context.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=None, help="a TWIN_DATA_DIR with the sample city loaded")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        process, base = serve(args.data_dir or Path(tmp))
        try:
            tiles = httpx.get(f"{base}/collections/parcels/tiles/WebMercatorQuad/tilejson.json").status_code == 200
            rows = []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for name, path in VIEWS.items():
                    size = (1920, 1080) if "wall" in name else (1400, 900)
                    measure(browser, base + path, size)  # warm the server's tile cache, not the browser's
                    runs = [measure(browser, base + path, size) for _ in range(args.runs)]
                    rows.append((name, runs))
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=15)
    print(
        f"First idle render in headless chromium (SwiftShader, CPU WebGL2), {args.runs} cold-cache runs each; "
        f"server {'with' if tiles else 'without'} vector tiles.\n"
    )
    print(
        "| view | first idle, median (ms) | min–max (ms) | navigation → idle, median (ms) | requests "
        "| largest GeoJSON page (features) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in rows:
        idle = [r["first_idle_ms"] for r in runs]
        nav = [r["navigation_ms"] for r in runs]
        print(
            f"| {name} | {statistics.median(idle):,.0f} | {min(idle):,.0f}–{max(idle):,.0f} | "
            f"{statistics.median(nav):,.0f} | {statistics.median(r['requests'] for r in runs):.0f} | "
            f"{max(r['largest_geojson'] for r in runs):,.0f} |"
        )


if __name__ == "__main__":
    main()
