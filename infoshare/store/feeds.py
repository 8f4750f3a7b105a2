"""Feed state: validators, cursors and the outcome of the last run, per feed."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .schema import feed_state


def get(conn: Connection, name: str) -> Row | None:
    return conn.execute(sa.select(feed_state).where(feed_state.c.name == name)).first()


def all_rows(conn: Connection) -> dict[str, Row]:
    return {row.name: row for row in conn.execute(sa.select(feed_state))}


def save(conn: Connection, name: str, **values) -> None:
    if get(conn, name) is None:
        conn.execute(feed_state.insert().values(name=name, **{"cursor": {}, "counts": {},
                                                              "errors": [], **values}))
    else:
        conn.execute(feed_state.update().where(feed_state.c.name == name).values(**values))
