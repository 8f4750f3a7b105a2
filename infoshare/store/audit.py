"""The audit trail: who did what, when. Written in the same transaction as the act."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .. import timestamps
from .schema import audit


def record(conn: Connection, actor: str, action: str, target: str, **details) -> None:
    conn.execute(audit.insert(), {"at_us": timestamps.now_us(), "actor": actor,
                                  "action": action, "target": target, "details": details})


def recent(conn: Connection, limit: int = 100, action: str | None = None) -> list[Row]:
    query = sa.select(audit).order_by(audit.c.pk.desc()).limit(limit)
    if action:
        query = query.where(audit.c.action == action)
    return list(conn.execute(query))


def search(conn: Connection, *, action: str | None = None, actor: str | None = None,
           target: str | None = None, since_us: int | None = None,
           until_us: int | None = None, before_pk: int | None = None,
           limit: int = 100) -> list[Row]:
    """Entries newest first, filtered (exact action, actor and target; a time range), from
    before a keyset position: the console's audit page."""
    query = sa.select(audit).order_by(audit.c.pk.desc()).limit(limit)
    for column, value in ((audit.c.action, action), (audit.c.actor, actor),
                          (audit.c.target, target)):
        if value:
            query = query.where(column == value)
    if since_us is not None:
        query = query.where(audit.c.at_us >= since_us)
    if until_us is not None:
        query = query.where(audit.c.at_us < until_us)
    if before_pk is not None:
        query = query.where(audit.c.pk < before_pk)
    return list(conn.execute(query))


def actions(conn: Connection) -> list[str]:
    """Every action the trail holds, for a filter's choices."""
    return list(conn.execute(sa.select(audit.c.action).distinct().order_by(audit.c.action))
                .scalars())


def describe(row: Row) -> dict:
    return {"at": timestamps.format_us(row.at_us), "actor": row.actor, "action": row.action,
            "target": row.target, "details": row.details}
