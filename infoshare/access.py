"""The one place that decides who may see what (docs/ARCHITECTURE.md, "Access").

A principal sees an object only if all hold:
  1. the object is for all sectors, shares a sector with the principal, or the principal
     holds all sectors;
  2. the object's TLP rank is at or below the highest rank the principal's tier may read;
  3. every compartment on the object is held by the principal;
  4. TLP:RED objects name the principal; TLP:AMBER+STRICT objects name its organisation.

An id is seen through its latest version: a version is visible only when the principal may
see both that version and the id's latest version. A bulletin narrowed to fewer readers
(a new version for a smaller audience) so disappears, with its history, for those it no
longer names, and widening it shows only the versions each reader was cleared for.

The rule exists twice, in lock-step: `visible()` as a SQL predicate for every query, and
`may_see()` / `may_see_version()` as Python functions for objects already in hand
(routing, tests). The property tests in tests/ check they agree. A page of a narrow reader
uses the Python rule over the store's distinct audiences (`visible_audiences`, see
store/audiences.py) and reads only those audiences' rows (`Seen`, `in_audiences`,
`latest_seen`); audiences newer than what the process has read fall back to `visible()`'s
own terms, and tests/test_narrow.py checks the pages equal `visible()`'s. Marking definitions,
extension definitions and the service identity are stored with an open audience (see
`OPEN`), so they need no case.
Building the predicate touches no database; it only composes an expression.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from . import sectors, tiers
from .settings import CollectionSpec
from .store.schema import object_compartments, object_recipients, objects

AMBER_STRICT = tiers.RANK["amber+strict"]
RED = tiers.RANK["red"]


@dataclass(frozen=True)
class Principal:
    pk: int
    id: str
    name: str
    org: str
    tier: str
    max_rank: int
    all_sectors: bool
    sector_mask: int
    compartments: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    @property
    def sectors(self) -> list[str]:
        return list(sectors.CODES) if self.all_sectors else sectors.codes(self.sector_mask)

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


@dataclass(frozen=True)
class Audience:
    """Who an object is for."""

    tlp: str
    all_sectors: bool = True
    sector_mask: int = 0
    compartments: frozenset[str] = frozenset()
    recipient_orgs: frozenset[str] = field(default_factory=frozenset)
    recipient_principals: frozenset[str] = field(default_factory=frozenset)

    @property
    def tlp_rank(self) -> int:
        return tiers.RANK[self.tlp]


# The audience of what every reader of a collection may see (markings, extension
# definitions, the service identity).
OPEN = Audience(tlp="clear")


def may_see(principal: Principal, audience: Audience) -> bool:
    if not (principal.all_sectors or audience.all_sectors
            or audience.sector_mask & principal.sector_mask):
        return False
    if audience.tlp_rank > principal.max_rank:
        return False
    if not audience.compartments <= principal.compartments:
        return False
    if audience.tlp_rank == AMBER_STRICT:
        return principal.org in audience.recipient_orgs
    if audience.tlp_rank == RED:
        return principal.name in audience.recipient_principals
    return True


def may_see_version(principal: Principal, audience: Audience, latest: Audience) -> bool:
    """A version of an id, whose latest version is for `latest`."""
    return may_see(principal, audience) and may_see(principal, latest)


def visible(principal: Principal, table: sa.Table = objects) -> sa.ColumnElement[bool]:
    """SQL form of `may_see_version` over rows of the objects table.

    Reads of latest versions (the default) settle on the first branch; only reads of
    older versions pay for the look-up of their id's latest version.
    """
    latest = objects.alias("latest")
    return sa.and_(_may_see(principal, table), sa.or_(
        table.c.is_latest,
        sa.select(latest.c.pk).where(latest.c.id == table.c.id, latest.c.is_latest,
                                     _may_see(principal, latest)).exists()))


@dataclass(frozen=True)
class Seen:
    """The interned audiences (store/audiences.py) a principal may see: `pks`, among those
    with pk up to `known`. Rows of a newer audience are judged by the SQL rule; None: the
    reader's snapshot holds no newer audience (SQLite reads them in one snapshot)."""

    pks: frozenset[int]
    known: int | None


