"""Routing: which subscriptions a batch of newly stored objects matches.

Matching runs in SQL over the subscriptions table, one query per group of objects that
share an audience (a notice's objects all do), so 10,000 subscriptions cost one indexed
scan in the database, not 10,000 Python comparisons. Python then only handles the
subscriptions that matched. Routing rows and webhook deliveries are written in the
caller's transaction: the objects, their routing and their deliveries commit together.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from infoshare import access, timestamps
from infoshare.geo import areas as geo_areas
from infoshare.notices import KINDS
from infoshare.store.schema import (
    deliveries,
    principals,
    subscription_labels,
    subscription_objects,
    subscription_types,
    subscriptions,
)
from infoshare.tiers import Tiers


@dataclass(frozen=True)
class Group:
    """Newly stored objects that share everything a subscription filters on but the type."""

    audience: access.Audience
    kind: str | None
    severity: int  # notices.SEVERITY_RANK; 0 when unknown
    labels: frozenset[str]
    objects: tuple[tuple[int, str], ...]  # (date_added, type)
    place: BaseGeometry | None = None  # where the notice is (geo/areas.py); None: unlocated


def kind_bit(kind: str) -> int:
    return 1 << KINDS.index(kind)


def _matching_query(group: Group) -> sa.Select:
    s = subscriptions
    audience = group.audience
    types = sorted({t for _, t in group.objects})
    conditions = [s.c.max_tlp >= audience.tlp_rank, s.c.min_severity <= group.severity]
    if not audience.all_sectors:
        conditions.append(sa.or_(s.c.sector_mask == 0,
                                 s.c.sector_mask.op("&")(audience.sector_mask) != 0))
    conditions.append(sa.or_(s.c.kinds_mask == 0, s.c.kinds_mask.op("&")(
        kind_bit(group.kind)) != 0) if group.kind else s.c.kinds_mask == 0)
    conditions.append(sa.or_(~s.c.has_types, sa.select(subscription_types.c.type).where(
        subscription_types.c.subscription_pk == s.c.pk,
        subscription_types.c.type.in_(types)).exists()))
    if group.labels:
        conditions.append(sa.or_(~s.c.has_labels, sa.select(subscription_labels.c.label).where(
            subscription_labels.c.subscription_pk == s.c.pk,
            subscription_labels.c.label.in_(sorted(group.labels))).exists()))
    else:
        conditions.append(~s.c.has_labels)
    conditions.append(_where(group.place))
    owner = [principals.c[name].label(f"owner_{name}") for name in
             ("pk", "id", "name", "org", "tier", "all_sectors", "sector_mask", "compartments",
              "roles")]
    return (sa.select(s.c.pk, s.c.types, s.c.has_types, s.c.webhook_url, s.c.paused,
                      s.c.has_areas, s.c.areas, *owner)
            .join(principals, principals.c.pk == s.c.principal_pk)
            .where(*conditions, ~principals.c.disabled))


def _where(place: BaseGeometry | None) -> sa.ColumnElement[bool]:
    """A subscription without areas matches everywhere; one with areas matches a notice
    without a place only when it includes unlocated notices, and otherwise first by its
    bounding box (SQL), then exactly (_covers)."""
    s = subscriptions
    if place is None:
        return sa.or_(~s.c.has_areas, s.c.include_unlocated)
    min_lon, min_lat, max_lon, max_lat = place.bounds
    return sa.or_(~s.c.has_areas, sa.and_(s.c.min_lon <= max_lon, s.c.max_lon >= min_lon,
                                          s.c.min_lat <= max_lat, s.c.max_lat >= min_lat))


@functools.lru_cache(maxsize=20_000)
def _subscription_place(areas_json: str) -> BaseGeometry:
    """A subscription's areas as one prepared geometry, built once per worker per distinct
    set of areas (a county's outline is not rebuilt for every notice)."""
    place = geo_areas.subscription_place(json.loads(areas_json))
    shapely.prepare(place)
    return place


def _covers(row, place: BaseGeometry | None) -> bool:
    if place is None or not row.has_areas:
        return True
    return _subscription_place(json.dumps(row.areas, sort_keys=True)).intersects(place)


def _owner(row, tier_map: Tiers) -> access.Principal | None:
    try:
        max_rank = tier_map.max_rank(row.owner_tier)
    except ValueError:  # the owner's tier is no longer configured
        return None
    return access.Principal(
        pk=row.owner_pk, id=row.owner_id, name=row.owner_name, org=row.owner_org,
        tier=row.owner_tier, max_rank=max_rank, all_sectors=row.owner_all_sectors,
        sector_mask=row.owner_sector_mask, compartments=frozenset(row.owner_compartments or ()),
        roles=frozenset(row.owner_roles or ()))


_ANY = sa.select(subscriptions.c.pk).limit(1)  # built once: it runs under the write lock


def route(conn: Connection, groups: Iterable[Group], tier_map: Tiers) -> int:
    """Write routing rows and queue deliveries; returns the number of routing rows."""
    routed: dict[int, list[int]] = {}
    webhooks: set[int] = set()
    groups = [g for g in groups if g.objects]
    if not groups or conn.execute(_ANY).first() is None:
        return 0  # building the match costs more than publishing a small notice
    for group in groups:
        for row in conn.execute(_matching_query(group)):
            owner = _owner(row, tier_map)
            if owner is None or not access.may_see(owner, group.audience):
                continue
            if not _covers(row, group.place):
                continue
            wanted = set(row.types) if row.has_types else None
            matched = [d for d, t in group.objects if wanted is None or t in wanted]
            routed.setdefault(row.pk, []).extend(matched)
            if row.webhook_url and not row.paused:
                webhooks.add(row.pk)
    rows = [{"subscription_pk": pk, "date_added": d} for pk, ds in routed.items() for d in ds]
    if rows:
        conn.execute(subscription_objects.insert(), rows)
    queue(conn, {pk: routed[pk] for pk in webhooks if routed[pk]})
    return len(rows)


def queue(conn: Connection, matches: dict[int, Sequence[int]]) -> None:
    now = timestamps.now_us()
    if matches:
        conn.execute(deliveries.insert(), [
            {"id": str(uuid.uuid4()), "subscription_pk": pk, "date_added": sorted(ds),
             "state": "pending", "attempts": 0, "next_attempt_us": now, "lease_until_us": 0,
             "created_us": now} for pk, ds in matches.items()])
