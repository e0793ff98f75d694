"""glibc's ``malloc`` tuned for a server that builds arrays of hundreds of kilobytes per request.

A tile request allocates and frees several such arrays (the rows read from the
database, numpy temporaries, the encoded tile). With glibc's defaults, memory
above the mmap threshold is mapped and unmapped each time, and free memory at
the top of the heap is given back to the system as soon as it passes the trim
threshold; either way the next request touches fresh pages, each a page fault
that zeroes 4 KiB. A dense point tile took about 160 faults.

Keeping such blocks in the heap and keeping some free memory between requests
removes most of them (160 → 4 a tile): a Twin worker used about 10% less CPU
for dense point tiles (``bench/tiles_bench.py``). The price is memory that stays
with the process after a peak: at most the trim threshold plus the top pad in
each of the (at most 4) arenas, about 320 MiB.

Setting a parameter turns off glibc's own adjustment of it. A parameter given
in the environment (``MALLOC_TRIM_THRESHOLD_`` and the like, see mallopt(3))
is left as the administrator set it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: mallopt(3) parameter numbers, with our value and the environment variable that overrides it.
SETTINGS = {
    "trim_threshold": (-1, 64 * MIB, "MALLOC_TRIM_THRESHOLD_"),
    "top_pad": (-2, 16 * MIB, "MALLOC_TOP_PAD_"),
    "mmap_threshold": (-3, 16 * MIB, "MALLOC_MMAP_THRESHOLD_"),
    "arena_max": (-8, 4, "MALLOC_ARENA_MAX"),
}


def tune_allocator() -> dict[str, int]:
    """Apply ``SETTINGS`` on glibc (not set in the environment); return what was applied, empty elsewhere."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return {}
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied: dict[str, int] = {}
    for name, (parameter, value, variable) in SETTINGS.items():
        if variable in os.environ:
            continue
        if mallopt(parameter, value) == 1:
            applied[name] = value
        else:
            log.warning("mallopt refused %s=%d", name, value)
    return applied
