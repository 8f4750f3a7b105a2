"""Upgrading a store made by the schema before per-publisher lineages (version 4) keeps
every row, moves uniqueness to (id, origin, version) and is idempotent, on both engines."""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from infoshare import access
from infoshare.store import migrate, read, write
from infoshare.store import objects as store
from infoshare.store.engine import connect_engine
from infoshare.store.schema import object_compartments, objects


def _make_version_4(engine) -> None:
    """Turn a current store back into the version-4 shape: UNIQUE (id, version_us) as a
    table constraint, a nullable origin and no signature column."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            ddl = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'objects'").scalar()
            ddl = ddl.replace("origin VARCHAR(120) DEFAULT 'service' NOT NULL",
                              "origin VARCHAR(120)").replace("signature VARCHAR(16), ", "")
            assert "signature" not in ddl
            ddl = ddl.rstrip().rstrip(")") + (
                ", CONSTRAINT uq_objects_id_version UNIQUE (id, version_us))")
            conn.exec_driver_sql("DROP TABLE objects")
            conn.exec_driver_sql(ddl)
        else:
            conn.exec_driver_sql("DROP INDEX uq_objects_id_origin_version")
            conn.exec_driver_sql("ALTER TABLE objects DROP COLUMN signature")
            conn.exec_driver_sql("ALTER TABLE objects ALTER COLUMN origin DROP NOT NULL, "
                                 "ALTER COLUMN origin DROP DEFAULT")
            conn.exec_driver_sql("ALTER TABLE objects ADD CONSTRAINT uq_objects_id_version "
                                 "UNIQUE (id, version_us)")
        conn.exec_driver_sql("UPDATE schema_info SET version = 4")


def _old_row(pk: int, object_id: str) -> dict:
    return {"id": object_id, "type": "indicator", "spec_version": "2.1",
            "version": "2025-01-01T00:00:00.000Z", "version_us": 1_735_689_600_000_000,
            "date_added": 1_735_689_600_000_000 + pk, "is_latest": True, "is_first": True,
            "raw": json.dumps({"id": object_id}).encode(), "tlp_rank": 2, "all_sectors": True,
            "sector_mask": 0, "has_compartments": pk == 1, "has_recipients": False,
            "everywhere": False, "origin": None}


def _insert_old(conn, row: dict):
    """Insert through plain SQL: the version-4 table has no signature column."""
    names = list(row)
    return conn.execute(sa.text(f"INSERT INTO objects ({', '.join(names)}) VALUES "
                                f"({', '.join(':' + n for n in names)})"), row)


def test_upgrade_from_version_4_keeps_rows_and_allows_lineages(database_url):
    engine = connect_engine(database_url)
    migrate.upgrade(engine)
    _make_version_4(engine)
    ids = [f"indicator--{uuid.uuid4()}" for _ in range(2)]
    with engine.begin() as conn:
        _insert_old(conn, _old_row(1, ids[0]))
        _insert_old(conn, _old_row(2, ids[1]))
        first = conn.execute(sa.text("SELECT pk FROM objects WHERE id = :i"), {"i": ids[0]})
        conn.execute(object_compartments.insert().values(object_pk=first.scalar(), name="LES"))
    assert migrate.upgrade(engine) == (4, len(migrate.MIGRATIONS))
    assert migrate.upgrade(engine) == (len(migrate.MIGRATIONS), len(migrate.MIGRATIONS))
    with read(engine) as conn:
        rows = conn.execute(sa.select(objects.c.id, objects.c.origin)
                            .order_by(objects.c.pk)).all()
        kept = conn.execute(sa.select(object_compartments.c.name)).scalars().all()
    assert [tuple(r) for r in rows] == [(ids[0], "service"), (ids[1], "service")]
    assert kept == ["LES"]
    names = {c["name"] for c in sa.inspect(engine).get_unique_constraints("objects")}
    assert "uq_objects_id_version" not in names
    copy = store.NewObject(id=ids[0], type="indicator", spec_version="2.1",
                           version="2025-01-01T00:00:00.000Z",
                           version_us=1_735_689_600_000_000, raw=b"{}",
                           audience=access.Audience(tlp="green"), origin="principal:x")
    with write(engine) as conn:
        assert store.insert(conn, [copy])[0] is not None  # another publisher's lineage
        assert store.insert(conn, [copy]) == [None]  # but once only
    engine.dispose()
