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
    table constraint, a nullable origin, no signature column and no audiences."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            ddl = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'objects'").scalar()
            ddl = ddl.replace("origin VARCHAR(120) DEFAULT 'service' NOT NULL",
                              "origin VARCHAR(120)").replace("signature VARCHAR(16), ", "")
            ddl = ddl.replace("audience_pk BIGINT, ", "")
            assert "audience_pk" not in ddl
            assert "signature" not in ddl
            ddl = ddl.rstrip().rstrip(")") + (
                ", CONSTRAINT uq_objects_id_version UNIQUE (id, version_us))")
            conn.exec_driver_sql("DROP TABLE objects")
            conn.exec_driver_sql(ddl)
        else:
            conn.exec_driver_sql("DROP INDEX uq_objects_id_origin_version")
            conn.exec_driver_sql("ALTER TABLE objects DROP COLUMN signature")
            conn.exec_driver_sql("ALTER TABLE objects DROP COLUMN audience_pk")
            conn.exec_driver_sql("ALTER TABLE objects ALTER COLUMN origin DROP NOT NULL, "
                                 "ALTER COLUMN origin DROP DEFAULT")
            conn.exec_driver_sql("ALTER TABLE objects ADD CONSTRAINT uq_objects_id_version "
                                 "UNIQUE (id, version_us)")
        conn.exec_driver_sql("DROP TABLE audiences")
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
    with read(engine) as conn:  # migration 18: the LES row's audience differs
        assert len(set(conn.execute(sa.select(objects.c.audience_pk)).scalars()) - {None}) == 2
    names = {c["name"] for c in sa.inspect(engine).get_unique_constraints("objects")}
    assert "uq_objects_id_version" not in names
    copy = store.NewObject(id=ids[0], type="indicator", spec_version="2.1",
                           version="2025-01-01T00:00:00.000Z",
                           version_us=1_735_689_600_000_000, raw=b"{}",
                           audience=access.Audience(tlp="green"), origin="principal:x")
    with write(engine) as conn:  # the id is the service's: nobody else adds versions
        assert store.insert(conn, [copy]) == [store.FOREIGN]
    engine.dispose()


def _make_version_6(engine) -> None:
    """Turn a current store back into the version-6 shape: notices unique on (source,
    source_id) with no org or id_namespace, and no installation, displaced or audience
    tables."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_objects_audience_added")
        conn.exec_driver_sql("ALTER TABLE objects DROP COLUMN audience_pk")
        conn.exec_driver_sql("DROP TABLE audiences")
        conn.exec_driver_sql("DROP TABLE installation")
        conn.exec_driver_sql("DROP TABLE displaced_objects")
        conn.exec_driver_sql("DROP INDEX uq_notices_source_org")
        if conn.dialect.name == "sqlite":
            ddl = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'notices'").scalar()
            ddl = ddl.replace("org VARCHAR(200) DEFAULT '' NOT NULL, ", "").replace(
                "id_namespace VARCHAR(36), ", "")
            assert "org" not in ddl.replace("VARCHAR", ""), ddl
            ddl = ddl.rstrip().rstrip(")") + (
                ", CONSTRAINT uq_notices_source UNIQUE (source, source_id))")
            conn.exec_driver_sql("DROP TABLE notices")
            conn.exec_driver_sql(ddl)
        else:
            conn.exec_driver_sql("ALTER TABLE notices DROP COLUMN org, "
                                 "DROP COLUMN id_namespace")
            conn.exec_driver_sql("ALTER TABLE notices ADD CONSTRAINT uq_notices_source "
                                 "UNIQUE (source, source_id)")
        conn.exec_driver_sql("UPDATE schema_info SET version = 6")


def test_upgrade_from_version_6_gives_each_id_one_owner(database_url):
    from infoshare.stix.ids import LEGACY_NAMESPACE
    from infoshare.store import principals as principal_store
    from infoshare.store.schema import audit, displaced_objects, notices
    from infoshare.tiers import Tiers

    engine = connect_engine(database_url)
    migrate.upgrade(engine)
    shared, alone = f"report--{uuid.uuid4()}", f"indicator--{uuid.uuid4()}"
    with write(engine) as conn:
        publisher, _ = principal_store.add(
            conn, Tiers({"trusted": "red"}), name="pub", org="Ops", tier="trusted",
            all_sectors=True, roles=("publisher",), password="x" * 12, log2_n=10,
            known_compartments={})
    _make_version_6(engine)
    with engine.begin() as conn:
        pk = conn.execute(sa.text("SELECT pk FROM principals WHERE name = 'pub'")).scalar()
        row = {"report_id": shared, "source": "bulletin", "source_id": "s-1", "title": "t",
               "kind": "cyber", "tlp": "green", "severity": "Unknown", "sector_mask": 0,
               "all_sectors": True, "revoked": False, "published_by": pk, "created_us": 1,
               "modified_us": 1, "version": "v", "object_ids": "[]", "document": "{}"}
        conn.execute(sa.text(f"INSERT INTO notices ({', '.join(row)}) VALUES "
                             f"({', '.join(':' + n for n in row)})"), row)
        # The partner planted the (then computable) id before the service published it.
        for n, (oid, origin) in enumerate([(shared, "principal:evil"), (shared, "service"),
                                           (alone, "principal:evil")], start=1):
            old = _old_row(n, oid) | {"origin": origin, "has_compartments": False}
            if origin != "service":
                old |= {"version_us": old["version_us"] + 10**9,
                        "version": "2025-01-01T00:16:40.000Z"}
            _insert_old(conn, old | {"signature": None})
    assert migrate.upgrade(engine) == (6, len(migrate.MIGRATIONS))
    assert migrate.upgrade(engine) == (len(migrate.MIGRATIONS), len(migrate.MIGRATIONS))
    with read(engine) as conn:
        rows = conn.execute(sa.select(objects.c.id, objects.c.origin, objects.c.is_latest)
                            .order_by(objects.c.pk)).all()
        moved = conn.execute(sa.select(displaced_objects.c.id, displaced_objects.c.origin)).all()
        logged = conn.execute(sa.select(audit.c.target, audit.c.details)
                              .where(audit.c.action == "displace")).all()
        notice = conn.execute(sa.select(notices.c.org, notices.c.id_namespace)).one()
    assert [tuple(r) for r in rows] == [(shared, "service", True),
                                        (alone, "principal:evil", True)]
    assert [tuple(r) for r in moved] == [(shared, "principal:evil")]
    assert logged[0].target == shared and logged[0].details["owner"] == "service"
    assert tuple(notice) == ("Ops", str(LEGACY_NAMESPACE))
    names = {c["name"] for c in sa.inspect(engine).get_unique_constraints("notices")}
    assert "uq_notices_source" not in names
    with write(engine) as conn:  # another organisation may now use the same source_id
        conn.execute(notices.insert().values(
            report_id=f"report--{uuid.uuid4()}", source="bulletin", source_id="s-1",
            org="Rival", title="t", kind="cyber", tlp="green", severity="Unknown",
            sector_mask=0, all_sectors=True, revoked=False, created_us=1, modified_us=1,
            version="v", object_ids=[], document={}))
    engine.dispose()


def _before_audiences(engine) -> None:
    """Turn a current store back into the shape before audiences (version 17): no
    audiences table, no objects.audience_pk and its index."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_objects_audience_added")
        conn.exec_driver_sql("ALTER TABLE objects DROP COLUMN audience_pk")
        conn.exec_driver_sql("DROP TABLE audiences")
        conn.exec_driver_sql("UPDATE schema_info SET version = 17")


