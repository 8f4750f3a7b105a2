"""Claims: how writers of objects on PostgreSQL keep out of each other's way.

On PostgreSQL a writer of objects claims, before anything else, every name its checks
depend on: the ids it writes, and for a notice its identity, its CVEs and the shared
vulnerabilities it references. A claim is a transaction-scoped advisory lock per name,
exclusive for what the writer changes and shared for what it only relies on (so the
many notices naming one CVE do not queue for each other), taken in one statement in key
order (so two writers cannot deadlock), after a shared lock on the whole store. Writers
of different names then check and write side by side, and queue only for the store
clock, which they take last, to stamp (objects._reserve). A writer of more names than the
lock table should hold per transaction, or one that cannot know its names in advance (a
last-resort publish), claims the whole store instead: the exclusive form of that lock.
On SQLite a write transaction already holds the only write lock there is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .engine import is_sqlite

CLAIM_LIMIT = 128  # names per transaction; PostgreSQL's lock table is shared and bounded
# Append runs its parts in order: the store's lock, then each name's, in key order.
_CLAIM = sa.text(
    "SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared(0) UNION ALL "
    "SELECT CASE WHEN s THEN pg_advisory_xact_lock_shared(k) ELSE pg_advisory_xact_lock(k) END"
    " FROM unnest(CAST(:keys AS bigint[]), CAST(:shared AS boolean[])) AS t(k, s)) AS taken")
_TRY_CLAIM = sa.text(
    "SELECT bool_and(CASE WHEN s THEN pg_try_advisory_xact_lock_shared(k) "
    "ELSE pg_try_advisory_xact_lock(k) END) "
    "FROM unnest(CAST(:keys AS bigint[]), CAST(:shared AS boolean[])) AS t(k, s)")
_CLAIM_ALL = sa.text("SELECT pg_advisory_xact_lock(0)")


class Unclaimed(RuntimeError):
    """A later claim in a transaction met a name another writer holds (waiting there could
    deadlock) or went past CLAIM_LIMIT, or a claim of the whole store came after a claim
    of names. The transaction is rolled back; a batch of notices then falls back to one
    transaction per notice (publish.py)."""


@dataclass(frozen=True)
class _Claims:
    writes: frozenset[str]
    reads: frozenset[str]
    everything: bool = False  # the whole store (claim_all)

    def covers(self, writes: frozenset[str], reads: frozenset[str] = frozenset()) -> bool:
        return self.everything or writes <= self.writes and reads <= self.writes | self.reads


_ALL = _Claims(frozenset(), frozenset(), everything=True)


def claim_key(name: str) -> int:
    """A name's advisory lock key: the same in every process, never the store's own 0 (a
    collision only makes two writers wait for each other)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True) or 1


def claim(conn: Connection, writes: Iterable[str], reads: Iterable[str] = ()) -> None:
    """Claim the names this transaction changes (`writes`) and those it only relies on
    (`reads`) for the rest of the transaction, before any check they protect.

    The first claim waits for the names, in key order. A later claim in the same
    transaction (a second insert) must not wait, since this transaction may hold what the
    holder waits for: it takes the new names only if they are free, else raises Unclaimed.
    """
    if is_sqlite(conn):
        return
    wanted = _Claims(frozenset(writes), frozenset(reads) - frozenset(writes))
    held = _claimed(conn)
    if held is not None and held.covers(wanted.writes, wanted.reads):
        return
    if held is not None:
        _claim_later(conn, held, wanted)
        return
    if len(wanted.writes) + len(wanted.reads) > CLAIM_LIMIT:
        claim_all(conn)
        return
    conn.execute(_CLAIM, _keys(wanted.writes, wanted.reads))
    conn.info["claims"] = (conn.get_transaction(), wanted)


def _claim_later(conn: Connection, held: _Claims, wanted: _Claims) -> None:
    both = _Claims(held.writes | wanted.writes,
                   (held.reads | wanted.reads) - held.writes - wanted.writes)
    if len(both.writes) + len(both.reads) > CLAIM_LIMIT:
        raise Unclaimed("too many names for one transaction; claim the whole store first")
    if not conn.execute(_TRY_CLAIM, _keys(wanted.writes - held.writes,
                                          wanted.reads - held.writes - held.reads)).scalar():
        raise Unclaimed("another writer holds names this transaction claimed late")
    conn.info["claims"] = (conn.get_transaction(), both)


def _keys(writes: frozenset[str], reads: frozenset[str]) -> dict[str, list]:
    """Keys in order, each shared unless some name of it is written."""
    shared = {claim_key(n): True for n in reads}
    shared.update({claim_key(n): False for n in writes})
    keys = sorted(shared)
    return {"keys": keys, "shared": [shared[k] for k in keys]}


def claim_all(conn: Connection) -> None:
    """Claim the whole store: waits for every writer that claimed names, and keeps new ones
    out until the transaction ends."""
    if is_sqlite(conn):
        return
    held = _claimed(conn)
    if held is _ALL:
        return
    if held is not None:
        raise Unclaimed("the whole store is claimed first or not at all")
    conn.execute(_CLAIM_ALL)
    conn.info["claims"] = (conn.get_transaction(), _ALL)


def holds(conn: Connection, ids: set[str]) -> bool:
    """Whether the transaction may write these ids without claiming them (on SQLite, any)."""
    held = _claimed(conn)
    return is_sqlite(conn) or held is not None and held.covers(frozenset(ids))


def _claimed(conn: Connection) -> _Claims | None:
    transaction, claims = conn.info.get("claims", (None, None))
    return claims if transaction is not None and transaction is conn.get_transaction() else None


def whole(conn: Connection) -> bool:
    """Whether the transaction holds the whole store (claim_all): no writer can be waiting
    for it, so it may store what others would have to wait to see."""
    return _claimed(conn) is _ALL
