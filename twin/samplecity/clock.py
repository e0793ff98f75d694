"""The fixed "now" of the sample city.

Every timestamp derives from this reference date, never from the wall clock,
so the same seed always yields the same data.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

LOCAL_TZ = timezone(timedelta(hours=7), name="+07:00")
REFERENCE_TIME = datetime(2026, 11, 1, 0, 0, 0, tzinfo=LOCAL_TZ)
REFERENCE_EPOCH = int(REFERENCE_TIME.timestamp())
LOCAL_OFFSET_S = 7 * 3600
MINUTE = 60
HOUR = 3600
DAY = 86400
