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


def complete(conn: Connection, status_id: str, successes: list[dict],
             failures: list[dict]) -> None:
    """A pending status becomes complete, with every object's outcome at once."""
    conn.execute(statuses.update().where(statuses.c.id == status_id).values(
        status="complete", success_count=len(successes), failure_count=len(failures),
        pending_count=0,
        details={"successes": successes, "failures": failures, "pendings": []},
    ))


def get(conn: Connection, status_id: str) -> Row | None:
    return conn.execute(sa.select(statuses).where(statuses.c.id == status_id)).first()


def purge(conn: Connection, older_than_us: int) -> int:
    """Complete statuses past retention; a pending one stays until its envelope is done."""
    return conn.execute(statuses.delete().where(statuses.c.request_us < older_than_us,
                                                statuses.c.status == "complete")).rowcount
