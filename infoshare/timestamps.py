"""STIX/TAXII timestamps as integer microseconds since the epoch.

The store orders and compares versions and date_added as integers: exact, index-friendly,
and free of the string-precision traps of STIX ("...00Z" and "...00.000Z" are one instant).
TAXII requires date_added to be shown with exactly six fractional digits.
"""

from __future__ import annotations

import calendar
import datetime
import re
import time

_TIMESTAMP = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?[Zz]\Z"
)


class BadTimestamp(ValueError):
    pass


def parse_us(text: str) -> int:
    """Microseconds since the epoch for an RFC 3339 UTC timestamp ending in Z."""
    match = _TIMESTAMP.match(text) if isinstance(text, str) else None
    if not match:
        raise BadTimestamp(f"{text!r} is not a UTC timestamp like 2024-01-31T12:00:00.000Z")
    year, month, day, hour, minute, second, frac = match.groups()
    parts = (int(year), int(month), int(day), int(hour), int(minute), int(second))
    try:
        datetime.datetime(*parts)  # rejects 2023-02-29, hour 24 and the like
        seconds = calendar.timegm((*parts, 0, 0, 0))
    except (OverflowError, ValueError):
        raise BadTimestamp(f"{text!r} is not a valid date and time") from None
    micros = int((frac or "0")[:6].ljust(6, "0"))
    return seconds * 1_000_000 + micros


def format_us(micros: int) -> str:
    """TAXII form: always six fractional digits."""
    seconds, frac = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:06d}Z"


def format_stix(micros: int) -> str:
    """STIX form for objects the service writes: millisecond precision."""
    seconds, frac = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac // 1000:03d}Z"


def now_us() -> int:
    return time.time_ns() // 1000
