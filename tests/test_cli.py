"""The ``twin`` command against a real server process: what one process changes, the other serves."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyogrio

from tests.conftest import real_data


def run_twin(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "twin", *args], env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


ADMIN = {"X-API-Key": "k"}  # TWIN_API_KEYS of the `env` fixture


def layer_ids(url: str) -> list[str]:
    return [d["id"] for d in httpx.get(f"{url}/admin/layers", headers=ADMIN).json()]


def test_help_reads_well(env: dict[str, str]) -> None:
    out = run_twin(env, "--help").stdout
    for command in ("serve", "samples", "import", "export", "layers"):
        assert command in out
    assert "TWIN_DATABASE_URL" in out


def test_import_reports_counts_and_bad_files_give_one_clear_line(env: dict[str, str], tmp_path: Path) -> None:
    wards = real_data("gia-lai-binh-dinh-wards-2025.geojson")
    failed = run_twin(env, "import", str(wards), "--layer", "wards", check=False)
    assert failed.returncode == 1
    assert "invalid geometry" in failed.stderr and "Traceback" not in failed.stderr
    done = run_twin(env, "import", str(wards), "--layer", "wards", "--repair", "--kind", "admin_area")
    assert "wards: 135 features created and loaded from EPSG:4326" in done.stdout
    listed = run_twin(env, "layers", "list").stdout
    assert "wards" in listed and "135" in listed
    out = tmp_path / "wards.gpkg"
    printed = run_twin(env, "export", "wards", str(out), "--bbox", "109,13.5,109.4,14").stdout
    written = int(printed.split(": ")[1].split(" features")[0])
    assert 0 < written < 135 and pyogrio.read_info(out)["features"] == written
    assert json.loads(run_twin(env, "layers", "show", "wards").stdout)["kind"] == "admin_area"


def test_server_sees_cli_changes_without_restart(env: dict[str, str], server: str, tmp_path: Path) -> None:
    assert layer_ids(server) == []
    definition = tmp_path / "lights.json"
    definition.write_text(
        json.dumps(
            {
                "id": "street_lights",
                "title": "Đèn đường",
                "kind": "infrastructure",
                "geometry_type": "Point",
                "fields": [{"name": "power_w", "type": "integer"}],
            }
        ),
        encoding="utf-8",
    )
    run_twin(env, "layers", "create", str(definition))
    # Two workers: every one of them must see the new layer at once.
    assert all(layer_ids(server) == ["street_lights"] for _ in range(6))
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"title": "Đèn chiếu sáng"}), encoding="utf-8")
    run_twin(env, "layers", "alter", "street_lights", str(patch))
    assert all(
        httpx.get(f"{server}/admin/layers", headers=ADMIN).json()[0]["title"] == "Đèn chiếu sáng" for _ in range(6)
    )
    run_twin(env, "layers", "drop", "street_lights", "--yes")
    assert all(layer_ids(server) == [] for _ in range(6))


def test_samples_load_into_a_running_server(env: dict[str, str], server: str) -> None:
    result = run_twin(env, "samples", "--scale", "0.02")
    ids = layer_ids(server)
    for expected in ("wards", "address_points", "parcels", "roads", "cameras", "sensors", "vessels", "incidents"):
        assert expected in ids
        assert expected in result.stdout
    wards = httpx.get(f"{server}/admin/layers/wards", headers=ADMIN).json()
    assert wards["definition"]["kind"] == "admin_area" and wards["feature_count"] >= 10
    # The sample's clock is now: the latest report came in during the day before.
    now = datetime.now(UTC)
    latest = _latest_report(server)
    assert now - timedelta(days=1) < latest <= now
    # Running it again replaces the samples rather than doubling them; --as-of sets the clock.
    run_twin(env, "samples", "--scale", "0.02", "--as-of", "2026-11-01T08:00")
    assert httpx.get(f"{server}/admin/layers/wards", headers=ADMIN).json()["feature_count"] == wards["feature_count"]
    clock = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)  # 08:00 in Quy Nhơn
    assert clock - timedelta(days=1) < _latest_report(server) < clock
    refused = run_twin(env, "samples", "--as-of", "1/11/2026", check=False)
    assert refused.returncode == 2 and "--as-of" in refused.stderr and "2026-11-01T08:30" in refused.stderr
    assert httpx.get(f"{server}/admin/layers/wards", headers=ADMIN).json()["feature_count"] == wards["feature_count"]


def _latest_report(server: str) -> datetime:
    page = httpx.get(
        f"{server}/collections/incidents/items", params={"sortby": "-reported_at", "limit": 1}, headers=ADMIN
    ).json()
    return datetime.fromisoformat(page["features"][0]["properties"]["reported_at"])
