"""The service definitions a page of objects refers to.

Marking definitions, extension definitions and the service's identities are open to every
reader and resolvable in every collection, but a plain listing does not repeat them as if
they were news: each objects page carries the latest version of exactly the ones its own
objects reference (object_marking_refs, created_by_ref, extension keys, a report's sector
identities, and what those definitions reference in turn). So any page is a bundle that
stands on its own (an incremental poller gets the definitions its new objects need), and
a consumer that applies whatever a bundle holds (misp-stix tags every event with every
unreferenced marking) sees only what applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .. import access
from .schema import objects

# A quoted id of a kind the service defines: where one appears in an object's JSON (a ref,
# an extension key), the object may rely on that definition. A match inside free text only
# costs one more definition in the page.
_REF = re.compile(rb'"((?:marking-definition|extension-definition|identity)--'
                  rb'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"')


# An object references a handful of definitions (its markings, its producer, its
# extensions, a report's sectors); one naming thousands is no reason for a page to bind
# thousands of SQL parameters: past these, its extra references are not followed.
MAX_REFS_PER_OBJECT = 64
MAX_REFS_PER_PAGE = 1000


def referenced(raw: bytes) -> frozenset[str]:
    found: set[str] = set()
    for match in _REF.finditer(raw):
        found.add(match.group(1).decode("ascii"))
        if len(found) >= MAX_REFS_PER_OBJECT:
            break
    return frozenset(found)


@dataclass(frozen=True)
class Closed:
    """A page cut to fit, with the definitions its objects need."""

    rows: list[Row]
    definitions: list[Row]
    trimmed: bool  # objects were left for the next page to make room


def close(conn: Connection, principal: access.Principal, rows: Sequence[Row],
          limit: int, budget: int) -> Closed:
    """Add to `rows` the definitions they reference, keeping objects + definitions within
    `limit` objects and `budget` bytes. The first object always comes; when even its own
    definitions do not all fit (limit=1), it comes with those that fit, markings first:
    the limit is the client's to set, and every definition can be fetched by id."""
    wanted = [referenced(row.raw) for row in rows]
    found = _load(conn, principal, sorted(frozenset().union(*wanted))[:MAX_REFS_PER_PAGE])
    needs = {i: _transitive(i, found) for i in found}
    kept: list[Row] = []
    needed: set[str] = set()
    size = 0
    for row, refs in zip(rows, wanted, strict=True):
        more = set().union(*(needs[i] for i in refs if i in needs)) - needed
        grown = size + len(row.raw) + 1 + sum(len(found[i].raw) + 1 for i in more)
        if len(kept) + 1 + len(needed | more) <= limit and grown <= budget:
            kept.append(row)
            needed |= more
            size = grown
        elif not kept:
            kept.append(row)
            needed = _fitting(more, found, limit - 1, budget - len(row.raw) - 1)
        else:
            break
    definitions = sorted((found[i] for i in needed), key=lambda r: r.date_added)
    return Closed(kept, definitions, trimmed=len(kept) < len(rows))


def _fitting(ids: set[str], found: dict[str, Row], room: int, budget: int) -> set[str]:
    chosen: set[str] = set()
    for i in sorted(ids, key=lambda i: (not i.startswith("marking-definition--"), i)):
        if len(chosen) < room and len(found[i].raw) + 1 <= budget:
            chosen.add(i)
            budget -= len(found[i].raw) + 1
    return chosen


def _load(conn: Connection, principal: access.Principal, ids: Iterable[str]
          ) -> dict[str, Row]:
    """The latest visible version of each of these ids that is a service definition, and
    of the definitions those reference."""
    found: dict[str, Row] = {}
    pending, asked = set(ids), set()
    while pending:
        asked |= pending
        rows = conn.execute(sa.select(objects.c.id, objects.c.raw, objects.c.date_added).where(
            objects.c.id.in_(sorted(pending)), objects.c.everywhere, objects.c.is_latest,
            access.visible(principal)))
        fresh = {row.id: row for row in rows}
        found.update(fresh)
        pending = set().union(*(referenced(r.raw) for r in fresh.values())) - asked
    return found


def _transitive(start: str, found: dict[str, Row]) -> frozenset[str]:
    seen, stack = {start}, [start]
    while stack:
        for ref in referenced(found[stack.pop()].raw):
            if ref in found and ref not in seen:
                seen.add(ref)
                stack.append(ref)
    return frozenset(seen)
