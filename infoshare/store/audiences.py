"""Audiences, each distinct one stored once, so a reader's view is a set of numbers.

Every object version points at its audience (`objects.audience_pk`). Which audiences a
principal may see is decided by the one rule, `access.may_see`, in Python, once per
principal and audience in a process (audience rows never change and are never deleted);
a page then reads only those audiences' rows (store/objects.py). The per-audience count of
stored versions is an estimate for choosing how to read a page, never for what it holds.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from .. import access, tiers
from . import claims
from .schema import audiences

# Counts are re-read at most this often per process: a plan needs proportions, not news.
COUNT_SECONDS = 5.0
# Principals whose visible audiences a process remembers (least recently used dropped).
MAX_PRINCIPALS = 2048


def key(audience: access.Audience) -> str:
    """The audience's identity: a hash of its canonical form (recipient lists may be long
    for a unique index)."""
    form = [audience.tlp, audience.all_sectors, audience.sector_mask,
            sorted(audience.compartments), sorted(audience.recipient_orgs),
            sorted(audience.recipient_principals)]
    return hashlib.sha256(json.dumps(form, separators=(",", ":")).encode()).hexdigest()


def _row(audience: access.Audience) -> dict:
    return {"key": key(audience), "tlp_rank": audience.tlp_rank,
            "all_sectors": audience.all_sectors, "sector_mask": audience.sector_mask,
            "compartments": sorted(audience.compartments),
            "recipient_orgs": sorted(audience.recipient_orgs),
            "recipient_principals": sorted(audience.recipient_principals), "objects": 0}


def from_columns(tlp_rank: int, all_sectors: bool, sector_mask: int, compartments=(),
                 orgs=(), names=()) -> access.Audience:
    """An audience from the columns the store keeps it in (a TLP rank, not a name), for an
    audiences row or an object version's own columns and child rows alike."""
    return access.Audience(
        tlp=tiers.TLP_LEVELS[tlp_rank], all_sectors=all_sectors, sector_mask=sector_mask,
        compartments=frozenset(compartments), recipient_orgs=frozenset(orgs),
        recipient_principals=frozenset(names))


def _audience(row) -> access.Audience:
    return from_columns(row.tlp_rank, row.all_sectors, row.sector_mask, row.compartments,
                        row.recipient_orgs, row.recipient_principals)


# Built once: every publish runs them (objects.insert; _COUNT under the store clock).
_BY_KEY = sa.select(audiences.c.pk, audiences.c.key).where(
    audiences.c.key.in_(sa.bindparam("keys", expanding=True)))
_COUNT = audiences.update().where(audiences.c.pk == sa.bindparam("_pk")).values(
    objects=audiences.c.objects + sa.bindparam("delta"))


def intern(conn: Connection, wanted: Iterable[access.Audience]) -> dict[access.Audience, int]:
    """The pk of each audience, storing those not seen before (see _store): on PostgreSQL
    writers intern side by side, under their claims, not under the store clock."""
    by_key = {key(a): a for a in set(wanted)}
    found: dict[access.Audience, int] = {}
    keys = sorted(by_key)
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        for pk, k in conn.execute(_BY_KEY, {"keys": chunk}):
            found[by_key[k]] = pk
    for k in keys:
        if by_key[k] not in found:
            found[by_key[k]] = _store(conn, by_key[k])
    return found


def _store(conn: Connection, audience: access.Audience) -> int:
    """Store a new audience. On PostgreSQL it is committed at once, on a connection of its
    own: a writer that stored it in its own transaction would make every other writer of
    that audience wait for its commit, and a writer holding the store clock (a feed's
    batch, from its second notice on) waiting for one queued for the clock is a deadlock.
    An audience whose writer then rolls back stays, with no objects: rows of this table
    are values, never changed or deleted, and a reader's view of them follows the rule.
    A transaction holding the whole store (a migration, whose new table another connection
    could not see yet) stores it itself: no writer can be waiting for it."""
    if claims.whole(conn) or conn.dialect.name != "postgresql":  # SQLite: one writer
        return conn.execute(audiences.insert().values(_row(audience))).inserted_primary_key[0]
    with conn.engine.connect() as own, own.begin():
        own.execute(postgresql.insert(audiences).values(_row(audience))
                    .on_conflict_do_nothing(index_elements=[audiences.c.key]))
    return conn.execute(_BY_KEY, {"keys": [key(audience)]}).one().pk


def count(conn: Connection, deltas: Counter) -> None:
    """Add to the stored-version counts (negative for deletions), in pk order."""
    rows = [{"_pk": pk, "delta": delta} for pk, delta in sorted(
        (pk, d) for pk, d in deltas.items() if pk is not None and d)]
    if rows:
        conn.execute(_COUNT, rows)


@dataclass(frozen=True)
class View:
    """What a principal may see, as audiences (`seen`: rows of an audience newer than it
    knows are judged by the SQL rule instead), with the stored versions counted for each
    of those audiences (`counts`) and for all (`total`)."""

    seen: access.Seen
    counts: dict[int, int]
    total: int


class _Known:
    """One process's copy of one store's audiences."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.audiences: dict[int, access.Audience] = {}
        self.keys: dict[int, str] = {}
        self.counts: dict[int, int] = {}
        self.last = 0
        self.counted_at = float("-inf")
        self.views: OrderedDict[access.Principal, tuple[int, frozenset[int]]] = OrderedDict()

    def refresh(self, conn: Connection) -> None:
        """Read the audiences stored since, and the counts when they are old. The last
        known row is read again: should it differ (the store was replaced under a running
        process), everything known is dropped."""
        with self.lock:
            last, last_key = self.last, self.keys.get(self.last)
        rows = conn.execute(sa.select(audiences).where(audiences.c.pk >= last)
                            .order_by(audiences.c.pk)).all()
        with self.lock:
            if last and (not rows or (rows[0].pk, rows[0].key) != (last, last_key)):
                self._reset()
                rows = conn.execute(sa.select(audiences).order_by(audiences.c.pk)).all()
            for row in rows:
                if row.pk > self.last or not self.last:
                    self.audiences[row.pk] = _audience(row)
                    self.keys[row.pk] = row.key
                    self.counts[row.pk] = row.objects
            self.last = max(self.last, rows[-1].pk if rows else 0)
            stale = time.monotonic() - self.counted_at > COUNT_SECONDS
        if stale:
            counts = dict(conn.execute(sa.select(audiences.c.pk, audiences.c.objects)).all())
            with self.lock:
                self.counts.update({pk: n for pk, n in counts.items() if pk in self.audiences})
                self.counted_at = time.monotonic()

    def view(self, principal: access.Principal) -> View:
        with self.lock:
            last = self.last
            upto, pks = self.views.pop(principal, (0, frozenset()))
            if upto < last:
                pks = pks | access.visible_audiences(
                    principal, {pk: a for pk, a in self.audiences.items() if pk > upto})
            self.views[principal] = (last, pks)
            if len(self.views) > MAX_PRINCIPALS:
                self.views.popitem(last=False)
            counts = {pk: self.counts.get(pk, 0) for pk in pks}
            total = sum(self.counts.values())
        return View(access.Seen(pks, last), counts, total)


_KNOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KNOWN_LOCK = threading.Lock()


def view(conn: Connection, principal: access.Principal) -> View:
    """The principal's audiences in this store, as far as this process has read them
    (one indexed look for newer audiences per call)."""
    with _KNOWN_LOCK:
        known = _KNOWN.setdefault(conn.engine, _Known())
    known.refresh(conn)
    return known.view(principal)
