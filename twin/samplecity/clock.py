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


#: How a clock is written on the command line (``--as-of``), in Quy Nhơn time.
AS_OF_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


def parse_as_of(text: str) -> datetime:
    """A clock given as one of ``AS_OF_FORMATS``, in Quy Nhơn time (UTC+7)."""
    for form in AS_OF_FORMATS:
        try:
            return datetime.strptime(text, form).replace(tzinfo=LOCAL_TZ)
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date or time like 2026-11-01, 2026-11-01T08:30 or 2026-11-01T08:30:00")


def current_minute() -> datetime:
    """The time in Quy Nhơn (UTC+7) now, to the minute."""
    return datetime.now(LOCAL_TZ).replace(second=0, microsecond=0)
