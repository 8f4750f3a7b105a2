"""Notices the service published: the accepted document per report, for updates, revokes
and the bulletin list."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .. import access
from .schema import notices, objects


def by_source(conn: Connection, source: str, org: str, source_id: str) -> Row | None:
    """An organisation's notice by its source_id (source_ids are per organisation)."""
    return conn.execute(sa.select(notices).where(
        notices.c.source == source, notices.c.org == org,
        notices.c.source_id == source_id)).first()


def save(conn: Connection, row: dict) -> None:
    exists = conn.execute(sa.select(notices.c.report_id)
                          .where(notices.c.report_id == row["report_id"])).first()
    if exists:
        values = {k: v for k, v in row.items() if k not in ("report_id", "created_us",
                                                           "published_by")}
        conn.execute(notices.update().where(notices.c.report_id == row["report_id"])
                     .values(**values))
    else:
        conn.execute(notices.insert().values(**row))


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
            include_revoked: bool = True, limit: int = 100, before_us: int | None = None
            ) -> list[Row]:
    query = sa.select(notices).where(_visible_report(principal).exists())
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
    return list(conn.execute(query.order_by(notices.c.modified_us.desc()).limit(limit)))


def by_report(conn: Connection, report_id: str) -> Row | None:
    return conn.execute(sa.select(notices).where(notices.c.report_id == report_id)).first()
