"""The server's malloc tuning: on glibc, steady request-sized allocations stop faulting in fresh pages."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)

# Arrays of the sizes a tile request makes (rows read, temporaries, the tile), made and dropped in a loop.
WORKLOAD = """
import json, resource, sys
import numpy as np
from twin.allocator import tune_allocator

applied = tune_allocator() if sys.argv[1] == "tuned" else {}

def request():
    rows = np.ones(40_000)
    codes = (rows * 2).astype(np.uint8)
    slots = np.empty((40_000, 30), np.uint8)
    slots[:] = 1
    return len(slots[slots > 0].tobytes()) + int(codes.sum())

for _ in range(20):
    request()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    request()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _run(mode: str, **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD, mode], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_tuned_allocator_reuses_memory_across_requests() -> None:
    untuned, tuned = _run("untuned"), _run("tuned")
    assert tuned["applied"] == {
        "trim_threshold": 64 << 20,
        "top_pad": 16 << 20,
        "mmap_threshold": 16 << 20,
        "arena_max": 4,
    }
    # Each request of the untuned process maps its big arrays afresh: hundreds of page faults.
    assert isinstance(untuned["faults"], float) and untuned["faults"] > 100
    assert isinstance(tuned["faults"], float) and tuned["faults"] < 5


def test_settings_from_the_environment_are_kept() -> None:
    tuned = _run("tuned", MALLOC_ARENA_MAX="2", MALLOC_TOP_PAD_="0")
    assert tuned["applied"] == {"trim_threshold": 64 << 20, "mmap_threshold": 16 << 20}
