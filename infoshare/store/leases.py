"""Leases in the database: one holder at a time for a named job, across all processes
and hosts. A lease not renewed before it expires can be taken by another holder, and one
held by a process of this host that has died is taken at once."""

from __future__ import annotations

import os
import socket

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import timestamps
from .engine import read, write
from .schema import leases


def holder() -> str:
    """This process, as a lease holder: "host:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire(engine: Engine, name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease; False when someone else holds it.

    A lease whose holder was a process on this host that no longer runs is taken at
    once (a SIGKILL leaves no time to release it); elsewhere it lapses when not renewed.
    """
    now = timestamps.now_us()
    until = now + int(seconds * 1_000_000)
    try:
        with write(engine) as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
            if row is None:
                conn.execute(leases.insert().values(name=name, holder=holder, until_us=until))
                return True
            if row.holder != holder and _held(row, now):
                return False
            conn.execute(leases.update().where(leases.c.name == name)
                         .values(holder=holder, until_us=until))
            return True
    except sa.exc.IntegrityError:  # another process inserted it first
        return False


def free(engine: Engine, name: str) -> bool:
    """Whether `acquire` would give the lease to a new holder now (a read, no claim)."""
    with read(engine) as conn:
        row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
    return row is None or not _held(row, timestamps.now_us())


def _held(row, now_us: int) -> bool:
    """Whether the lease's holder still has it: renewed in time, and not a process of this
    host that has died."""
    return row.until_us >= now_us and not gone(row.holder)


def gone(holder: str) -> bool:
    """Whether `holder` ("host:pid") was a process of this host that has ended."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, under another user
        return False
    return False


def release(engine: Engine, name: str, holder: str) -> None:
    with write(engine) as conn:
        conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))
