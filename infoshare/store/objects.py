"""Objects: insert versions, and read them by keyset through a collection's lens.

Every read is `date_added > position ORDER BY date_added LIMIT n` on an index, never OFFSET,
so a page deep in ten million objects costs what the first page costs; for a reader who
may see few of the rows, on the index of each audience it may see (keyset.py). Rows carry
the stored bytes; the TAXII layer writes them to the wire untouched.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .. import access, sectors, timestamps
from ..settings import CollectionSpec
from ..signing import canonical
from . import audiences, claims, closure, keyset
from .engine import binary_rows, is_sqlite
from .schema import (
    object_compartments,
    object_recipients,
    objects,
    store_clock,
    subscription_objects,
)

_CHUNK = 500


@dataclass(frozen=True)
class NewObject:
    id: str
    type: str
    spec_version: str
    version: str | None
    version_us: int | None  # None: stamped with date_added when first stored
    raw: bytes
    audience: access.Audience
    submitted_by: int | None = None
    collection_id: str | None = None
    everywhere: bool = False
    origin: str = "service"
    signature: str | None = None


@dataclass(frozen=True)
class Filters:
    """TAXII match[...] and added_after, already validated."""

    added_after: int | None = None
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: tuple[str | int, ...] = ("last",)  # "last", "first", "all" or version_us
    spec_versions: tuple[str, ...] = ()


# --- writing -----------------------------------------------------------------------------

# Statements run under the store clock are built once: building one (its clauses and cache
# key) cost about 3x executing it, and every publisher waits for the time spent there.
_LAST, _NOW, _COUNT = store_clock.c.last_us, sa.bindparam("now"), sa.bindparam("count")
_RESERVE = (store_clock.update().where(store_clock.c.id == 1)
            .values(last_us=sa.case((_LAST + 1 > _NOW, _LAST + _COUNT),
                                    else_=_NOW + _COUNT - 1))
            .returning(store_clock.c.last_us))
_IDS = sa.bindparam("ids", expanding=True)
_LINEAGES = (sa.select(objects.c.origin, objects.c.id, objects.c.version_us)
             .where(objects.c.id.in_(_IDS)).order_by(objects.c.date_added))
_LATEST = sa.select(objects.c.id, objects.c.version_us).where(
    objects.c.id.in_(_IDS), objects.c.origin == sa.bindparam("origin"), objects.c.is_latest)

# The clock row, taken by a delete before it changes audience counts (see delete).
_HOLD_CLOCK = sa.select(store_clock.c.last_us).where(store_clock.c.id == 1).with_for_update()


def _reserve(conn: Connection, count: int) -> int:
    """The first of `count` strictly increasing date_added values (one statement: the
    clock moves to max(now, last + 1) + count - 1). On PostgreSQL this takes the clock's
    row lock, held to the commit: commits happen in date_added order, so a poller reading
    "added after X" never misses a row committed late with an earlier stamp."""
    end = conn.execute(_RESERVE, {"now": timestamps.now_us(), "count": count}).scalar()
    return end - count + 1


# What insert() answers for an item it did not store.
DUPLICATE = None  # that version of that id is stored already (or the same bytes are)
FOREIGN = "foreign"  # the id belongs to another origin, which alone adds its versions


@dataclass
class _Lineage:
    origin: str
    versions: set[int]


class Inserted(list):
    """insert()'s answer, one entry per item; `earlier` names the ids that had stored
    versions before the call (so a stored item there is a new version)."""

    earlier: frozenset[str] = frozenset()


def insert(conn: Connection, items: Sequence[NewObject],
           reader: access.Principal | None = None) -> Inserted:
    """Store new versions; for each item its date_added, DUPLICATE or FOREIGN.

    An id belongs to the origin that first stored it: only that origin adds versions, so
    every id has one lineage and one latest version. Another origin's item under that id
    is FOREIGN, whether or not its sender may see the owner's object, unless it is a copy
    of a stored version (same id, same version, same canonical content) that `reader`
    (the sender, when it is a principal) may see: then it is a DUPLICATE and nothing is
    stored twice. A copy of something the sender may not see is FOREIGN like any other,
    or the answer would confirm hidden content. Call inside store.write(). The items'
    ids are claimed here unless the transaction claimed them before (_claimed_lineages);
    everything but stamping, the rows and the audience counts is done before the store
    clock is taken.
    """
    lineages = _claimed_lineages(conn, items)
    result = Inserted([DUPLICATE] * len(items))
    result.earlier = frozenset(i for i, lineage in lineages.items() if lineage.versions)
    fresh_at: list[int] = []
    pending: dict[tuple[str, int | None], bytes] = {}
    for index, item in enumerate(items):
        lineage = lineages.setdefault(item.id, _Lineage(item.origin, set()))
        if lineage.origin != item.origin:
            if not _is_copy(conn, lineage, item, pending, reader):
                result[index] = FOREIGN
            continue
        # An object without created/modified (an SCO) has one version: its first arrival.
        if item.version_us is None and lineage.versions or item.version_us in lineage.versions:
            continue
        lineage.versions.add(item.version_us)
        pending[(item.id, item.version_us)] = item.raw
        fresh_at.append(index)
    if not fresh_at:
        return result
    fresh = [items[index] for index in fresh_at]
    interned = audiences.intern(conn, [item.audience for item in fresh])
    _demote(conn, fresh, lineages, result.earlier)
    first = _reserve(conn, len(fresh_at))  # the clock, held from here to the commit
    for offset, index in enumerate(fresh_at):
        result[index] = first + offset
    fresh = [_stamp_versionless(item, first + offset, lineages)
             for offset, item in enumerate(fresh)]
    _insert_rows(conn, fresh, [result[i] for i in fresh_at], lineages, interned)
    return result


def _claimed_lineages(conn: Connection, items: Sequence[NewObject]) -> dict[str, _Lineage]:
    """The lineages of the items' ids, read under claims of the ids this insert may write.

    An id another origin owns is not claimed: its owner never changes, and waiting for
    its writer would tell a sender that a hidden object is being written right now.
    """
    ids = {item.id for item in items}
    if claims.holds(conn, ids):
        return _lineages(conn, ids)
    before = _lineages(conn, ids)
    ours = {item.id for item in items
            if item.id not in before or before[item.id].origin == item.origin}
    claims.claim(conn, ours)
    theirs = {i: lineage for i, lineage in before.items() if i not in ours}
    return {**theirs, **_lineages(conn, ours)}


def _is_copy(conn: Connection, lineage: _Lineage, item: NewObject, pending,
             reader: access.Principal | None) -> bool:
    """Whether `item` repeats a version its owner stored, content for content, that the
    reader may see."""
    if item.version_us is None:  # an SCO: compare with its one version
        version = next(iter(lineage.versions), None)
    else:
        version = item.version_us if item.version_us in lineage.versions else None
    if version is None:
        return False
    stored = pending.get((item.id, version)) if reader is None else None
    if stored is None:
        query = sa.select(objects.c.raw).where(objects.c.id == item.id,
                                               objects.c.version_us == version)
        if reader is not None:
            query = query.where(access.visible(reader))
        stored = conn.execute(query).scalar()
    return stored is not None and _same_json(stored, item.raw)


def _same_json(a: bytes, b: bytes) -> bool:
    """Equal as JSON texts (RFC 8785 forms), where Python's == would take true for 1."""
    return a == b or canonical.dumps(json.loads(a)) == canonical.dumps(json.loads(b))


