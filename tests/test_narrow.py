"""Narrow readers (issue 12): a page read by merging the principal's audiences
(store/keyset.py) holds exactly the rows, in the same order, that the scan with the SQL
rule (`access.visible`) holds, for random stores, principals, lenses and filters, on both
engines; including rows of audiences the process has not read yet, and whichever audiences
are walked alone. The plan merges for a narrow reader and scans for an all-seeing one, and
walks small audiences together."""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infoshare import access, sectors, tiers
from infoshare.settings import CollectionSpec
from infoshare.store import audiences, keyset, read, write
from infoshare.store import objects as store
from infoshare.store.schema import objects as objects_table
from infoshare.timestamps import parse_us

from .test_store import COMPARTMENTS, principals

TYPES = ["indicator", "report", "vulnerability"]
COLLECTION = str(uuid.uuid4())
few_masks = st.sampled_from([0, sectors.mask(["water"]), sectors.mask(["energy"]),
                             sectors.mask(["water", "dams"])])
audience_list = st.builds(
    access.Audience,
    tlp=st.sampled_from(tiers.TLP_LEVELS), all_sectors=st.booleans(), sector_mask=few_masks,
    compartments=st.frozensets(st.sampled_from(COMPARTMENTS)),
    recipient_orgs=st.frozensets(st.sampled_from(["org-a", "org-b"])),
    recipient_principals=st.frozensets(st.sampled_from(["ann", "bob", "cy"])),
)
lenses = st.sampled_from([
    CollectionSpec(id=str(uuid.uuid4()), alias="all", title="", description="", kind="all"),
    CollectionSpec(id=str(uuid.uuid4()), alias="water", title="", description="",
                   kind="sector", sector="water"),
    CollectionSpec(id=str(uuid.uuid4()), alias="ind", title="", description="",
                   kind="types", types=("indicator",)),
    CollectionSpec(id=COLLECTION, alias="sub", title="", description="", kind="submitted"),
])
filter_sets = st.builds(
    lambda versions, types: store.Filters(versions=versions, types=types),
    st.sampled_from([("last",), ("all",), ("first",), ("last", "first")]),
    st.sampled_from([(), ("indicator",), ("report", "vulnerability")]))


def _new(object_id, object_type, stamp, audience, everywhere, submitted) -> store.NewObject:
    raw = json.dumps({"type": object_type, "id": object_id, "modified": stamp}).encode()
    return store.NewObject(id=object_id, type=object_type, spec_version="2.1", version=stamp,
                           version_us=parse_us(stamp), raw=raw, audience=audience,
                           everywhere=everywhere,
                           collection_id=COLLECTION if submitted else None)


lineage = st.tuples(st.sampled_from(TYPES), st.lists(audience_list, min_size=1, max_size=3),
                    st.booleans(), st.integers(0, 9))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lineages=st.lists(lineage, min_size=1, max_size=12),
       principal_list=st.lists(principals, min_size=1, max_size=4),
       spec=lenses, filters=filter_sets, limit=st.integers(1, 5), data=st.data())
