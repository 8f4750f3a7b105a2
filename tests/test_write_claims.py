"""PostgreSQL writers check under claims, and hold the store clock only to stamp (issue 12).

The clock row (schema.store_clock) makes commit order equal date_added order, so every
writer of objects queues for it. Holding it from the first check to the commit put twelve
round trips of every publish behind one row: the clock was busy 98.6% of the time at four
clients. A writer now first claims what its checks depend on (the ids it reads and
writes, the notice, the CVEs it names) with transaction-scoped advisory locks, checks and
writes what needs no date_added, and takes the clock only to stamp, insert and route.
These tests drive the real store on a real PostgreSQL (and SQLite, where one write
transaction holds the only write lock and claims cost nothing).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from infoshare import access, drafts, publish
from infoshare.settings import CollectionSpec
from infoshare.store import audiences, claims, read, write
from infoshare.store import objects as object_store
from infoshare.store.schema import notices, objects

from .test_publish_concurrency import Hub, bulletin, version


@pytest.fixture
def pg_hub(postgres, tmp_path):
    hub = Hub(tmp_path, postgres.new_database())
    yield hub
    hub.engine.dispose()


@pytest.fixture
def hub(database_url, tmp_path):
    hub = Hub(tmp_path, database_url)
    yield hub
    hub.engine.dispose()


# What may run while a publish holds the clock: stamping, the rows that carry date_added
# (objects, their child rows, routing rows, deliveries), and the audience counts.
UNDER_THE_CLOCK = ("UPDATE store_clock", "UPDATE audiences", "INSERT INTO objects",
                   "INSERT INTO object_compartments", "INSERT INTO object_recipients",
                   "SELECT subscriptions.", "INSERT INTO subscription_objects",
                   "INSERT INTO deliveries")


def statements_of(engine, action) -> list[str]:
    seen: list[str] = []

    def log(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", log)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", log)
    return seen


def test_a_publish_checks_before_it_takes_the_clock_and_holds_it_only_to_stamp(pg_hub):
    pg_hub.publish(version(0, 0))  # an update: the checks find stored versions
    seen = statements_of(pg_hub.engine, lambda: pg_hub.publish(version(1, 1)))
    clock = next(i for i, s in enumerate(seen) if "store_clock" in s)
    assert seen[clock].startswith("UPDATE store_clock"), "the clock is taken to stamp"
    held = seen[clock:]
    assert [s for s in held if not s.startswith(UNDER_THE_CLOCK)] == []
    assert sum(1 for s in held if s.startswith("INSERT INTO subscription_objects")) == 1
    assert any("pg_advisory_xact_lock" in s for s in seen[:clock])


def assert_waits_for_the_holder(hub, claim, notice, why: str) -> None:
    """While another transaction holds what `claim(conn)` takes, `notice`'s publish waits;
    once it commits, the publish goes through. The holder is let go before the pool is,
    so a regression fails here rather than hangs."""
    holder, pool = hub.engine.connect(), ThreadPoolExecutor(2)
    try:
        tx = holder.begin()
        claim(holder, pool)
        waiting = pool.submit(hub.publish, notice)
        time.sleep(0.5)
        assert not waiting.done(), why
        tx.commit()
        assert waiting.result(timeout=30).stored
    finally:
        holder.close()
        pool.shutdown()


def test_claims_of_different_notices_do_not_wait_for_each_other(pg_hub):
    """A transaction that has claimed one notice's ids and sits before the clock does not
    hold up the publish of another notice; one that claimed the same ids does."""
    first = pg_hub.publish(bulletin("held", "held", ["192.0.2.10"]))

    def claim(holder, pool):
        claims.claim(holder, first.object_ids)
        other = pool.submit(pg_hub.publish, bulletin("other", "other", ["192.0.2.11"]))
        assert other.result(timeout=10).stored, "another notice does not wait"

    assert_waits_for_the_holder(pg_hub, claim, bulletin("held", "again", ["192.0.2.12"]),
                                "a claim of the same ids must wait for the holder")


def test_notices_naming_one_cve_do_not_wait_for_each_other_but_its_minter_does(pg_hub):
    """Many notices name the CVE of the day; those that only rely on it claim it shared.
    An open notice that would mint its public vulnerability changes what they relied on,
    so it waits for them (and they for it)."""
    cve = "CVE-2024-3400"
    held = bulletin("held", "relies on it", ["192.0.2.30"], "green", [cve])
    with read(pg_hub.engine) as conn:
        draft = drafts.prepare(conn, pg_hub.authority, held)

    def claim(holder, pool):
        claims.claim(holder, *drafts.names(draft))
        assert not drafts.moved(holder, draft)
        other = pool.submit(pg_hub.publish, bulletin(
            "other", "relies too", ["192.0.2.31"], "green", [cve]))
        assert other.result(timeout=10).stored, "relying on one CVE is not exclusive"

    assert_waits_for_the_holder(
        pg_hub, claim, bulletin("open", "mints it", ["192.0.2.32"], "clear", [cve], "all"),
        "minting the CVE must wait for those relying on it")


def test_more_keys_than_the_limit_claim_the_whole_store(pg_hub):
    def claim(holder, pool):
        claims.claim(holder, [f"indicator--{i}" for i in range(
            claims.CLAIM_LIMIT + 1)])

    assert_waits_for_the_holder(pg_hub, claim, bulletin("x", "x", ["192.0.2.20"]),
                                "a claim of the whole store keeps every writer out")


def test_a_later_claim_does_not_wait_for_a_name_another_writer_holds(pg_hub):
    """A transaction claims more after its first claim only if the names are free: it may
    hold what their holder waits for, so waiting could deadlock. It fails at once, and
    nothing it wrote stays."""
    taken, free = (f"indicator--00000000-0000-4000-8000-00000000000{i}" for i in (1, 2))
    item = object_store.NewObject(
        id=taken, type="indicator", spec_version="2.1", version="2024-01-01T00:00:00.000Z",
        version_us=1704067200000000, raw=b"{}", audience=access.OPEN)
    holder = pg_hub.engine.connect()
    try:
        tx = holder.begin()
        claims.claim(holder, [taken])
        started = time.monotonic()
        with pytest.raises(claims.Unclaimed):
            with write(pg_hub.engine) as conn:
                claims.claim(conn, [free])
                object_store.insert(conn, [replace(item, id=free)])
                object_store.insert(conn, [item])
        assert time.monotonic() - started < 5
        tx.rollback()
    finally:
        holder.close()
    with read(pg_hub.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(objects).where(
            objects.c.id.in_([taken, free]))).scalar() == 0
    with write(pg_hub.engine) as conn:  # once free, a later claim takes it
        claims.claim(conn, [free])
        object_store.insert(conn, [replace(item, id=free)])
        assert isinstance(object_store.insert(conn, [item])[0], int)


def test_interning_a_new_audience_never_waits_for_another_writer(pg_hub):
    """Audiences are interned before the clock, side by side: a new one is committed at
    once on a connection of its own, so a second writer never waits for the first one's
    commit (which could wait for the clock the second holds), and it stays when the
    first rolls back."""
    new = access.Audience(tlp="amber", all_sectors=False, sector_mask=0b1011,
                          compartments=frozenset({"les"}))
    first, pool = pg_hub.engine.connect(), ThreadPoolExecutor(1)
    try:
        tx = first.begin()
        ours = audiences.intern(first, [new])[new]

        def second():
            with write(pg_hub.engine) as conn:
                return audiences.intern(conn, [new])[new]

        assert pool.submit(second).result(timeout=10) == ours
        tx.rollback()
    finally:
        first.close()
        pool.shutdown()
    with write(pg_hub.engine) as conn:
        assert audiences.intern(conn, [new])[new] == ours


def test_a_batch_holding_the_clock_does_not_deadlock_with_a_publish_of_its_audience(
        pg_hub, monkeypatch):
    """A feed's batch holds the clock from its first notice's stamp to its commit. A
    publish that stored a new audience and queued for the clock, and the batch's next
    notice with that audience, waited for each other until PostgreSQL aborted the
    publish (found by a review; its reproduction, adapted)."""
    first = bulletin("batch-1", "batch first", ["192.0.2.1"])
    second = bulletin("batch-2", "batch second", ["192.0.2.2"], "amber", sectors=("water",))
    single = bulletin("single", "single", ["192.0.2.3"], "amber", sectors=("water",))
    real_current, calls = publish._current, []
    at_second, go = threading.Event(), threading.Event()

    def current(conn, authority, draft):  # the batch, between its first and second notice
        calls.append(draft.notice.source_id)
        if len(calls) == 2:
            at_second.set()
            assert go.wait(30)
        return real_current(conn, authority, draft)

    monkeypatch.setattr(publish, "_current", current)
    with ThreadPoolExecutor(2) as pool:
        batch = pool.submit(publish.publish_notices, pg_hub.engine, pg_hub.authority,
                            pg_hub.settings.tiers, [first, second])
        try:
            assert at_second.wait(30), "the batch stored its first notice: it holds the clock"
            one = pool.submit(pg_hub.publish, single)
            assert _queued_for_the_clock(pg_hub.engine), "the publish waits for the clock"
        finally:
            go.set()
        assert one.result(timeout=30).stored
        assert all(r.stored for r in batch.result(timeout=30))
    assert calls == ["batch-1", "batch-2"], "the batch went through as one transaction"


def _queued_for_the_clock(engine, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    with engine.connect() as watch:
        while time.monotonic() < deadline:
            if watch.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE store_clock%'")).scalar():
                return True
            watch.rollback()  # pg_stat_activity is one snapshot per transaction
            time.sleep(0.01)
    return False


def test_delete_takes_only_versions_of_claimed_ids(pg_hub):
    """The caller claims before it reads what to delete, or two deletes of one version
    could both take it off the audience counts."""
    stored = pg_hub.publish(bulletin("gone", "gone", ["192.0.2.40"]))
    with pytest.raises(claims.Unclaimed), write(pg_hub.engine) as conn:
        pks = conn.execute(sa.select(objects.c.pk).where(
            objects.c.id == stored.object_ids[1])).scalars().all()
        object_store.delete(conn, pks)


def test_a_partner_sending_an_id_another_origin_owns_does_not_wait_for_its_writer(pg_hub):
    """An id's owner never changes, so an insert does not claim ids other origins own:
    waiting for their writer would tell the sender a hidden object is being written."""
    owned = pg_hub.publish(bulletin("hidden", "hidden", ["192.0.2.50"], "amber")).object_ids[1]
    spec = CollectionSpec(id=str(uuid.uuid4()), alias="sub", title="", description="",
                          kind="submitted")
    copy = {"type": "indicator", "spec_version": "2.1", "id": owned,
            "created": "2024-01-01T00:00:00.000Z", "modified": "2030-01-01T00:00:00.000Z",
            "pattern_type": "stix", "pattern": "[ipv4-addr:value = '10.0.0.1']",
            "valid_from": "2024-01-01T00:00:00Z"}
    holder, pool = pg_hub.engine.connect(), ThreadPoolExecutor(1)
    try:
        tx = holder.begin()
        claims.claim(holder, [owned])  # its owner is writing it right now
        sent = pool.submit(publish.ingest, pg_hub.engine, pg_hub.settings,
                           pg_hub.authority.ids, spec, None, [copy], actor="partner:x")
        outcome = sent.result(timeout=10)[0]
        assert not outcome.ok and "another publisher" in outcome.message
        tx.rollback()
    finally:
        holder.close()
        pool.shutdown()


def test_publishes_and_ingests_at_once_end_consistent(hub):
    """Threads update one bulletin, publish others, and submit envelopes both small and
    larger than the claim limit (which claim the whole store), all at once: no deadlock,
    no error, one lineage per notice."""
    hub.publish(version(0, 0))
    errors: list[BaseException] = []

    def updates(thread):
        for round_ in range(1, 4):
            hub.publish(version(thread, round_))

    def others(thread):
        for round_ in range(3):
            hub.publish(version(thread, round_, source_id=f"other-{thread}"))

    def envelope(thread, size):
        spec = CollectionSpec(id=str(uuid.uuid4()), alias="sub", title="", description="",
                              kind="submitted")
        objs = [{"type": "indicator", "spec_version": "2.1",
                 "id": f"indicator--{thread:08x}-0000-4000-8000-{i:012x}",
                 "created": "2024-01-01T00:00:00.000Z",
                 "modified": "2024-01-01T00:00:00.000Z", "pattern_type": "stix",
                 "pattern": f"[ipv4-addr:value = '10.{thread}.{i // 250}.{i % 250}']",
                 "valid_from": "2024-01-01T00:00:00Z"} for i in range(size)]
        publish.ingest(hub.engine, hub.settings, hub.authority.ids, spec, None, objs,
                       actor="feed:test")

    jobs = [lambda t=t: updates(t) for t in range(1, 4)]
    jobs += [lambda t=t: others(t) for t in range(4, 6)]
    jobs += [lambda: envelope(6, 10), lambda: envelope(7, claims.CLAIM_LIMIT + 50)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        for future in [pool.submit(job) for job in jobs]:
            try:
                future.result(timeout=120)
            except BaseException as exc:  # noqa: BLE001 - collected to report them all
                errors.append(exc)
    assert errors == []
    assert_every_lineage(hub.engine)


def assert_every_lineage(engine, notices_stored: int = 3) -> None:
    """Per id, exactly its newest version latest and its oldest first; the service's
    versions strictly growing in storage order; per notice, its row's version that of its
    latest report."""
    with read(engine) as conn:
        stored = list(conn.execute(sa.select(
            objects.c.id, objects.c.origin, objects.c.version_us, objects.c.is_latest,
            objects.c.is_first, objects.c.raw).order_by(objects.c.date_added)))
        rows = list(conn.execute(sa.select(notices)))
    lineages: dict[str, list] = {}
    for row in stored:
        lineages.setdefault(row.id, []).append(row)
    for object_id, versions in lineages.items():
        stamps = [v.version_us for v in versions]
        assert len({v.origin for v in versions}) == 1, f"{object_id}: two owners"
        if versions[0].origin == "service":
            assert stamps == sorted(set(stamps)), f"{object_id}: versions not growing"
        assert [v.is_latest for v in versions] == [s == max(stamps) for s in stamps]
        assert [v.is_first for v in versions] == [s == min(stamps) for s in stamps]
    assert len(rows) == notices_stored
    for row in rows:
        latest = max(lineages[row.report_id], key=lambda v: v.version_us)
        assert row.version == json.loads(latest.raw)["modified"]


def test_batches_publishes_and_deletes_at_once_keep_every_lineage(hub):
    """Feed batches sharing a notice with single publishes, and deletes of a partner's
    versions, all at once: no deadlock, no error, and the flags of every lineage right
    (the deletes repair is_first and is_latest under their claims)."""
    spec = CollectionSpec(id=str(uuid.uuid4()), alias="sub", title="", description="",
                          kind="submitted")
    partner = [f"indicator--0000beef-0000-4000-8000-{i:012x}" for i in range(4)]
    publish.ingest(hub.engine, hub.settings, hub.authority.ids, spec, None, [
        {"type": "indicator", "spec_version": "2.1", "id": object_id,
         "created": "2024-01-01T00:00:00.000Z", "modified": f"2024-0{m}-01T00:00:00.000Z",
         "pattern_type": "stix", "pattern": f"[ipv4-addr:value = '10.9.{m}.{n}']",
         "valid_from": "2024-01-01T00:00:00Z"}
        for n, object_id in enumerate(partner) for m in (1, 2, 3)], actor="partner:p")

    def batch(t):
        for round_ in range(2):
            publish.publish_notices(hub.engine, hub.authority, hub.settings.tiers, [
                version(t, round_), version(t, round_, source_id=f"batch-{t}")])

    def singles(t):
        for round_ in range(3):
            hub.publish(version(t, round_))

    def deletes(object_id):
        for month in (2, 1):  # the middle version, then the first: flags move each time
            with write(hub.engine) as conn:
                claims.claim(conn, [object_id])
                pks = conn.execute(sa.select(objects.c.pk).where(
                    objects.c.id == object_id, objects.c.version == f"2024-0{month}-01"
                    "T00:00:00.000Z")).scalars().all()
                object_store.delete(conn, pks)

    jobs = [lambda: batch(1), lambda: batch(2), lambda: singles(3)]
    jobs += [lambda i=i: deletes(i) for i in partner]
    with ThreadPoolExecutor(len(jobs)) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result(timeout=120)
    assert_every_lineage(hub.engine, notices_stored=3)  # same-1, batch-1, batch-2
    with read(hub.engine) as conn:
        left = conn.execute(sa.select(objects.c.version).where(
            objects.c.id.in_(partner))).scalars().all()
    assert left == ["2024-03-01T00:00:00.000Z"] * len(partner)