def _stamp_versionless(item: NewObject, date_added: int, lineages) -> NewObject:
    if item.version_us is not None:
        return item
    lineages[item.id].versions = {date_added}
    return replace(item, version_us=date_added, version=timestamps.format_us(date_added))


def _lineages(conn: Connection, ids: set[str]) -> dict[str, _Lineage]:
    """id -> its owner and stored version_us values.

    A store upgraded from per-origin lineages has one origin per id (migration 7); should
    one still show several, the first stored keeps the id, as the migration decides.
    """
    found: dict[str, _Lineage] = {}
    id_list = sorted(ids)
    for start in range(0, len(id_list), _CHUNK):
        chunk = id_list[start:start + _CHUNK]
        for origin, object_id, version_us in conn.execute(_LINEAGES, {"ids": chunk}):
            lineage = found.setdefault(object_id, _Lineage(origin, set()))
            if lineage.origin == origin:
                lineage.versions.add(version_us)
    return found


def _insert_rows(conn, fresh, dates_added, lineages, interned) -> None:
    latest = {i: max(lineage.versions) for i, lineage in lineages.items() if lineage.versions}
    first = {i: min(lineage.versions) for i, lineage in lineages.items() if lineage.versions}
    rows = [_row(item, date_added, item.version_us == latest[item.id],
                 item.version_us == first[item.id], interned[item.audience])
            for item, date_added in zip(fresh, dates_added, strict=True)]
    audiences.count(conn, Counter(row["audience_pk"] for row in rows))
    restricted = [i for i, item in enumerate(fresh) if item.audience.compartments
                  or item.audience.recipient_orgs or item.audience.recipient_principals]
    if not restricted:  # the common case: no child rows, so no need for the new pks
        _insert_plain(conn, rows)
        return
    result = conn.execute(objects.insert().returning(objects.c.pk, sort_by_parameter_order=True),
                          rows)
    pks = [row.pk for row in result]
    compartments, recipients = [], []
    for pk, item in zip(pks, fresh, strict=True):
        audience = item.audience
        compartments += [{"object_pk": pk, "name": c} for c in sorted(audience.compartments)]
        recipients += [{"object_pk": pk, "kind": "org", "name": n}
                       for n in sorted(audience.recipient_orgs)]
        recipients += [{"object_pk": pk, "kind": "principal", "name": n}
                       for n in sorted(audience.recipient_principals)]
    if compartments:
        conn.execute(object_compartments.insert(), compartments)
    if recipients:
        conn.execute(object_recipients.insert(), recipients)