def test_merged_pages_equal_the_scan(engine, lineages, principal_list, spec, filters, limit,
                                     data):
    with write(engine) as conn:
        conn.execute(objects_table.delete())
        for object_type, audience_versions, submitted, flag in lineages:
            oid = f"{object_type}--{uuid.uuid4()}"
            stamps = [f"2025-01-0{n + 1}T00:00:00.000Z" for n in range(len(audience_versions))]
            # versions arrive newest first sometimes: the latest is the greatest modified
            order = list(zip(stamps, audience_versions, strict=True))
            if flag % 2:
                order.reverse()
            store.insert(conn, [_new(oid, object_type, s, a, flag == 9, submitted)
                                for s, a in order])
    with read(engine) as conn:
        added = [r.date_added for r in conn.execute(
            objects_table.select().order_by(objects_table.c.date_added))]
    # draws independent of the store (its pks and stamps grow from example to example)
    at = data.draw(st.integers(-1, 100))
    floor = None if at < 0 else added[at * (len(added) - 1) // 100]
    filters = store.Filters(added_after=floor, versions=filters.versions, types=filters.types)
    columns = (objects_table.c.id, objects_table.c.version)
    for principal in principal_list:
        with read(engine) as conn:
            seen = audiences.view(conn, principal).seen
            cut = seen.known * data.draw(st.integers(0, 100)) // 100
            stale = access.Seen(frozenset(p for p in seen.pks if p <= cut), cut)
            scan = _rows(conn, principal, spec, filters, limit, columns, None)
            merged = _rows(conn, principal, spec, filters, limit, columns,
                           keyset.Merge(access.Seen(seen.pks, None)))
            newer = _rows(conn, principal, spec, filters, limit, columns, keyset.Merge(stale))
            # any counts, however wrong: each audience walked alone or in the shared part
            cycle = data.draw(st.lists(st.integers(0, limit + 2), min_size=1, max_size=6))
            counts = {pk: cycle[i % len(cycle)] for i, pk in enumerate(sorted(seen.pks))}
            split = _rows(conn, principal, spec, filters, limit, columns,
                          keyset.Merge(access.Seen(seen.pks, None), counts))
            split_stale = _rows(conn, principal, spec, filters, limit, columns,
                                keyset.Merge(stale, counts))
        assert merged == scan, principal
        assert newer == scan, (principal, cut)
        assert split == scan, (principal, counts)
        assert split_stale == scan, (principal, cut, counts)


def _rows(conn, principal, spec, filters, limit, columns, how):
    return [tuple(r) for r in store.page(conn, principal, spec, filters, None, limit, columns,
                                         how=how)]


def _reader(name: str, rank: int, mask: int = 0, all_sectors: bool = False):
    return access.Principal(pk=1, id=name, name=name, org=name, tier="t", max_rank=rank,
                            all_sectors=all_sectors, sector_mask=mask)


def test_the_plan_merges_for_a_narrow_reader_and_scans_for_an_all_seeing_one(engine):
    """By the stored counts: 1 row in 100 for water, the rest for energy."""
    water = access.Audience(tlp="green", all_sectors=False, sector_mask=sectors.mask(["water"]))
    energy = access.Audience(tlp="green", all_sectors=False,
                             sector_mask=sectors.mask(["energy"]))
    with write(engine) as conn:
        store.insert(conn, [_new(f"indicator--{uuid.uuid4()}", "indicator",
                                 f"2025-01-01T00:00:{i // 100:02d}.{i % 100:03d}Z",
                                 water if i % 100 == 0 else energy, False, False)
                            for i in range(2000)])
    narrow = _reader("w", 1, sectors.mask(["water"]))
    everyone = _reader("all", 4, all_sectors=True)
    with read(engine) as conn:
        assert isinstance(keyset.plan(conn, narrow, 10, by_id=False), keyset.Merge)
        assert keyset.plan(conn, everyone, 10, by_id=False) is None
        assert keyset.plan(conn, narrow, 10, by_id=True) is None
        spec = CollectionSpec(id=str(uuid.uuid4()), alias="all", title="", description="",
                              kind="all")
        rows = store.page(conn, narrow, spec, store.Filters(), None, 100,
                          (objects_table.c.id,))
    assert len(rows) == 20


def test_small_audiences_are_walked_together_and_large_ones_alone(engine):
    """12 bulletins of 360 rows, 10 of them TLP:RED to the reader and a co-recipient of
    its own (the 12th: 55 of 440): a page of 15 after the 7th bulletin's first row walks
    the 11 small audiences in one part of the statement and the large one alone, and holds
    the rows the scan holds."""
    reader = _reader("many", tiers.rank("red"), sectors.mask(["dams"]))
    hidden = access.Audience(tlp="green", all_sectors=False,
                             sector_mask=sectors.mask(["energy"]))
    items = []
    for bulletin in range(12):
        red = access.Audience(tlp="red", recipient_principals=frozenset(
            {"many", f"co-{bulletin}"}))
        for i in range(360 if bulletin < 11 else 440):
            n = len(items)
            every = 36 if bulletin < 11 else 8
            items.append(_new(f"indicator--{uuid.uuid4()}", "indicator",
                              f"2025-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
                              red if i % every == 1 else hidden, False, False))
    with write(engine) as conn:
        stamps = store.insert(conn, items)
    spec = CollectionSpec(id=str(uuid.uuid4()), alias="all", title="", description="",
                          kind="all")
    statements = []

    def log(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", log)
    try:
        with read(engine) as conn:
            how = keyset.plan(conn, reader, 15, by_id=False)
            del statements[:]
            filters = store.Filters(added_after=stamps[6 * 360])
            rows = store.page(conn, reader, spec, filters, None, 15, (objects_table.c.id,))
            scan = store.page(conn, reader, spec, filters, None, 15, (objects_table.c.id,),
                              how=None)
    finally:
        sa.event.remove(engine, "before_cursor_execute", log)
    assert isinstance(how, keyset.Merge) and len(how.seen.pks) == 12
    large = [pk for pk, count in how.counts.items() if count == 55]
    assert len(large) == 1
    (statement,) = [s for s in statements if "UNION ALL" in s]
    # the large audience, the small ones, and on PostgreSQL audiences newer than the view
    assert statement.count("UNION ALL") == (1 if engine.dialect.name == "sqlite" else 2)
    small = ", ".join(str(pk) for pk in sorted(how.seen.pks - set(large)))
    assert f"audience_pk IN ({small})" in statement
    assert rows == scan and len(rows) == 16


ROWS = 60_000


def _fill(conn, dialect: str) -> None:
    """ROWS objects straight in SQL: audiences 100-299 hold 5 rows each among the first
    2000, audiences 1-5 (which the reader may not see) all the rest."""
    numbers = ("generate_series(0, :n - 1) AS g(i)" if dialect == "postgresql" else
               "(WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g "
               "WHERE i + 1 < :n) SELECT i FROM g) AS g")
    conn.execute(sa.text(
        "INSERT INTO objects (id, type, spec_version, version, version_us, date_added,"
        " is_latest, is_first, raw, tlp_rank, all_sectors, sector_mask, has_compartments,"
        " has_recipients, everywhere, audience_pk, origin)"
        " SELECT 'indicator--' || i, 'indicator', '2.1', 'v', i, i + 1, true, true, :raw,"
        " 1, true, 0, false, false, false,"
        " CASE WHEN i < 2000 AND i % 2 = 0 THEN 100 + (i / 2) / 5 ELSE 1 + i % 5 END,"
        f" 'service' FROM {numbers}"), {"n": ROWS, "raw": b"{}"})
    conn.exec_driver_sql("ANALYZE")


def test_a_caught_up_reader_of_small_audiences_does_not_walk_the_store_after_analyze(engine):
    """With the table's statistics (PostgreSQL's autovacuum takes them by itself), the
    part of the merge that walks the small audiences together was planned as a walk of
    date_added testing each row's audience: a reader with nothing new read every row
    after its cursor (the review measured 49 ms at 300k rows on PostgreSQL against
    0.1 ms). It must walk the audience index."""
    with write(engine) as conn:
        _fill(conn, engine.dialect.name)
    small = frozenset(range(100, 300))
    reader = _reader("r", tiers.rank("red"), all_sectors=True)
    # on PostgreSQL, with the part for audiences newer than the process has read too
    known = None if engine.dialect.name == "sqlite" else 299
    how = keyset.Merge(access.Seen(small, known), dict.fromkeys(small, 5))
    with read(engine) as conn:
        caught_up = conn.execute(sa.text(
            "SELECT max(date_added) FROM objects WHERE audience_pk >= 100")).scalar()
        statement = keyset.ordered(reader, how, [], caught_up, 100, (objects_table.c.id,),
                                   True)
        sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(explain + sql))
        assert conn.exec_driver_sql(sql).all() == []
    assert "ix_objects_audience_added" in plan and "ix_objects_date_added" not in plan, plan
