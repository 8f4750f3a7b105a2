"""The bulletins list, with filters (sector, TLP, kind, changed since) and older pages.

store.notices.listing applies the access rule, so a reader only ever sees the bulletins
whose current report it may read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import render_template, request

from .. import sectors, tiers, timestamps
from ..notices import KINDS
from ..store import notices as notice_store
from ..store.engine import read
from .blueprint import bp
from .common import principal, svc
from .identity import login_required

PAGE = 50


@dataclass
class Filters:
    sector: str = ""
    tlp: str = ""
    kind: str = ""
    since: str = ""  # YYYY-MM-DD, UTC
    before: int | None = None  # modified_us keyset for older pages
    problems: list[str] = field(default_factory=list)

    def query(self) -> dict:
        since_us = timestamps.parse_us(self.since + "T00:00:00Z") if self.since else None
        return {"sector_bit": sectors.bit(self.sector) if self.sector else None,
                "tlp": self.tlp or None, "kind": self.kind or None, "since_us": since_us,
                "before_us": self.before}

    def args(self, **extra) -> dict:
        """Query arguments for a link that keeps these filters."""
        base = {"sector": self.sector, "tlp": self.tlp, "kind": self.kind,
                "since": self.since}
        return {k: v for k, v in {**base, **extra}.items() if v}


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
    f.since = _since(args.get("since", ""), f.problems)
    before = args.get("before", "")
    # A keyset position: microseconds since the epoch, which fit in 18 digits; anything
    # else (26 digits overflowed the database's integers) is ignored like a bad filter.
    f.before = int(before) if before.isascii() and before.isdigit() and len(before) <= 18 \
        else None
    return f


def _since(value: str, problems: list[str]) -> str:
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
    older = filters.args(before=rows[PAGE - 1].modified_us) if len(rows) > PAGE else None
    return render_template("bulletins.html", rows=rows[:PAGE], filters=filters, older=older,
                           sectors=sectors.SECTORS, tlps=tiers.TLP_LEVELS, kinds=KINDS)
