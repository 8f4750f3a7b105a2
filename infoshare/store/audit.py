"""The audit trail: who did what, when. Written in the same transaction as the act."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .. import timestamps
from .schema import audit


def record(conn: Connection, actor: str, action: str, target: str, **details) -> None:
    conn.execute(audit.insert().values(at_us=timestamps.now_us(), actor=actor, action=action,
                                       target=target, details=details))


def recent(conn: Connection, limit: int = 100, action: str | None = None) -> list[Row]:
    query = sa.select(audit).order_by(audit.c.pk.desc()).limit(limit)
    if action:
        query = query.where(audit.c.action == action)
    return list(conn.execute(query))


def describe(row: Row) -> dict:
    return {"at": timestamps.format_us(row.at_us), "actor": row.actor, "action": row.action,
            "target": row.target, "details": row.details}
