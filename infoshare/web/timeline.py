"""Time told truthfully: whether a notice still holds, and when it happened.

Pure: a notice's flags and document in, facts out; no Flask, no database. Every page
that shows a notice asks here, so the overview, the list and the bulletin page agree.

- state: revoked (the publisher withdrew it), expired (its valid_until has passed; the
  overview leaves these out), upcoming (its valid_from is still ahead: a forecast, a
  scheduled outage) or active.
- event time: when the source says it happened (valid_from: a feed's effective/onset/sent,
  an advisory's date, what the author gave), else the report's `published` (the source's
  issue time where it gives one, else the first publication). Ingestion (first stored,
  last changed) is shown after it, never instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import timestamps

ACTIVE, EXPIRED, REVOKED, UPCOMING = "active", "expired", "revoked", "upcoming"


@dataclass(frozen=True)
class Validity:
    state: str  # ACTIVE, EXPIRED, REVOKED or UPCOMING
    valid_from: int | None  # microseconds; None: from publication
    valid_until: int | None  # None: no end given
    revoked_us: int | None  # when it was revoked (its last change), if it was

    @property
    def label(self) -> str:
        return self.state.capitalize()


def _us(text: str | None) -> int | None:
    try:
        return timestamps.parse_us(text) if text else None
    except timestamps.BadTimestamp:
        return None


def validity(revoked: bool, document: dict, modified_us: int, now_us: int) -> Validity:
    start, end = _us(document.get("valid_from")), _us(document.get("valid_until"))
    if revoked:
        state = REVOKED
    elif end is not None and end <= now_us:
        state = EXPIRED
    elif start is not None and start > now_us:
        state = UPCOMING
    else:
        state = ACTIVE
    return Validity(state, start, end, modified_us if revoked else None)


def event_us(document: dict, issued_us: int) -> int:
    """The source's time (valid_from), else when it was issued (the notice's issued_us,
    else its first publication). The same rule as the store's SQL (store/event_time.py),
    for rows already in hand."""
    start = _us(document.get("valid_from"))
    return start if start is not None else issued_us


def is_current(document: dict, now_us: int) -> bool:
    """Not expired (revocation is the store's filter)."""
    end = _us(document.get("valid_until"))
    return end is None or end > now_us