def test_upgrade_gives_every_stored_version_its_audience(database_url):
    """Plain and named audiences (compartments, AMBER+STRICT orgs, RED principals) are
    interned and counted, and a narrow reader's merged page is the scan's."""
    from infoshare import sectors
    from infoshare.settings import CollectionSpec
    from infoshare.store import audiences as audience_store
    from infoshare.store import keyset
    from infoshare.store.schema import audiences

    water = sectors.mask(["water"])
    kinds = [access.Audience(tlp="green"),
             access.Audience(tlp="amber", all_sectors=False, sector_mask=water),
             access.Audience(tlp="green", compartments=frozenset({"LES"})),
             access.Audience(tlp="amber+strict", recipient_orgs=frozenset({"Ops"})),
             access.Audience(tlp="red", recipient_principals=frozenset({"ann", "bob"}))]
    engine = connect_engine(database_url)
    migrate.upgrade(engine)
    stored = {}
    with write(engine) as conn:
        for n in range(20):
            oid = f"indicator--{uuid.uuid4()}"
            stored[oid] = kinds[n % len(kinds)]
            store.insert(conn, [store.NewObject(
                id=oid, type="indicator", spec_version="2.1",
                version="2025-01-01T00:00:00.000Z", version_us=1_735_689_600_000_000 + n,
                raw=json.dumps({"id": oid}).encode(), audience=stored[oid])])
    _before_audiences(engine)
    assert migrate.upgrade(engine) == (17, len(migrate.MIGRATIONS))
    assert migrate.upgrade(engine) == (len(migrate.MIGRATIONS), len(migrate.MIGRATIONS))
    with read(engine) as conn:
        found = {row.pk: audience_store._audience(row) for row in conn.execute(
            sa.select(audiences))}
        counts = dict(conn.execute(sa.select(audiences.c.pk, audiences.c.objects)).all())
        rows = conn.execute(sa.select(objects.c.id, objects.c.audience_pk)).all()
    assert {r.id: found[r.audience_pk] for r in rows} == stored
    assert sorted(counts.values()) == [4] * len(kinds)
    spec = CollectionSpec(id=str(uuid.uuid4()), alias="all", title="", description="",
                          kind="all")
    ann = access.Principal(pk=1, id="a", name="ann", org="Ops", tier="t", max_rank=4,
                           all_sectors=False, sector_mask=water)
    with read(engine) as conn:  # every kind but the compartment's
        merged = store.page(conn, ann, spec, store.Filters(), None, 100, (objects.c.id,),
                            how=keyset.Merge(access.Seen(
                                audience_store.view(conn, ann).seen.pks, None)))
        scan = store.page(conn, ann, spec, store.Filters(), None, 100, (objects.c.id,),
                          how=None)
    assert [r.id for r in merged] == [r.id for r in scan] and len(scan) == 16
    engine.dispose()
