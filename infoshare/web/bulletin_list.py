"""The bulletins list, newest event first (timeline.py: the source's time, else first
publication), with filters (sector, TLP, kind, event-time range, changed since) and older
pages.

store.notices.listing applies the access rule, so a reader only ever sees the bulletins
whose current report it may read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import render_template, request

from .. import sectors, tiers, timestamps
from ..notices import KINDS
from ..store import notices as notice_store
from ..store.engine import read
from . import timeline
from .blueprint import bp
from .common import principal, svc
from .identity import login_required

PAGE = 50
DAY_US = 86_400_000_000
# A keyset position: the last row's event time (microseconds, which fit in 18 digits: more
# overflowed the database's integers) and its report id.
_CURSOR = re.compile(r"^(-?\d{1,18})~(report--[0-9a-f-]{36})$")


@dataclass
class Filters:
    sector: str = ""
    tlp: str = ""
    kind: str = ""
    since: str = ""  # YYYY-MM-DD, UTC: changed (stored) since
    start: str = ""  # YYYY-MM-DD, UTC: event time from this day ...
    end: str = ""  # ... to this day, inclusive
    before: tuple[int, str] | None = None  # keyset position for older pages
    problems: list[str] = field(default_factory=list)

    def query(self) -> dict:
        return {"sector_bit": sectors.bit(self.sector) if self.sector else None,
                "tlp": self.tlp or None, "kind": self.kind or None,
                "since_us": _day_us(self.since), "by_event": True,
                "event_from_us": _day_us(self.start),
                "event_to_us": _day_us(self.end) + DAY_US if self.end else None,
                "before_event": self.before}

    def args(self, **extra) -> dict:
        """Query arguments for a link that keeps these filters."""
        base = {"sector": self.sector, "tlp": self.tlp, "kind": self.kind,
                "since": self.since, "from": self.start, "to": self.end}
        return {k: v for k, v in {**base, **extra}.items() if v}

    @property
    def any(self) -> bool:
        return bool(self.sector or self.tlp or self.kind or self.since or self.start
                    or self.end)


def _day_us(day: str) -> int | None:
    return timestamps.parse_us(day + "T00:00:00Z") if day else None


def parse(args) -> Filters:
    """Filters from the query string; an unknown value is dropped and said so."""
    f = Filters()
    for name, allowed in (("sector", sectors.CODES), ("tlp", tiers.TLP_LEVELS),
                          ("kind", KINDS)):
        value = args.get(name, "")
        if value in allowed:
            setattr(f, name, value)
        elif value:
            f.problems.append(f"Unknown {name} {value!r}: filter ignored.")
    f.since = _date(args.get("since", ""), f.problems)
    f.start = _date(args.get("from", ""), f.problems)
    f.end = _date(args.get("to", ""), f.problems)
    found = _CURSOR.match(args.get("before", ""))
    f.before = (int(found.group(1)), found.group(2)) if found else None  # else ignored
    return f


def cursor(row) -> str:
    return f"{row.event_us}~{row.report_id}"


def _date(value: str, problems: list[str]) -> str:
    if not value:
        return ""
    try:
        timestamps.parse_us(value + "T00:00:00Z")
    except timestamps.BadTimestamp:
        problems.append(f"{value!r} is not a date like 2024-05-31: filter ignored.")
        return ""
    return value


@bp.get("/bulletins")
@login_required
def bulletin_list():
    filters = parse(request.args)
    with read(svc().engine) as conn:
        rows = notice_store.listing(conn, principal(), limit=PAGE + 1, **filters.query())
    older = filters.args(before=cursor(rows[PAGE - 1])) if len(rows) > PAGE else None
    now = timestamps.now_us()
    shown = [(row, timeline.validity(row.revoked, row.document, row.modified_us, now))
             for row in rows[:PAGE]]
    return render_template("bulletins.html", rows=shown, filters=filters, older=older,
                           sectors=sectors.SECTORS, tlps=tiers.TLP_LEVELS, kinds=KINDS)
