"""Where relayed objects came from: the feed, the pinned key, the hub that signed them."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .schema import relayed


def record(conn: Connection, feed: str, stored: Sequence[tuple[int, dict]]) -> None:
    """`stored`: (date_added, {kid, origin_identity, origin_name, hops}) per new row."""
    if stored:
        conn.execute(relayed.insert(), [{"date_added": date_added, "feed": feed, **facts}
                                        for date_added, facts in stored])


def by_feed(conn: Connection) -> dict[str, list[dict]]:
    """Per feed, each hub it relayed from: name, identity, kids and how many objects."""
    rows = conn.execute(sa.select(
        relayed.c.feed, relayed.c.origin_name, relayed.c.origin_identity, relayed.c.kid,
        relayed.c.hops, sa.func.count().label("objects"))
        .group_by(relayed.c.feed, relayed.c.origin_name, relayed.c.origin_identity,
                  relayed.c.kid, relayed.c.hops)
        .order_by(relayed.c.feed, relayed.c.hops, relayed.c.origin_name))
    found: dict[str, dict[str, dict]] = {}
    for row in rows:
        hub = found.setdefault(row.feed, {}).setdefault(row.origin_identity, {
            "name": row.origin_name, "identity": row.origin_identity, "hops": row.hops,
            "kids": [], "objects": 0})
        hub["kids"].append(row.kid)
        hub["objects"] += row.objects
    return {feed: list(hubs.values()) for feed, hubs in found.items()}
