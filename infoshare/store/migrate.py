"""Schema creation and migration: `infoshare db upgrade`.

Each migration is a function taking a connection; the schema_info row records how many
have run. Running upgrade twice is a no-op, and a new release appends migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .engine import write
from .schema import metadata, objects, principals, schema_info, store_clock


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
    for index in objects.indexes:
        index.create(conn, checkfirst=True)


def _rebuild_sqlite_objects(conn: Connection) -> None:
    """SQLite cannot drop a table constraint: copy the table into the new definition.

    Dropping the old table cascades to the rows that reference it, so those are kept
    aside and put back.
    """
    children = ("object_compartments", "object_recipients")
    for child in children:
        conn.execute(sa.text(f"CREATE TEMP TABLE keep_{child} AS SELECT * FROM {child}"))
    scratch = sa.MetaData()
    principals.to_metadata(scratch)  # for the submitted_by foreign key
    new = objects.to_metadata(scratch, name="objects_rebuilt")
    conn.execute(sa.schema.CreateTable(new))
    present = {c["name"] for c in sa.inspect(conn).get_columns("objects")}
    columns = ", ".join(c.name for c in objects.columns if c.name in present)
    conn.execute(sa.text(f"INSERT INTO objects_rebuilt ({columns}) SELECT {columns} "
                         "FROM objects"))
    conn.execute(sa.text("DROP TABLE objects"))
    conn.execute(sa.text("ALTER TABLE objects_rebuilt RENAME TO objects"))
    for child in children:
        conn.execute(sa.text(f"INSERT INTO {child} SELECT * FROM keep_{child}"))
        conn.execute(sa.text(f"DROP TABLE keep_{child}"))


def _signature_column(conn: Connection) -> None:
    """objects.signature: what checking a third-party object's signature found."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("objects")}
    if "signature" not in columns:
        conn.execute(sa.text("ALTER TABLE objects ADD COLUMN signature VARCHAR(16)"))


MIGRATIONS = (_initial, _add_missing_tables, _partial_latest_index, _object_origin,
              _lineage_per_origin, _signature_column)


def current_version(engine: Engine) -> int:
    if not sa.inspect(engine).has_table(schema_info.name):
        return 0
    with engine.connect() as conn:
        return conn.execute(sa.select(schema_info.c.version)).scalar() or 0


def upgrade(engine: Engine) -> tuple[int, int]:
    """Run the migrations not yet applied; returns (version before, version after)."""
    with write(engine) as conn:
        schema_info.create(conn, checkfirst=True)
        before = conn.execute(sa.select(schema_info.c.version)).scalar()
        if before is None:
            conn.execute(schema_info.insert().values(id=1, version=0))
            before = 0
        for migration in MIGRATIONS[before:]:
            migration(conn)
        conn.execute(schema_info.update().values(version=len(MIGRATIONS)))
    return before, len(MIGRATIONS)