def _insert_plain(conn: Connection, rows: list[dict]) -> None:
    """Bulk insert through the driver's executemany.

    SQLAlchemy's per-value bind processing cost more than the insert itself (a bulk of
    10,000 signed objects spent 0.28 s there against 0.06 s in SQLite); every value here is
    a plain str, int, bool, bytes or None, which both drivers take as they are.
    """
    names = list(rows[0])
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO {objects.name} ({', '.join(names)}) "
           f"VALUES ({', '.join([mark] * len(names))})")
    conn.exec_driver_sql(sql, [tuple(row[n] for n in names) for row in rows])


def _demote(conn, fresh, lineages, earlier: frozenset[str]) -> None:
    """Clear is_latest (is_first) on the stored versions of ids where a new version takes
    it over. Only ids with stored versions have any to clear, and their new versions all
    carry a version (an SCO with a stored version is never new), so this needs no stamp
    and runs before the clock.

    Filtering on id keeps this on the (id, origin, version) index.
    """
    for flag, extreme in (("is_latest", max), ("is_first", min)):
        ids = sorted({item.id for item in fresh if item.id in earlier
                      and item.version_us == extreme(lineages[item.id].versions)})
        for start in range(0, len(ids), _CHUNK):
            conn.execute(objects.update().where(objects.c.id.in_(ids[start:start + _CHUNK]))
                         .values({flag: False}))


def _row(item: NewObject, date_added: int, is_latest: bool, is_first: bool,
         audience_pk: int) -> dict:
    audience = item.audience
    return {"audience_pk": audience_pk,
        "id": item.id, "type": item.type, "spec_version": item.spec_version,
        "version": item.version, "version_us": item.version_us, "date_added": date_added,
        "is_latest": is_latest, "is_first": is_first, "raw": item.raw,
        "tlp_rank": audience.tlp_rank, "all_sectors": audience.all_sectors,
        "sector_mask": audience.sector_mask,
        "has_compartments": bool(audience.compartments),
        "has_recipients": bool(audience.recipient_orgs or audience.recipient_principals),
        "submitted_by": item.submitted_by, "collection_id": item.collection_id,
        "origin": item.origin, "signature": item.signature,
        "everywhere": item.everywhere,
    }