def visible_audiences(principal: Principal, audiences: Mapping[int, Audience]
                      ) -> frozenset[int]:
    """The pks of the audiences `principal` may see: `may_see`, once per audience."""
    return frozenset(pk for pk, audience in audiences.items() if may_see(principal, audience))


def in_audiences(principal: Principal, seen: Seen, table: sa.Table = objects
                 ) -> sa.ColumnElement[bool]:
    """SQL form of `may_see` for a row, through the audiences the principal may see.

    A test of a row found otherwise (by id): `audience_pk + 0` keeps planners from
    walking the audience index instead of the id index (SQLite did, per row). The pks are
    written into the statement: a merge repeats this test in every part, which as bound
    parameters could pass SQLite's limit on them.
    """
    pks = sa.bindparam("seen_audiences", sorted(seen.pks), expanding=True,
                       literal_execute=True)
    known = (table.c.audience_pk + 0).in_(pks)
    return known if seen.known is None else sa.or_(known, newer_audience(principal, seen, table))


def newer_audience(principal: Principal, seen: Seen, table: sa.Table = objects
                   ) -> sa.ColumnElement[bool]:
    """A row of an audience newer than `seen` knows, that the principal may see."""
    assert seen.known is not None
    return sa.and_(table.c.audience_pk > seen.known, _may_see(principal, table))


def latest_seen(principal: Principal, seen: Seen, table: sa.Table = objects
                ) -> sa.ColumnElement[bool]:
    """`visible()`'s second half through audiences: the row is its id's latest version,
    or that latest version is visible too."""
    latest = objects.alias("latest")
    return sa.or_(table.c.is_latest, sa.select(latest.c.pk).where(
        latest.c.id == table.c.id, latest.c.is_latest,
        in_audiences(principal, seen, latest)).exists())


def _may_see(principal: Principal, table) -> sa.ColumnElement[bool]:
    """SQL form of `may_see` over one row of the objects table (or an alias of it)."""
    conditions = [table.c.tlp_rank <= principal.max_rank]
    if not principal.all_sectors:
        conditions.append(sa.or_(
            table.c.all_sectors,
            table.c.sector_mask.op("&")(principal.sector_mask) != 0,
        ))
    conditions.append(sa.or_(~table.c.has_compartments, ~_foreign_compartment(principal, table)))
    if principal.max_rank >= AMBER_STRICT:
        conditions.append(sa.or_(
            table.c.tlp_rank < AMBER_STRICT,
            sa.and_(table.c.tlp_rank == AMBER_STRICT, _named(table, "org", principal.org)),
            sa.and_(table.c.tlp_rank == RED, _named(table, "principal", principal.name)),
        ))
    return sa.and_(*conditions)


def _foreign_compartment(principal: Principal, table) -> sa.Exists:
    """An object compartment the principal does not hold."""
    query = sa.select(object_compartments.c.object_pk).where(
        object_compartments.c.object_pk == table.c.pk
    )
    if principal.compartments:
        query = query.where(object_compartments.c.name.not_in(sorted(principal.compartments)))
    return query.exists()


def _named(table, kind: str, name: str) -> sa.Exists:
    return sa.select(object_recipients.c.object_pk).where(
        object_recipients.c.object_pk == table.c.pk,
        object_recipients.c.kind == kind,
        object_recipients.c.name == name,
    ).exists()


def can_read(principal: Principal, collection: CollectionSpec) -> bool:
    """Whether a collection is listed to and readable by the principal at all."""
    if collection.kind == "subscription":
        return collection.owner_pk == principal.pk
    if collection.kind == "sector" and collection.sector:
        return principal.all_sectors or bool(principal.sector_mask
                                             & sectors.bit(collection.sector))
    return True


def can_write(principal: Principal, collection: CollectionSpec, tier_map: tiers.Tiers) -> bool:
    if collection.kind != "submitted":
        return False
    if principal.has_role(*collection.write_roles):
        return True
    minimum = collection.write_min_tier
    return minimum is not None and tier_map.at_least(principal.tier, minimum)
