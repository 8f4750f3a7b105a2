"""The audit trail in the admin area: newest first, filtered by action, actor, target and
a date range, with older pages. Read-only: nothing here changes the trail."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import render_template, request

from .. import timestamps
from ..store import audit
from ..store.engine import read
from .blueprint import bp
from .common import svc
from .identity import admin_required

PAGE = 100
DAY_US = 86_400_000_000


@dataclass
class Filters:
    action: str = ""
    actor: str = ""
    target: str = ""
    start: str = ""  # YYYY-MM-DD, UTC
    end: str = ""  # inclusive
    before: int | None = None  # keyset: the last entry's pk
    problems: list[str] = field(default_factory=list)

    def query(self) -> dict:
        return {"action": self.action or None, "actor": self.actor or None,
                "target": self.target or None, "since_us": _day(self.start),
                "until_us": _day(self.end) + DAY_US if self.end else None,
                "before_pk": self.before}

    def args(self, **extra) -> dict:
        base = {"action": self.action, "actor": self.actor, "target": self.target,
                "from": self.start, "to": self.end}
        return {k: v for k, v in {**base, **extra}.items() if v}


def _day(text: str) -> int | None:
    return timestamps.parse_us(text + "T00:00:00Z") if text else None


def parse(args) -> Filters:
    """Filters from the query string; a bad date or position is dropped and said so."""
    f = Filters(**{key: args.get(key, "").strip()[:300] for key in ("action", "actor",
                                                                     "target")})
    for attr, key in (("start", "from"), ("end", "to")):
        value = args.get(key, "")
        try:
            _day(value)
            setattr(f, attr, value)
        except timestamps.BadTimestamp:
            f.problems.append(f"{value!r} is not a date like 2024-05-31: filter ignored.")
    before = args.get("before", "")
    f.before = int(before) if before.isascii() and before.isdigit() and len(before) <= 18 \
        else None
    return f


@bp.get("/admin/audit")
@admin_required
def admin_audit():
    filters = parse(request.args)
    with read(svc().engine) as conn:
        rows = audit.search(conn, limit=PAGE + 1, **filters.query())
        actions = audit.actions(conn)
    older = filters.args(before=rows[PAGE - 1].pk) if len(rows) > PAGE else None
    return render_template("admin_audit.html", rows=rows[:PAGE], filters=filters,
                           older=older, actions=actions)
