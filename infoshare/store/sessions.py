"""Console sessions held on the server (see schema.sessions)."""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import timestamps
from .schema import sessions


def _id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(conn: Connection, principal_pk: int, max_age_s: int) -> str:
    """A new session; returns the token for the cookie (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    now = timestamps.now_us()
    conn.execute(sessions.delete().where(sessions.c.expires_us < now))  # tidy as we go
    conn.execute(sessions.insert().values(id=_id(token), principal_pk=principal_pk,
                                          created_us=now,
                                          expires_us=now + max_age_s * 1_000_000))
    return token


def principal_of(conn: Connection, token: str) -> int | None:
    """The principal of a live session, or None (ended, expired or never issued)."""
    row = conn.execute(sa.select(sessions.c.principal_pk, sessions.c.expires_us)
                       .where(sessions.c.id == _id(token))).first()
    if row is None or row.expires_us < timestamps.now_us():
        return None
    return row.principal_pk


def end(conn: Connection, token: str) -> None:
    conn.execute(sessions.delete().where(sessions.c.id == _id(token)))


def end_all(conn: Connection, principal_pk: int) -> int:
    """End every session of a principal (disabled, new password, revoked key)."""
    return conn.execute(sessions.delete().where(sessions.c.principal_pk == principal_pk)
                        ).rowcount
