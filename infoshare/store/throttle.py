"""Counting authentication attempts per key in fixed windows (used by authn.Guard).

An attempt is counted before its slow hash is computed, in one statement that also tells
whether the key is blocked, so requests racing in together cannot all pass a check made
before any of them was counted; a success then takes its count back. A blocked key is
never written to, so a flood costs at most `limit` writes per key and window.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .schema import throttle


def attempt(conn: Connection, key: str, limit: int, window_us: int, now_us: int) -> int | None:
    """Count one attempt; when the window already holds `limit`, count nothing and return
    when the window ends. Call inside store.write()."""
    _ensure_row(conn, key, now_us)
    row = conn.execute(sa.select(throttle.c.window_us, throttle.c.failures)
                       .where(throttle.c.key == key)).first()
    if row.window_us + window_us <= now_us:  # a new window
        conn.execute(throttle.update().where(throttle.c.key == key)
                     .values(window_us=now_us, failures=1))
        return None
    if row.failures >= limit:
        return row.window_us + window_us
    conn.execute(throttle.update().where(throttle.c.key == key)
                 .values(failures=throttle.c.failures + 1))
    return None


def forgive(conn: Connection, key: str) -> None:
    """Take back the count of an attempt that succeeded."""
    conn.execute(throttle.update().where(throttle.c.key == key, throttle.c.failures > 0)
                 .values(failures=throttle.c.failures - 1))


def _ensure_row(conn: Connection, key: str, now_us: int) -> None:
    """The key's row exists and is locked for this transaction (two first attempts at
    once must not both insert)."""
    values = {"key": key, "window_us": now_us, "failures": 0}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(throttle).values(**values).on_conflict_do_nothing())
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(throttle.c.key).where(throttle.c.key == key).with_for_update())
