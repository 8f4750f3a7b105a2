"""The one place that decides who may see what (DESIGN.md, "Access").

A principal sees an object only if all hold:
  1. the object is for all sectors, shares a sector with the principal, or the principal
     holds all sectors;
  2. the object's TLP rank is at or below the highest rank the principal's tier may read;
  3. every compartment on the object is held by the principal;
  4. TLP:RED objects name the principal; TLP:AMBER+STRICT objects name its organisation.

The rule exists twice, in lock-step: `visible()` as a SQL predicate for every query, and
`may_see()` as a Python function for objects already in hand (webhooks, tests). The
property test in tests/ checks they agree. Marking definitions, extension definitions and
the service identity are stored with an open audience (see `OPEN`), so they need no case.
Building the predicate touches no database; it only composes an expression.
"""

from __future__ import annotations

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


def visible(principal: Principal, table: sa.Table = objects) -> sa.ColumnElement[bool]:
    """SQL form of `may_see` over rows of the objects table."""
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


def _foreign_compartment(principal: Principal, table: sa.Table) -> sa.Exists:
    """An object compartment the principal does not hold."""
    query = sa.select(object_compartments.c.object_pk).where(
        object_compartments.c.object_pk == table.c.pk
    )
    if principal.compartments:
        query = query.where(object_compartments.c.name.not_in(sorted(principal.compartments)))
    return query.exists()


def _named(table: sa.Table, kind: str, name: str) -> sa.Exists:
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
