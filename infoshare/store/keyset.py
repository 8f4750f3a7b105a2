"""How a keyset page finds its rows, so that its cost follows the rows it returns.

Two ways to read "the first limit + 1 visible rows after `floor`, by date_added":

- scan: walk date_added and test each row with `access.visible`. Cheap when most rows
  are visible; for a reader who may see 1% of the store it reads 100 rows per row served.
- merge: for each audience the principal may see (store/audiences.py), walk the
  (audience_pk, date_added) index from the floor and take up to limit + 1 keys, then keep
  the first limit + 1 of their union. At most k x (limit + 1) index entries, however large
  the store. Audiences are read in the page's own snapshot first, so none is missed; on
  PostgreSQL (a snapshot per statement) rows of audiences newer than that are found by one
  more part that tests them with the SQL rule itself, an index range that is empty but for
  an audience stored in between.

The audiences a merge walks one by one are those with more than limit + 1 stored
versions (by the stored counts); all the others share one more part, on the same index
with their pks in a list, reading each one's keys after the floor (as many as the counts
said, unless they are stale) and keeping the first limit + 1. Each part of a union costs
SQLite a sorter and SQLAlchemy a subquery to build, more than a hundred keys cost to read:
a reader named in a hundred small RED bulletins pays for one part, not a hundred. Whatever
the counts, each row's audience is in exactly one part, so the page is the same.

`plan` picks the cheaper by the stored counts per audience (an estimate: a stale count
costs time, never rows). Both return the same rows in the same order (tests/test_narrow.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import access
from . import audiences
from .engine import is_sqlite
from .schema import objects

# A merge of more audiences than this is one statement too many parts (SQLite allows 500
# compound terms); such a reader is read by scan, as before.
MAX_MERGE = 200
# A merged key costs about this many scanned rows (an index walk per audience, the union,
# its sort, the join back to the rows).
MERGE_WEIGHT = 2


@dataclass(frozen=True)
class Merge:
    seen: access.Seen
    # stored versions per audience (an estimate); audiences with no count share a part
    counts: Mapping[int, int] = field(default_factory=dict)


def plan(conn: Connection, principal: access.Principal, limit: int, by_id: bool
         ) -> Merge | None:
    """Merge when it reads fewer rows than a scan would; None: scan.

    A read by id (match[id], an object's versions) finds its rows on the id index: scan.
    """
    if by_id:
        return None
    view = audiences.view(conn, principal)
    seen = replace(view.seen, known=None) if is_sqlite(conn) else view.seen
    if len(view.counts) > MAX_MERGE:
        return None
    visible = sum(view.counts.values())
    merged = sum(min(limit + 1, c) for c in view.counts.values()) + limit + 1
    if visible and merged * MERGE_WEIGHT >= (limit + 1) * view.total / visible:
        return None
    return Merge(seen, view.counts)


def ordered(principal: access.Principal, how: Merge | None, where: Sequence, floor: int,
            limit: int, columns: Sequence, last_only: bool) -> sa.Select:
    """select(*columns, date_added) of the first limit + 1 visible rows after `floor` that
    meet `where` (lens and match), oldest first. `last_only`: `where` keeps latest
    versions only, so the latest-version half of the rule holds by itself."""
    if how is None:
        return (sa.select(*columns, objects.c.date_added)
                .where(objects.c.date_added > floor, *where, access.visible(principal))
                .order_by(objects.c.date_added).limit(limit + 1))
    keys = _merged(principal, how, where, floor, limit, last_only)
    return (sa.select(*columns, objects.c.date_added)
            .join_from(keys, objects, objects.c.pk == keys.c.pk)
            .order_by(keys.c.date_added).limit(limit + 1))


def _merged(principal, how: Merge, where, floor: int, limit: int, last_only: bool):
    """The first limit + 1 of the union of each visible audience's first limit + 1 keys
    after `floor`: (pk, date_added), both in the audience index."""
    seen = how.seen
    common = [objects.c.date_added > floor, *where]
    if not last_only:
        common.append(access.latest_seen(principal, seen))
    large = [pk for pk in sorted(seen.pks) if how.counts.get(pk, 0) > limit + 1]
    small = sorted(seen.pks - set(large))
    parts = [_part(objects.c.audience_pk == pk, common, objects.c.date_added, limit)
             for pk in large]
    if small:
        # `date_added + 0`: no index on date_added can give this order, so it is the
        # audience index that is walked. With a table's statistics both engines otherwise
        # walked date_added testing each row's audience: a reader with nothing new read
        # every row after its cursor.
        listed = sa.bindparam("small_audiences", small, expanding=True, literal_execute=True)
        parts.append(_part(objects.c.audience_pk.in_(listed), common,
                           objects.c.date_added + 0, limit))
    if seen.known is not None:
        parts.append(_part(access.newer_audience(principal, seen), common,
                           objects.c.date_added, limit))
    if not parts:  # a reader who may see nothing: no rows, at no cost
        parts.append(_part(sa.false(), common, objects.c.date_added, limit))
    # The cut comes before the join: only limit + 1 rows are read, whatever k is.
    union = sa.union_all(*parts)
    return (union.order_by(union.selected_columns.date_added).limit(limit + 1)
            .subquery("merged"))


def _part(owner, common: list, order, limit: int) -> sa.Select:
    """The owner's first limit + 1 keys after the floor (one part of the union)."""
    part = (sa.select(objects.c.pk, objects.c.date_added).where(owner, *common)
            .order_by(order).limit(limit + 1).subquery())
    return sa.select(part.c.pk, part.c.date_added)
