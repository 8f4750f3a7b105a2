"""Leases in the database: one holder at a time for a named job, across all processes
and hosts. A lease not renewed before it expires can be taken by another holder."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import timestamps
from .engine import write
from .schema import leases


def acquire(engine: Engine, name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease; False when someone else holds it."""
    now = timestamps.now_us()
    until = now + int(seconds * 1_000_000)
    try:
        with write(engine) as conn:
            taken = conn.execute(leases.update().where(
                leases.c.name == name,
                sa.or_(leases.c.holder == holder, leases.c.until_us < now),
            ).values(holder=holder, until_us=until)).rowcount
            if taken:
                return True
            if conn.execute(sa.select(leases.c.name).where(leases.c.name == name)).first():
                return False
            conn.execute(leases.insert().values(name=name, holder=holder, until_us=until))
            return True
    except sa.exc.IntegrityError:  # another process inserted it first
        return False


def release(engine: Engine, name: str, holder: str) -> None:
    with write(engine) as conn:
        conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))
