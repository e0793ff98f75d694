"""The "now" of the sample city.

Every timestamp derives from a reference time passed to ``generate_city``, never
from the wall clock while generating, so the same seed and reference always
yield the same data. The default is the fixed ``REFERENCE_TIME``; ``twin
samples`` passes the current minute (``current_minute``), so that the wall counts
recent and overdue reports against a clock that fits the data.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

LOCAL_TZ = timezone(timedelta(hours=7), name="+07:00")
REFERENCE_TIME = datetime(2026, 11, 1, 0, 0, 0, tzinfo=LOCAL_TZ)
LOCAL_OFFSET_S = 7 * 3600
MINUTE = 60
HOUR = 3600
DAY = 86400


def current_minute() -> datetime:
    """The time in Quy Nhơn (UTC+7) now, to the minute."""
    return datetime.now(LOCAL_TZ).replace(second=0, microsecond=0)
