"""The store on both engines: schema upgrade, versions, keyset reads, the access predicate
against its Python twin, and date_added ordering under concurrent writers."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import replace

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infoshare import access, sectors, tiers
from infoshare.settings import CollectionSpec
from infoshare.store import claims, migrate, read, write
from infoshare.store import objects as store
from infoshare.store.engine import binary_rows, connect_engine
from infoshare.store.schema import objects as objects_table
from infoshare.timestamps import parse_us

EVERYTHING = CollectionSpec(id=str(uuid.uuid4()), alias="all", title="All", description="",
                            kind="all")


def admin() -> access.Principal:
    return access.Principal(pk=1, id="p-admin", name="admin", org="ops", tier="trusted",
                            max_rank=4, all_sectors=True, sector_mask=0)


def new(object_id: str, modified: str, audience: access.Audience | None = None,
        object_type: str = "indicator") -> store.NewObject:
    raw = json.dumps({"type": object_type, "id": object_id, "modified": modified}).encode()
    return store.NewObject(id=object_id, type=object_type, spec_version="2.1",
                           version=modified, version_us=parse_us(modified), raw=raw,
                           audience=audience or access.Audience(tlp="clear"))


def everything(engine, versions=("all",), principal=None, limit=100_000):
    with read(engine) as conn:
        return store.page(conn, principal or admin(), EVERYTHING,
                          store.Filters(versions=versions), None, limit,
                          (objects_table.c.id, objects_table.c.version))


def test_upgrade_is_idempotent(database_url):
    engine = connect_engine(database_url)
    assert migrate.upgrade(engine) == (0, len(migrate.MIGRATIONS))
    assert migrate.upgrade(engine) == (len(migrate.MIGRATIONS), len(migrate.MIGRATIONS))
    assert migrate.current_version(engine) == len(migrate.MIGRATIONS)
    engine.dispose()


def test_versions_first_and_last_in_any_arrival_order(engine):
    oid = f"indicator--{uuid.uuid4()}"
    stamps = ["2025-03-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z",
              "2025-05-01T00:00:00Z", "2025-02-01T00:00:00.000Z"]
    for stamp in stamps:
        with write(engine) as conn:
            store.insert(conn, [new(oid, stamp)])
    assert [r.version for r in everything(engine, ("last",))] == ["2025-05-01T00:00:00Z"]
    assert [r.version for r in everything(engine, ("first",))] == ["2025-01-01T00:00:00.000Z"]
    assert len(everything(engine)) == 4
    exact = everything(engine, (parse_us("2025-02-01T00:00:00Z"),))
    assert [r.version for r in exact] == ["2025-02-01T00:00:00.000Z"]


def test_duplicates_are_reported_and_not_stored(engine):
    oid = f"indicator--{uuid.uuid4()}"
    with write(engine) as conn:
        first = store.insert(conn, [new(oid, "2025-01-01T00:00:00.000Z"),
                                    new(oid, "2025-01-01T00:00:00Z")])  # same instant
    assert first[0] is not None and first[1] is None
    with write(engine) as conn:
        assert store.insert(conn, [new(oid, "2025-01-01T00:00:00.000Z")]) == [None]
    assert len(everything(engine)) == 1


def test_failed_transaction_leaves_nothing(engine):
    with pytest.raises(RuntimeError), write(engine) as conn:
        store.insert(conn, [new(f"indicator--{uuid.uuid4()}", "2025-01-01T00:00:00Z")])
        raise RuntimeError("crash after the insert, before commit")
    assert everything(engine) == []


def test_delete_repairs_first_and_last(engine):
    oid = f"indicator--{uuid.uuid4()}"
    with write(engine) as conn:
        store.insert(conn, [new(oid, f"2025-0{m}-01T00:00:00.000Z") for m in (1, 2, 3)])
    with write(engine) as conn:
        claims.claim(conn, [oid])  # before reading what to delete (see claims.py)
        rows = store.visible_versions(conn, admin(), EVERYTHING, oid,
                                      store.Filters(versions=("last",)))
        assert store.delete(conn, [r.pk for r in rows]) == 1
    assert [r.version for r in everything(engine, ("last",))] == ["2025-02-01T00:00:00.000Z"]


def test_keyset_pages_cover_everything_once(engine):
    with write(engine) as conn:
        store.insert(conn, [new(f"indicator--{uuid.uuid4()}", "2025-01-01T00:00:00Z")
                            for _ in range(250)])
    seen, after = [], None
    while True:
        with read(engine) as conn:
            rows = store.page(conn, admin(), EVERYTHING, store.Filters(), after, 40,
                              (objects_table.c.id,))
        seen += [r.id for r in rows[:40]]
        if len(rows) <= 40:
            break
        after = rows[39].date_added
    assert len(seen) == len(set(seen)) == 250


def test_concurrent_writers_never_hide_a_row_from_a_poller(engine):
    """date_added is handed out under the store lock, so commit order equals date_added
    order: a poller that resumes from the last date_added it saw misses nothing."""
    writers, per_writer = 4, 40
    seen: list[str] = []
    done = threading.Event()

    def write_some():
        for _ in range(per_writer):
            with write(engine) as conn:
                store.insert(conn, [new(f"indicator--{uuid.uuid4()}", "2025-01-01T00:00:00Z")])

    def poll():
        after = None
        while True:
            finished = done.is_set()
            with read(engine) as conn:
                rows = store.page(conn, admin(), EVERYTHING, store.Filters(), after, 1000,
                                  (objects_table.c.id,))
            seen.extend(r.id for r in rows)
            if rows:
                after = rows[-1].date_added
            elif finished:
                return

    threads = [threading.Thread(target=write_some) for _ in range(writers)]
    poller = threading.Thread(target=poll)
    poller.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    poller.join()
    stored = everything(engine)
    assert len(stored) == writers * per_writer
    assert sorted(seen) == sorted(r.id for r in stored)
    with read(engine) as conn:
        added = [r[0] for r in conn.execute(sa.select(objects_table.c.date_added)
                                            .order_by(objects_table.c.pk))]
    assert added == sorted(added) and len(set(added)) == len(added)


# --- the access rule: SQL predicate == Python function --------------------------------------

COMPARTMENTS = ["LES", "PCII"]
sector_masks = st.integers(min_value=0, max_value=sectors.ALL_MASK)
names = st.sampled_from(["ann", "bob", "cy"])
orgs = st.sampled_from(["org-a", "org-b"])

principals = st.builds(
    lambda i, name, org, rank, all_sectors, mask, comps: access.Principal(
        pk=i, id=f"p{i}", name=name, org=org, tier="t", max_rank=rank,
        all_sectors=all_sectors, sector_mask=mask, compartments=frozenset(comps)),
    st.integers(1, 10**6), names, orgs, st.integers(0, 4), st.booleans(), sector_masks,
    st.sets(st.sampled_from(COMPARTMENTS)),
)
audiences = st.builds(
    access.Audience,
    tlp=st.sampled_from(tiers.TLP_LEVELS), all_sectors=st.booleans(), sector_mask=sector_masks,
    compartments=st.frozensets(st.sampled_from(COMPARTMENTS)),
    recipient_orgs=st.frozensets(orgs), recipient_principals=st.frozensets(names),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lineages=st.lists(st.lists(audiences, min_size=1, max_size=3), min_size=1, max_size=8),
       principal_list=st.lists(principals, min_size=1, max_size=6))
def test_sql_predicate_agrees_with_python_rule(engine, lineages, principal_list):
    """Random audience changes across versions: every principal sees exactly the versions
    the rule allows given each id's latest version, and the latest only when it may."""
    with write(engine) as conn:
        conn.execute(objects_table.delete())
        stored = []  # (id, version, audience, latest audience)
        for audience_list in lineages:
            oid = f"indicator--{uuid.uuid4()}"
            stamps = [f"2025-01-0{n + 1}T00:00:00.000Z" for n in range(len(audience_list))]
            # Versions arrive in any order; the latest is the greatest modified.
            order = list(zip(stamps, audience_list, strict=True))[::-1]
            store.insert(conn, [new(oid, stamp, a) for stamp, a in order])
            stored += [(oid, stamp, a, audience_list[-1], stamp == stamps[-1])
                       for stamp, a in order]
    for principal in principal_list:
        expected = {(i, v) for i, v, a, last, _ in stored
                    if access.may_see_version(principal, a, last)}
        got = {(r.id, r.version) for r in everything(engine, principal=principal)}
        assert got == expected, principal
        latest = {(i, v) for i, v, a, last, is_last in stored
                  if is_last and access.may_see(principal, last)}
        got_latest = {(r.id, r.version)
                      for r in everything(engine, ("last",), principal=principal)}
        assert got_latest == latest, principal


