"""TAXII envelopes waiting to be stored in the background (docs/ARCHITECTURE.md, "Ingest in
the background").

A job is claimed like a lease: the claim lapses when not renewed, and at once when its
holder was a process of this host that has died, so a killed worker's envelope is taken up
again. Storing a job's objects, completing its status and deleting the job happen in one
transaction: an envelope is stored whole or not at all, however often it is retried.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .leases import gone
from .schema import ingest_jobs

# Rows looked at per claim: enough to step over jobs held by live workers.
_SCAN = 64


def enqueue(conn: Connection, *, status_id: str, principal_pk: int, collection_id: str,
            body: bytes, queued_us: int) -> None:
    conn.execute(ingest_jobs.insert().values(
        status_id=status_id, principal_pk=principal_pk, collection_id=collection_id,
        body=body, queued_us=queued_us, attempts=0))


def queued_by(conn: Connection, principal_pk: int) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(ingest_jobs).where(
        ingest_jobs.c.principal_pk == principal_pk)).scalar()


def _claimable(row: Row, now_us: int) -> bool:
    return (row.claimed_by is None or row.claimed_until_us < now_us
            or gone(row.claimed_by))


def waiting(conn: Connection, now_us: int) -> int:
    """How many jobs no live worker holds."""
    rows = conn.execute(sa.select(ingest_jobs.c.claimed_by, ingest_jobs.c.claimed_until_us)
                        .order_by(ingest_jobs.c.queued_us).limit(_SCAN)).all()
    return sum(1 for row in rows if _claimable(row, now_us))


def claim(conn: Connection, holder: str, now_us: int, until_us: int) -> Row | None:
    """The oldest job nobody live holds, now held by `holder` (in a write transaction)."""
    rows = conn.execute(sa.select(ingest_jobs.c.status_id, ingest_jobs.c.claimed_by,
                                  ingest_jobs.c.claimed_until_us)
                        .order_by(ingest_jobs.c.queued_us).limit(_SCAN)).all()
    for row in rows:
        if _claimable(row, now_us) and _take(conn, row, holder, until_us):
            return conn.execute(sa.select(ingest_jobs).where(
                ingest_jobs.c.status_id == row.status_id)).first()
    return None


def _take(conn: Connection, row: Row, holder: str, until_us: int) -> bool:
    """Compare and set: the claim is ours only if nobody changed it since we read it
    (PostgreSQL runs claims concurrently; SQLite's write lock already serialises them)."""
    return conn.execute(ingest_jobs.update().where(
        ingest_jobs.c.status_id == row.status_id,
        ingest_jobs.c.claimed_by.is_not_distinct_from(row.claimed_by),
        ingest_jobs.c.claimed_until_us.is_not_distinct_from(row.claimed_until_us),
    ).values(claimed_by=holder, claimed_until_us=until_us,
             attempts=ingest_jobs.c.attempts + 1)).rowcount == 1


def renew(conn: Connection, status_id: str, holder: str, until_us: int) -> bool:
    """Extend a claim; False when the job is no longer this holder's."""
    return conn.execute(ingest_jobs.update().where(
        ingest_jobs.c.status_id == status_id, ingest_jobs.c.claimed_by == holder,
    ).values(claimed_until_us=until_us)).rowcount == 1


def held_by(conn: Connection, status_id: str, holder: str) -> bool:
    return conn.execute(sa.select(ingest_jobs.c.status_id).where(
        ingest_jobs.c.status_id == status_id, ingest_jobs.c.claimed_by == holder)).first() \
        is not None


def delete(conn: Connection, status_id: str) -> None:
    conn.execute(ingest_jobs.delete().where(ingest_jobs.c.status_id == status_id))
