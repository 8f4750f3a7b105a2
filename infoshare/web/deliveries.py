"""A subscription's webhook deliveries, as its owner sees them on the subscriptions page."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ..store.schema import deliveries


def recent(conn: Connection, subscription_pk: int, limit: int = 10) -> list[Row]:
    return list(conn.execute(deliveries.select()
                             .where(deliveries.c.subscription_pk == subscription_pk)
                             .order_by(deliveries.c.created_us.desc()).limit(limit)))


def dead(conn: Connection, subscription_pk: int, limit: int = 50) -> list[Row]:
    """Dead letters: deliveries that used up their attempts."""
    return list(conn.execute(deliveries.select()
                             .where(deliveries.c.subscription_pk == subscription_pk,
                                    deliveries.c.state == "dead")
                             .order_by(deliveries.c.created_us.desc()).limit(limit)))


def counts(conn: Connection, subscription_pk: int) -> dict[str, int]:
    query = (sa.select(deliveries.c.state, sa.func.count())
             .where(deliveries.c.subscription_pk == subscription_pk)
             .group_by(deliveries.c.state))
    return {state: n for state, n in conn.execute(query)}


def owned_dead(conn: Connection, subscription_pk: int, ids: Sequence[str]) -> list[str]:
    """Of `ids`, the dead deliveries of this subscription: a form may name any id, but only
    the owner's own dead letters are retried."""
    if not ids:
        return []
    query = sa.select(deliveries.c.id).where(deliveries.c.subscription_pk == subscription_pk,
                                             deliveries.c.state == "dead",
                                             deliveries.c.id.in_(list(ids)[:500]))
    return [row.id for row in conn.execute(query)]
