"""Schema creation and migration: `infoshare db upgrade`.

Each migration is a function taking a connection; the schema_info row records how many
have run. Running upgrade twice is a no-op, and a new release appends migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .. import access, timestamps
from ..stix.ids import LEGACY_NAMESPACE
from . import audiences as audience_store
from . import claims
from . import objects as object_store
from .engine import write
from .schema import (
    api_keys,
    audiences,
    audit,
    displaced_objects,
    metadata,
    notices,
    objects,
    principals,
    schema_info,
    store_clock,
    subscriptions,
)


def _initial(conn: Connection) -> None:
    metadata.create_all(conn, checkfirst=True)
    if conn.execute(sa.select(store_clock.c.id)).first() is None:
        conn.execute(store_clock.insert().values(id=1, last_us=0))


def _add_missing_tables(conn: Connection) -> None:
    """Tables added after the first schema (notices, subscriptions, deliveries, audit)."""
    metadata.create_all(conn, checkfirst=True)


def _partial_latest_index(conn: Connection) -> None:
    """Replace the (is_latest, date_added) index by a partial index on date_added."""
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_objects_latest"))
    metadata.create_all(conn, checkfirst=True)


def _object_origin(conn: Connection) -> None:
    """objects.origin: who owns an id (rows from before are the service's)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("objects")}
    if "origin" not in columns:
        conn.execute(sa.text("ALTER TABLE objects ADD COLUMN origin VARCHAR(120)"))


def _lineage_per_origin(conn: Connection) -> None:
    """Versions become unique per (id, origin, version) instead of (id, version)."""
    conn.execute(sa.text("UPDATE objects SET origin = 'service' WHERE origin IS NULL"))
    constraints = {c["name"] for c in sa.inspect(conn).get_unique_constraints("objects")}
    if "uq_objects_id_version" in constraints:
        if conn.dialect.name == "sqlite":
            _rebuild_sqlite_objects(conn)
        else:
            conn.execute(sa.text("ALTER TABLE objects DROP CONSTRAINT uq_objects_id_version"))
            conn.execute(sa.text("ALTER TABLE objects ALTER COLUMN origin SET DEFAULT "
                                 "'service', ALTER COLUMN origin SET NOT NULL"))
    _create_indexes(conn, objects)


def _create_indexes(conn: Connection, table: sa.Table) -> None:
    """The schema's indexes on `table` whose columns it has yet (a later migration adds
    the others' columns, and their indexes with them)."""
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for index in table.indexes:
        if {c.name for c in index.columns} <= present:
            index.create(conn, checkfirst=True)


def _rebuild_sqlite_objects(conn: Connection) -> None:
    _rebuild_sqlite(conn, objects, ("object_compartments", "object_recipients"))


def _rebuild_sqlite(conn: Connection, table: sa.Table, children: tuple[str, ...] = ()) -> None:
    """SQLite cannot drop a table constraint: copy the table into its new definition.

    Dropping the old table cascades to the rows that reference it, so those are kept
    aside and put back. Indexes are created afresh from the schema afterwards.
    """
    for child in children:
        conn.execute(sa.text(f"CREATE TEMP TABLE keep_{child} AS SELECT * FROM {child}"))
    scratch = sa.MetaData()
    principals.to_metadata(scratch)  # for foreign keys to principals
    new = table.to_metadata(scratch, name=f"{table.name}_rebuilt")
    conn.execute(sa.schema.CreateTable(new))
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    columns = ", ".join(c.name for c in table.columns if c.name in present)
    conn.execute(sa.text(f"INSERT INTO {table.name}_rebuilt ({columns}) SELECT {columns} "
                         f"FROM {table.name}"))
    conn.execute(sa.text(f"DROP TABLE {table.name}"))
    conn.execute(sa.text(f"ALTER TABLE {table.name}_rebuilt RENAME TO {table.name}"))
    for child in children:
        conn.execute(sa.text(f"INSERT INTO {child} SELECT * FROM keep_{child}"))
        conn.execute(sa.text(f"DROP TABLE keep_{child}"))


def _signature_column(conn: Connection) -> None:
    """objects.signature: what checking a third-party object's signature found."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("objects")}
    if "signature" not in columns:
        conn.execute(sa.text("ALTER TABLE objects ADD COLUMN signature VARCHAR(16)"))


def _notices_per_organisation(conn: Connection) -> None:
    """notices.org and notices.id_namespace; source_ids become unique per organisation.

    A bulletin belongs to the organisation of the principal who first published it (the
    CLI's and the feeds' to the service, org ""), and every notice from before keeps the
    ids it has: they were made in the legacy namespace.
    """
    columns = {c["name"] for c in sa.inspect(conn).get_columns("notices")}
    if "org" not in columns:
        conn.execute(sa.text("ALTER TABLE notices ADD COLUMN org VARCHAR(200) "
                             "DEFAULT '' NOT NULL"))
    if "id_namespace" not in columns:
        conn.execute(sa.text("ALTER TABLE notices ADD COLUMN id_namespace VARCHAR(36)"))
        conn.execute(notices.update().values(id_namespace=str(LEGACY_NAMESPACE)))
        conn.execute(notices.update().where(notices.c.published_by.is_not(None)).values(
            org=sa.func.coalesce(sa.select(principals.c.org).where(
                principals.c.pk == notices.c.published_by).scalar_subquery(), "")))
    constraints = {c["name"] for c in sa.inspect(conn).get_unique_constraints("notices")}
    if "uq_notices_source" in constraints:
        if conn.dialect.name == "sqlite":
            _rebuild_sqlite(conn, notices)
        else:
            conn.execute(sa.text("ALTER TABLE notices DROP CONSTRAINT uq_notices_source"))
    for index in notices.indexes:
        index.create(conn, checkfirst=True)


def _one_owner_per_id(conn: Connection) -> None:
    """Where several origins stored versions under one id, one keeps it: the service when
    it is one of them (its ids could be computed before, so a partner may have planted
    one first, and the service's signed objects and notices must not be handed over),
    else the first stored.

    The others' versions move to displaced_objects (kept for the operator, read by no
    client) and each move is recorded in the audit log; the installation table and the
    displaced_objects table are created here for stores from before them.
    """
    metadata.create_all(conn, checkfirst=True)
    shared = [row.id for row in conn.execute(
        sa.select(objects.c.id).group_by(objects.c.id)
        .having(sa.func.count(sa.distinct(objects.c.origin)) > 1))]
    now = timestamps.now_us()
    for object_id in shared:
        rows = list(conn.execute(sa.select(  # the columns of the store at this version
            objects.c.pk, objects.c.id, objects.c.origin, objects.c.version,
            objects.c.date_added, objects.c.submitted_by, objects.c.raw)
            .where(objects.c.id == object_id)
                                 .order_by(objects.c.date_added)))
        origins = {r.origin for r in rows}
        owner = "service" if "service" in origins else rows[0].origin
        doomed = [r for r in rows if r.origin != owner]
        conn.execute(displaced_objects.insert(), [
            {"id": r.id, "origin": r.origin, "version": r.version, "date_added": r.date_added,
             "submitted_by": r.submitted_by, "raw": r.raw, "displaced_us": now}
            for r in doomed])
        object_store.delete(conn, [r.pk for r in doomed], counted=False)
        conn.execute(audit.insert().values(
            at_us=now, actor="service", action="displace", target=object_id,
            details={"owner": owner, "displaced": sorted({r.origin for r in doomed}),
                     "versions": len(doomed)}))


def _credentials(conn: Connection) -> None:
    """Server-side sessions, the failed-login throttle, and when each API key was used."""
    metadata.create_all(conn, checkfirst=True)
    columns = {c["name"] for c in sa.inspect(conn).get_columns("api_keys")}
    if "last_used_us" not in columns:
        conn.execute(sa.text("ALTER TABLE api_keys ADD COLUMN last_used_us BIGINT"))
    for index in api_keys.indexes:
        index.create(conn, checkfirst=True)


def _delivery_holder(conn: Connection) -> None:
    """deliveries.lease_holder: who sends a delivery, so a clean shutdown hands it back."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    if "lease_holder" not in columns:
        conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN lease_holder VARCHAR(200)"))


def _relay_provenance(conn: Connection) -> None:
    """The relayed table: where each relayed object came from."""
    metadata.create_all(conn, checkfirst=True)


def _feed_notes(conn: Connection) -> None:
    """feed_state.notes: what a run saw worth an operator's look, short of an error."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("feed_state")}
    if "notes" not in columns:
        conn.execute(sa.text("ALTER TABLE feed_state ADD COLUMN notes JSON"))


def _subscription_areas(conn: Connection) -> None:
    """Subscriptions say where: areas, include_unlocated and the areas' bounding box."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("subscriptions")}
    added = [("areas", "JSON"), ("has_areas", "BOOLEAN NOT NULL DEFAULT FALSE"),
             ("include_unlocated", "BOOLEAN NOT NULL DEFAULT TRUE"),
             ("min_lon", "FLOAT"), ("min_lat", "FLOAT"), ("max_lon", "FLOAT"),
             ("max_lat", "FLOAT")]
    for name, kind in added:
        if name not in columns:
            conn.execute(sa.text(f"ALTER TABLE subscriptions ADD COLUMN {name} {kind}"))
    for index in subscriptions.indexes:
        index.create(conn, checkfirst=True)


def _public_cves(conn: Connection) -> None:
    """public_cves: the one public vulnerability object per CVE that notices share."""
    metadata.create_all(conn, checkfirst=True)


def _notice_issued(conn: Connection) -> None:
    """notices.issued_us: the source's time; older notices take their first publication."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("notices")}
    if "issued_us" not in columns:
        conn.execute(sa.text("ALTER TABLE notices ADD COLUMN issued_us BIGINT"))
    conn.execute(sa.text("UPDATE notices SET issued_us = created_us WHERE issued_us IS NULL"))


def _ingest_jobs(conn: Connection) -> None:
    """ingest_jobs: TAXII envelopes processed in the background (status pending)."""
    metadata.create_all(conn, checkfirst=True)


def _import_checkpoints(conn: Connection) -> None:
    """import_checkpoints: where each `infoshare import` of a file stands."""
    metadata.create_all(conn, checkfirst=True)


def _object_audiences(conn: Connection) -> None:
    """objects.audience_pk: every stored version points at its interned audience
    (store/audiences.py), counted, so a narrow reader's page reads only its audiences.

    One pass sets the plain audiences (no compartments, below AMBER+STRICT) through a
    small map; the others are read with their compartments and recipients row by row.
    """
    metadata.create_all(conn, checkfirst=True)
    columns = {c["name"] for c in sa.inspect(conn).get_columns("objects")}
    if "audience_pk" not in columns:
        conn.execute(sa.text("ALTER TABLE objects ADD COLUMN audience_pk BIGINT"))
    plain = sa.and_(objects.c.audience_pk.is_(None), ~objects.c.has_compartments,
                    objects.c.tlp_rank < access.AMBER_STRICT)
    _set_plain_audiences(conn, plain)
    _set_named_audiences(conn)
    _create_indexes(conn, objects)
    conn.execute(audiences.update().values(objects=sa.select(sa.func.count()).where(
        objects.c.audience_pk == audiences.c.pk).scalar_subquery()))


def _set_plain_audiences(conn: Connection, plain) -> None:
    groups = conn.execute(sa.select(objects.c.tlp_rank, objects.c.all_sectors,
                                    objects.c.sector_mask).where(plain).distinct()).all()
    if not groups:
        return
    of = {g: audience_store.from_columns(g.tlp_rank, g.all_sectors, g.sector_mask)
          for g in groups}
    found = audience_store.intern(conn, of.values())
    scratch = sa.MetaData()
    mapping = sa.Table("audience_map", scratch, sa.Column("tlp_rank", sa.SmallInteger),
                       sa.Column("all_sectors", sa.Boolean), sa.Column("sector_mask",
                                                                       sa.Integer),
                       sa.Column("audience_pk", sa.BigInteger), prefixes=["TEMPORARY"])
    mapping.create(conn)
    conn.execute(mapping.insert(), [
        {"tlp_rank": g.tlp_rank, "all_sectors": g.all_sectors, "sector_mask": g.sector_mask,
         "audience_pk": found[of[g]]}
        for g in groups])
    conn.execute(objects.update().where(plain).values(audience_pk=sa.select(
        mapping.c.audience_pk).where(mapping.c.tlp_rank == objects.c.tlp_rank,
                                     mapping.c.all_sectors == objects.c.all_sectors,
                                     mapping.c.sector_mask == objects.c.sector_mask)
        .scalar_subquery()))
    mapping.drop(conn)


def _set_named_audiences(conn: Connection) -> None:
    rows = conn.execute(sa.select(objects.c.pk, objects.c.tlp_rank, objects.c.all_sectors,
                                  objects.c.sector_mask, objects.c.has_compartments)
                        .where(objects.c.audience_pk.is_(None))).all()
    for start in range(0, len(rows), 500):
        chunk = rows[start:start + 500]
        named = object_store._named_audience(conn, [r.pk for r in chunk])
        by_pk = {}
        for r in chunk:
            comps, orgs, names = named.get(r.pk, (set(), set(), set()))
            by_pk[r.pk] = audience_store.from_columns(
                r.tlp_rank, r.all_sectors, r.sector_mask,
                comps if r.has_compartments else (), orgs, names)
        found = audience_store.intern(conn, by_pk.values())
        for audience, pk in found.items():
            conn.execute(objects.update().values(audience_pk=pk).where(
                objects.c.pk.in_([p for p, a in by_pk.items() if a == audience])))


MIGRATIONS = (_initial, _add_missing_tables, _partial_latest_index, _object_origin,
              _lineage_per_origin, _signature_column, _notices_per_organisation,
              _one_owner_per_id, _credentials,
              _delivery_holder, _relay_provenance, _feed_notes, _subscription_areas,
              _public_cves, _notice_issued, _ingest_jobs, _import_checkpoints,
              _object_audiences)


# pg_advisory_xact_lock key of `db upgrade` (any constant the installation does not use).
_UPGRADE_LOCK = 0x1F05A4E


def take_turns(conn: Connection) -> None:
    """Hosts preparing one database at once (schema, installation facts) take turns for
    the rest of the transaction; SQLite's BEGIN IMMEDIATE already serialises them."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})


def current_version(engine: Engine) -> int:
    if not sa.inspect(engine).has_table(schema_info.name):
        return 0
    with engine.connect() as conn:
        return conn.execute(sa.select(schema_info.c.version)).scalar() or 0


def upgrade(engine: Engine) -> tuple[int, int]:
    """Run the migrations not yet applied; returns (version before, version after)."""
    with write(engine) as conn:
        take_turns(conn)
        schema_info.create(conn, checkfirst=True)
        before = conn.execute(sa.select(schema_info.c.version)).scalar()
        if before is None:
            conn.execute(schema_info.insert().values(id=1, version=0))
            before = 0
        if before < len(MIGRATIONS):
            claims.claim_all(conn)  # no writer in between (see claims.py)
        for migration in MIGRATIONS[before:]:
            migration(conn)
        conn.execute(schema_info.update().values(version=len(MIGRATIONS)))
    return before, len(MIGRATIONS)