def delete(conn: Connection, pks: Sequence[int], counted: bool = True) -> int:
    """Remove versions by pk and repair the first/last flags of what remains.

    `counted=False` is for migration 8, which runs on stores from before audiences. The
    caller claims the ids before it reads which versions to delete (claims.py), or the
    rows it read could be deleted twice over; on PostgreSQL the clock is taken before
    the audience counts, in the order every publisher takes them.
    """
    if not pks:
        return 0
    columns = [objects.c.id, objects.c.origin, objects.c.date_added]
    if counted:
        columns.append(objects.c.audience_pk)
    doomed = list(conn.execute(sa.select(*columns).where(objects.c.pk.in_(pks))))
    if not claims.holds(conn, {r.id for r in doomed}):
        raise claims.Unclaimed("delete the versions of claimed ids only")
    if not is_sqlite(conn):
        conn.execute(_HOLD_CLOCK)
    if counted:
        gone = Counter(r.audience_pk for r in doomed)
        audiences.count(conn, Counter({pk: -n for pk, n in gone.items()}))
    lineages = sorted({(r.origin, r.id) for r in doomed})
    for table in (object_compartments, object_recipients):
        conn.execute(table.delete().where(table.c.object_pk.in_(pks)))
    conn.execute(subscription_objects.delete().where(
        subscription_objects.c.date_added.in_([r.date_added for r in doomed])))
    count = conn.execute(objects.delete().where(objects.c.pk.in_(pks))).rowcount
    for origin, object_id in lineages:
        _refresh_flags(conn, origin, object_id)
    return count


def _refresh_flags(conn: Connection, origin: str, object_id: str) -> None:
    lineage = (objects.c.id == object_id, objects.c.origin == origin)
    bounds = conn.execute(sa.select(sa.func.min(objects.c.version_us),
                                    sa.func.max(objects.c.version_us)).where(*lineage)).one()
    if bounds[0] is None:
        return
    conn.execute(objects.update().where(*lineage).values(
        is_first=objects.c.version_us == bounds[0],
        is_latest=objects.c.version_us == bounds[1],
    ))


# --- reading -----------------------------------------------------------------------------

def lens(spec: CollectionSpec) -> sa.ColumnElement[bool]:
    """What a collection holds, before access is applied."""
    if spec.kind == "all":
        return sa.true()
    if spec.kind == "sector":
        held = objects.c.all_sectors
        if spec.sector:
            held = sa.or_(held, objects.c.sector_mask.op("&")(sectors.bit(spec.sector)) != 0)
        return sa.or_(held, objects.c.everywhere)
    if spec.kind == "types":
        return sa.or_(objects.c.type.in_(spec.types), objects.c.everywhere)
    if spec.kind == "submitted":
        return sa.or_(objects.c.collection_id == spec.id, objects.c.everywhere)
    if spec.kind == "subscription":
        routed = sa.select(subscription_objects.c.date_added).where(
            subscription_objects.c.subscription_pk == spec.subscription_pk)
        return sa.or_(objects.c.date_added.in_(routed), objects.c.everywhere)
    raise ValueError(f"unknown collection kind {spec.kind!r}")


def is_listing(filters: Filters) -> bool:
    """A plain listing names no ids or types: it lists a collection's own objects, and the
    service definitions come only with the objects that reference them (closure.py)."""
    return not filters.ids and not filters.types


def _match(filters: Filters) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if is_listing(filters):
        conditions.append(sa.not_(objects.c.everywhere))
    if filters.ids:
        conditions.append(objects.c.id.in_(filters.ids))
    if filters.types:
        conditions.append(objects.c.type.in_(filters.types))
    if filters.spec_versions:
        conditions.append(objects.c.spec_version.in_(filters.spec_versions))
    if "all" not in filters.versions:
        either: list[sa.ColumnElement[bool]] = []
        if "last" in filters.versions:
            either.append(objects.c.is_latest)
        if "first" in filters.versions:
            either.append(objects.c.is_first)
        exact = [v for v in filters.versions if isinstance(v, int)]
        if exact:
            either.append(objects.c.version_us.in_(exact))
        conditions.append(sa.or_(*either))
    return conditions


