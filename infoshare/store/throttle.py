"""Counting failed authentications per key in fixed windows (used by authn.Guard).

Rows are written only when an attempt fails, and never while a key is blocked (the check
comes first), so a flood costs at most `limit` writes per key and window.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .schema import throttle


def blocked_until(conn: Connection, key: str, limit: int, window_us: int,
                  now_us: int) -> int | None:
    """When the key's window ends, if it has `limit` failures in it; else None."""
    row = conn.execute(sa.select(throttle.c.window_us, throttle.c.failures)
                       .where(throttle.c.key == key)).first()
    if row is None or row.window_us + window_us <= now_us or row.failures < limit:
        return None
    return row.window_us + window_us


def failed(conn: Connection, key: str, window_us: int, now_us: int) -> None:
    row = conn.execute(sa.select(throttle.c.window_us).where(throttle.c.key == key)).first()
    if row is None:
        conn.execute(throttle.insert().values(key=key, window_us=now_us, failures=1))
    elif row.window_us + window_us <= now_us:  # a new window
        conn.execute(throttle.update().where(throttle.c.key == key)
                     .values(window_us=now_us, failures=1))
    else:
        conn.execute(throttle.update().where(throttle.c.key == key)
                     .values(failures=throttle.c.failures + 1))
