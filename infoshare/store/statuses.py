"""TAXII status resources: the outcome of each POST, kept at least the retention period."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .schema import statuses


def save(conn: Connection, *, status_id: str, principal_pk: int, collection_id: str,
         request_us: int, successes: list[dict], failures: list[dict],
         pendings: list[dict]) -> None:
    conn.execute(statuses.insert().values(
        id=status_id, principal_pk=principal_pk, collection_id=collection_id,
        status="pending" if pendings else "complete", request_us=request_us,
        total_count=len(successes) + len(failures) + len(pendings),
        success_count=len(successes), failure_count=len(failures),
        pending_count=len(pendings),
        details={"successes": successes, "failures": failures, "pendings": pendings},
    ))


def get(conn: Connection, status_id: str) -> Row | None:
    return conn.execute(sa.select(statuses).where(statuses.c.id == status_id)).first()


def purge(conn: Connection, older_than_us: int) -> int:
    return conn.execute(statuses.delete().where(statuses.c.request_us < older_than_us)).rowcount