def page(
    conn: Connection,
    principal: access.Principal,
    spec: CollectionSpec,
    filters: Filters,
    after: int | None,
    limit: int,
    columns: Sequence[sa.ColumnElement],
    how: keyset.Merge | None | str = "plan",
) -> list[Row]:
    """Up to limit + 1 visible rows after position `after`, oldest first.

    The extra row only tells the caller whether there is more. `how`: see _ordered.
    """
    return list(conn.execute(_ordered(conn, principal, spec, filters, after, limit, columns,
                                      how)))


def _ordered(conn: Connection, principal: access.Principal, spec: CollectionSpec,
             filters: Filters, after: int | None, limit: int, columns: Sequence,
             how: keyset.Merge | None | str = "plan") -> sa.Select:
    """The keyset query of a page (store/keyset.py): by scan or by merging the
    principal's audiences, whichever reads fewer rows; `how` forces one (tests)."""
    floor = max(x for x in (after, filters.added_after, -1) if x is not None)
    if how == "plan":
        how = keyset.plan(conn, principal, limit, by_id=bool(filters.ids))
    return keyset.ordered(principal, how, [lens(spec), *_match(filters)], floor, limit,
                          columns, last_only=tuple(filters.versions) == ("last",))


# What an envelope adds around its objects (the brackets, `more`, a `next` token).
ENVELOPE_BYTES = 512


@dataclass(frozen=True)
class Page:
    rows: list[Row]  # the collection's objects, by date_added: they place the cursor
    more: bool
    definitions: list[Row] = ()  # the service definitions `rows` reference


def page_bytes(conn: Connection, principal: access.Principal, spec: CollectionSpec,
               filters: Filters, after: int | None, limit: int, max_bytes: int) -> Page:
    """Up to `limit` visible objects' bytes after `after`, oldest first, stopping before the
    object that would take the page past `max_bytes` (an object larger than that comes
    alone); and whether more follow. A page of 9 MiB objects never loads what it does not
    serve (beyond, on SQLite, the one object that tells there is more). A plain listing
    also carries the definitions its objects reference, within the same limits.
    """
    def query(*columns) -> sa.Select:
        return _ordered(conn, principal, spec, filters, after, limit, columns)

    budget = max_bytes - ENVELOPE_BYTES
    if is_sqlite(conn):
        rows, more = _page_bytes_stepping(conn, query(objects.c.raw), limit, budget)
    else:
        rows, more = _page_bytes_sized(conn, query, limit, budget)
    if not is_listing(filters) or not rows:
        return Page(rows, more)
    closed = closure.close(conn, principal, rows, limit, budget)
    return Page(closed.rows, more or closed.trimmed, closed.definitions)


def _page_bytes_stepping(conn: Connection, query: sa.Select, limit: int, budget: int):
    """SQLite steps through a result row by row: stop reading at the cut. This costs what
    a plain page costs (a running sum in SQL took twice as long)."""
    rows: list[Row] = []
    total = 0
    result = conn.execute(query)
    try:
        for row in result:
            total += len(row.raw) + 1
            if rows and (total > budget or len(rows) == limit):
                return rows, True
            rows.append(row)
        return rows, False
    finally:
        result.close()


def _page_bytes_sized(conn: Connection, query, limit: int, budget: int):
    """PostgreSQL sends a whole result at once, but detoasts a value only when it is sent:
    one statement takes the keyset page of (pk, length) on its index, and a running sum
    over those rows chooses whose bytes to send."""
    keys = query(objects.c.pk, sa.func.octet_length(objects.c.raw).label("size")
                 ).subquery("keys")
    sized = sa.select(
        keys.c.pk, keys.c.date_added, keys.c.size,
        sa.func.sum(keys.c.size + 1).over(order_by=keys.c.date_added).label("running"),
        sa.func.count().over().label("found")).subquery("sized")
    fits = sa.or_(sized.c.running <= budget, sized.c.running == sized.c.size + 1)
    query = (sa.select(objects.c.raw, sized.c.date_added, sized.c.found)
             .join_from(sized, objects, objects.c.pk == sized.c.pk)
             .where(fits).order_by(sized.c.date_added))
    rows = binary_rows(conn, query)[:limit]
    return rows, bool(rows) and rows[0].found > len(rows)


