"""Notices the service published: the accepted document per report, for updates, revokes
and the bulletin list."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .. import access
from .event_time import event_us
from .schema import notices, objects

# Built once: every publish runs these, under its claim of the notice (see claims.py).
_BY_SOURCE = sa.select(notices).where(notices.c.source == sa.bindparam("source"),
                                      notices.c.org == sa.bindparam("org"),
                                      notices.c.source_id == sa.bindparam("source_id"))
_UPDATE = notices.update().where(notices.c.report_id == sa.bindparam("_report_id"))


def by_source(conn: Connection, source: str, org: str, source_id: str) -> Row | None:
    """An organisation's notice by its source_id (source_ids are per organisation)."""
    return conn.execute(_BY_SOURCE, {"source": source, "org": org,
                                     "source_id": source_id}).first()


def save(conn: Connection, row: dict, exists: bool) -> None:
    """Insert or update a notice's row; the caller read whether it exists under the same
    lock (publish.py), so no statement is spent asking again."""
    if exists:
        values = {k: v for k, v in row.items() if k not in ("report_id", "created_us",
                                                           "published_by")}
        conn.execute(_UPDATE, {**values, "_report_id": row["report_id"]})
    else:
        conn.execute(notices.insert(), row)


def _visible_report(principal: access.Principal):
    """Notices whose current report the principal may see (access.py decides): the
    service's own report, never an object someone else stored under a shared id."""
    return sa.select(objects.c.id).where(objects.c.id == notices.c.report_id,
                                         objects.c.origin == "service",
                                         objects.c.is_latest, access.visible(principal))


def get(conn: Connection, principal: access.Principal, report_id: str) -> Row | None:
    query = sa.select(notices).where(notices.c.report_id == report_id,
                                     _visible_report(principal).exists())
    return conn.execute(query).first()


def listing(conn: Connection, principal: access.Principal, *, sector_bit: int | None = None,
            tlp: str | None = None, kind: str | None = None, since_us: int | None = None,
            include_revoked: bool = True, limit: int = 100, before_us: int | None = None,
            by_event: bool = False, event_from_us: int | None = None,
            event_to_us: int | None = None, before_event: tuple[int, str] | None = None
            ) -> list[Row]:
    """Notices the principal may see, most recently changed first; with `by_event`, by
    event time (store/event_time.py), newest first, each row carrying it as `event_us`,
    with an optional event-time range and a (event_us, report_id) keyset position."""
    when = event_us().label("event_us")
    query = sa.select(notices, when).where(_visible_report(principal).exists())
    if sector_bit is not None:
        query = query.where(sa.or_(notices.c.all_sectors,
                                   notices.c.sector_mask.op("&")(sector_bit) != 0))
    if tlp:
        query = query.where(notices.c.tlp == tlp)
    if kind:
        query = query.where(notices.c.kind == kind)
    if since_us is not None:
        query = query.where(notices.c.modified_us >= since_us)
    if before_us is not None:
        query = query.where(notices.c.modified_us < before_us)
    if not include_revoked:
        query = query.where(~notices.c.revoked)
    if not by_event:
        return list(conn.execute(query.order_by(notices.c.modified_us.desc()).limit(limit)))
    if event_from_us is not None:
        query = query.where(event_us() >= event_from_us)
    if event_to_us is not None:
        query = query.where(event_us() < event_to_us)
    if before_event is not None:
        query = query.where(sa.tuple_(event_us(), notices.c.report_id) < before_event)
    order = (event_us().desc(), notices.c.report_id.desc())
    return list(conn.execute(query.order_by(*order).limit(limit)))


def by_report(conn: Connection, report_id: str) -> Row | None:
    return conn.execute(sa.select(notices).where(notices.c.report_id == report_id)).first()