def test_an_id_belongs_to_its_first_origin(engine):
    oid = f"indicator--{uuid.uuid4()}"
    mine = new(oid, "2025-01-01T00:00:00.000Z")
    with write(engine) as conn:
        assert isinstance(store.insert(conn, [mine])[0], int)
        theirs = [replace(mine, origin="principal:x"),  # a copy: a duplicate
                  replace(new(oid, "2030-01-01T00:00:00.000Z"), origin="principal:x"),
                  replace(mine, origin="principal:x", raw=b'{"other": true}')]
        assert store.insert(conn, theirs) == [store.DUPLICATE, store.FOREIGN, store.FOREIGN]
        assert isinstance(store.insert(conn, [new(oid, "2026-01-01T00:00:00.000Z")])[0], int)
    assert [(r.id, r.version) for r in everything(engine, ("last",))] == [
        (oid, "2026-01-01T00:00:00.000Z")]
    assert len(everything(engine)) == 2


def test_a_copy_is_a_duplicate_only_as_json_text_and_only_when_visible(engine):
    oid = f"indicator--{uuid.uuid4()}"
    raw = json.dumps({"id": oid, "modified": "2025-01-01T00:00:00.000Z", "x": 1.0}).encode()
    secret = replace(new(oid, "2025-01-01T00:00:00.000Z", access.Audience(tlp="red")), raw=raw)
    with write(engine) as conn:
        store.insert(conn, [secret])
        same_number = replace(secret, origin="principal:x",
                              raw=raw.replace(b'"x": 1.0', b'"x":1'))
        true_for_one = replace(secret, origin="principal:x",
                               raw=raw.replace(b'"x": 1.0', b'"x": true'))
        assert store.insert(conn, [same_number, true_for_one]) == [store.DUPLICATE,
                                                                   store.FOREIGN]
        # The same copy from a principal who may not see the stored version: FOREIGN.
        assert store.insert(conn, [same_number], reader=admin()) == [store.FOREIGN]