def versions_page(
    conn: Connection,
    principal: access.Principal,
    spec: CollectionSpec,
    object_id: str,
    filters: Filters,
    after: int | None,
    limit: int,
) -> list[Row]:
    """Visible versions of one object, by date_added, with the same keyset rule."""
    only = Filters(added_after=filters.added_after, ids=(object_id,), versions=("all",),
                   spec_versions=filters.spec_versions)
    return page(conn, principal, spec, only, after, limit,
                (objects.c.version, objects.c.version_us))


def visible_versions(conn: Connection, principal: access.Principal, spec: CollectionSpec,
                     object_id: str, filters: Filters) -> list[Row]:
    """Every visible version of one object matching `filters` (for DELETE)."""
    query = sa.select(objects.c.pk, objects.c.submitted_by).where(
        objects.c.id == object_id, lens(spec), *_match(filters), access.visible(principal))
    return list(conn.execute(query))


def exists(conn: Connection, principal: access.Principal, spec: CollectionSpec,
           object_id: str) -> bool:
    query = sa.select(objects.c.pk).where(objects.c.id == object_id, lens(spec),
                                          access.visible(principal)).limit(1)
    return conn.execute(query).first() is not None


@dataclass(frozen=True)
class Stored:
    """The latest stored version of an id: its bytes and who it is for."""

    raw: bytes
    audience: access.Audience
    version_us: int


def latest_versions(conn: Connection, ids: Sequence[str], origin: str = "service"
                    ) -> dict[str, int]:
    """id -> the version_us of `origin`'s latest version, for the ids that have one: what
    publish checks under the lock against what it prepared from (drafts.moved)."""
    found: dict[str, int] = {}
    id_list = sorted(set(ids))
    for start in range(0, len(id_list), _CHUNK):
        for object_id, version_us in conn.execute(_LATEST, {
                "ids": id_list[start:start + _CHUNK], "origin": origin}):
            found[object_id] = version_us
    return found


def latest_stored(conn: Connection, ids: Sequence[str], origin: str = "service"
                  ) -> dict[str, Stored]:
    """The latest version of each of `origin`'s ids, with its audience (write path): a
    notice re-published to another audience must re-version every object it covers."""
    found: dict[str, Stored] = {}
    id_list = sorted(set(ids))
    for start in range(0, len(id_list), _CHUNK):
        rows = list(conn.execute(sa.select(
            objects.c.pk, objects.c.id, objects.c.raw, objects.c.version_us,
            objects.c.tlp_rank, objects.c.all_sectors, objects.c.sector_mask).where(
            objects.c.id.in_(id_list[start:start + _CHUNK]), objects.c.origin == origin,
            objects.c.is_latest)))
        named = _named_audience(conn, [row.pk for row in rows])
        for row in rows:
            compartments, orgs, names = named.get(row.pk, (set(), set(), set()))
            found[row.id] = Stored(row.raw, audiences.from_columns(
                row.tlp_rank, row.all_sectors, row.sector_mask, compartments, orgs, names),
                row.version_us)
    return found


def _named_audience(conn: Connection, pks: list[int]) -> dict[int, tuple[set, set, set]]:
    """pk -> (compartments, recipient orgs, recipient principals)."""
    named: dict[int, tuple[set, set, set]] = {}
    if not pks:
        return named
    for pk, name in conn.execute(sa.select(object_compartments.c.object_pk,
                                           object_compartments.c.name)
                                 .where(object_compartments.c.object_pk.in_(pks))):
        named.setdefault(pk, (set(), set(), set()))[0].add(name)
    for pk, kind, name in conn.execute(sa.select(
            object_recipients.c.object_pk, object_recipients.c.kind, object_recipients.c.name)
            .where(object_recipients.c.object_pk.in_(pks))):
        named.setdefault(pk, (set(), set(), set()))[1 if kind == "org" else 2].add(name)
    return named