def test_postgres_plans_id_lookups_with_their_ids_whatever_it_knew_when_it_first_ran_them(
        postgres):
    """The driver prepares a statement after five runs, and PostgreSQL then may cache one
    generic plan for it. Made while the table was small (a new hub), that plan scanned the
    whole objects table for a notice's ids, and kept scanning as it grew: some runs of
    bench/publish.py spent 10-12 ms of PostgreSQL CPU a bulletin instead of 2-3."""
    engine = connect_engine(postgres.new_database())
    migrate.upgrade(engine)
    wanted = [f"indicator--{uuid.uuid4()}" for _ in range(24)]
    scans = sa.text("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'objects'")

    def add_rows(first: int, count: int) -> None:
        conn.exec_driver_sql(
            "INSERT INTO objects (id, type, spec_version, version, version_us, date_added,"
            " origin, raw, tlp_rank, all_sectors, sector_mask, is_latest, is_first,"
            " has_compartments, has_recipients, everywhere)"
            " SELECT 'indicator--' || g, 'indicator', '2.1', 'v', g, g, 'service', '{}',"
            " 0, true, 0, true, true, false, false, false"
            f" FROM generate_series({first}, {first + count - 1}) g")
        conn.commit()

    def seq_scans() -> int:
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
        conn.commit()
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        value = conn.execute(scans).scalar()
        conn.commit()
        return value

    with engine.connect() as conn:
        add_rows(1, 300)
        conn.exec_driver_sql("ANALYZE objects")
        conn.commit()
        for _ in range(12):  # prepared, and planned for good, on a small table
            store.latest_versions(conn, wanted)
        conn.commit()
        add_rows(1000, 30000)  # the hub grows faster than autovacuum analyses
        before = seq_scans()
        for _ in range(10):
            store.latest_versions(conn, wanted)
        conn.commit()
        assert seq_scans() == before
    engine.dispose()


def test_postgres_sends_a_pages_bytes_in_binary_with_the_statements_parameters(postgres):
    """binary_rows runs a compiled statement on the driver's cursor: its bound values,
    expanded lists and literal lists must all reach PostgreSQL, and bytea arrive as the
    stored bytes (the text form sends hex twice their size)."""
    engine = connect_engine(postgres.new_database())
    migrate.upgrade(engine)
    items = [new(f"indicator--{uuid.uuid4()}", f"2025-01-01T00:00:0{i}.000Z") for i in range(5)]
    with write(engine) as conn:
        added = store.insert(conn, items)
    listed = sa.bindparam("listed", [i.id for i in items[:3]], expanding=True,
                          literal_execute=True)
    statement = (sa.select(objects_table.c.raw, objects_table.c.date_added)
                 .where(objects_table.c.id.in_(listed),
                        objects_table.c.id.in_([i.id for i in items[1:]]),
                        objects_table.c.date_added > added[0] - 1)
                 .order_by(objects_table.c.date_added).limit(10))
    with read(engine) as conn:
        rows = binary_rows(conn, statement)
    assert [(r.raw, r.date_added) for r in rows] == [(i.raw, a) for i, a in
                                                      zip(items[1:3], added[1:3], strict=True)]
    assert all(type(r.raw) is bytes for r in rows)
    engine.dispose()
