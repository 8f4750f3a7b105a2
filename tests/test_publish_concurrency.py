"""Publishing off the write lock (issue 12): drafts are converted and signed in a read
transaction and stored only if nothing they were prepared from has moved.

Concurrent updates of one bulletin, from threads on a real engine and from clients of a
real server (2 workers), on SQLite and PostgreSQL, must end with one consistent lineage:
each id's versions' `modified` strictly increasing in storage order, exactly one latest
version per id, the notice row's version equal to its latest report's, the dropped
objects revoked, and a routing row for every stored version. The redo paths are driven
deterministically: a real competing publish lands between a draft's prepare and its
commit (wrapping `drafts.prepare`, which calls the real one).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from infoshare import drafts, publish
from infoshare.installation import id_space
from infoshare.schemas import load_bulletin, subscription_columns
from infoshare.settings import load_settings
from infoshare.signing.keys import KeyRing
from infoshare.store import migrate, read, write
from infoshare.store import notices as notice_store
from infoshare.store import principals as principal_store
from infoshare.store import subscriptions as subscription_store
from infoshare.store.engine import connect_engine
from infoshare.store.schema import objects, subscription_objects

from .live import LiveServer, service_env

ORG = "Ops"


class Hub:
    """A real store with a signing key, and one subscription that takes everything."""

    def __init__(self, data_dir: Path, database_url: str):
        self.settings = load_settings(environ={"INFOSHARE_DATA_DIR": str(data_dir),
                                               "INFOSHARE_DATABASE_URL": database_url})
        self.engine = connect_engine(self.settings.database_url, pool_size=8)
        migrate.upgrade(self.engine)
        self.authority = publish.Authority(KeyRing(data_dir).signer(),
                                           id_space(self.settings))
        with write(self.engine) as conn:
            principal_store.add(conn, self.settings.tiers, name="watcher", org="Watch",
                                tier="trusted", all_sectors=True, log2_n=10)
            owner = principal_store.by_name(conn, "watcher").pk
            subscription_store.create(conn, owner, subscription_columns({"name": "all"}))

    def publish(self, notice):
        return publish.publish_notice(self.engine, self.authority, self.settings.tiers,
                                      notice)


@pytest.fixture
def hub(database_url, tmp_path):
    hub = Hub(tmp_path, database_url)
    yield hub
    hub.engine.dispose()


def bulletin(source_id: str, title: str, addresses, tlp: str = "green", cves=(),
             sectors=("energy", "water")):
    document = {"title": title, "summary": "Concurrency test.", "kind": "cyber",
                "tlp": tlp, "sectors": list(sectors) if sectors != "all" else "all",
                "indicators": [{"value": a} for a in addresses],
                "vulnerabilities": list(cves), "mitigations": ["Block them."]}
    return replace(load_bulletin(document, []), org=ORG, source_id=source_id)


def version(thread: int, round_: int, source_id: str = "same-1"):
    """A distinct content per call: indicators come and go, so updates drop objects."""
    return bulletin(source_id, f"update {thread}.{round_}",
                    ["198.51.100.1", f"192.0.2.{thread}", f"203.0.113.{round_}"])


def assert_one_lineage(engine, source_id: str = "same-1") -> None:
    """The notice's store is consistent whatever order its publishes committed in."""
    with read(engine) as conn:
        row = notice_store.by_source(conn, "bulletin", ORG, source_id)
        stored = list(conn.execute(sa.select(
            objects.c.id, objects.c.version_us, objects.c.date_added, objects.c.is_latest,
            objects.c.raw).where(objects.c.origin == "service", ~objects.c.everywhere)
            .order_by(objects.c.date_added)))
        routed = {r.date_added for r in conn.execute(sa.select(subscription_objects))}
    lineages: dict[str, list] = {}
    for version_row in stored:
        lineages.setdefault(version_row.id, []).append(version_row)
    for object_id, versions in lineages.items():
        stamps = [v.version_us for v in versions]
        assert stamps == sorted(set(stamps)), f"{object_id}: modified not strictly growing"
        assert [v.is_latest for v in versions] == [False] * (len(versions) - 1) + [True]
    latest = {i: json.loads(vs[-1].raw) for i, vs in lineages.items()}
    report = latest[row.report_id]
    assert row.version == report["modified"]
    assert row.title == report["name"]
    assert set(row.object_ids) <= set(latest)
    for object_id, obj in latest.items():
        assert bool(obj.get("revoked")) == (object_id not in row.object_ids), object_id
    assert routed == {v.date_added for v in stored}, "a stored version was not routed"


def test_concurrent_updates_of_one_bulletin_keep_one_lineage(hub):
    hub.publish(version(0, 0))
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda t: [hub.publish(version(t, r)) for r in range(1, 4)],
                                range(1, 7)))
    assert all(p.stored for ps in results for p in ps)
    assert_one_lineage(hub.engine)


def test_a_draft_whose_notice_moved_is_prepared_again(hub, monkeypatch):
    """A competing update commits between this publish's prepare and its lock: the stale
    draft is not stored, a new one is, after the competitor's versions."""
    hub.publish(version(0, 0))
    real_prepare = drafts.prepare
    competing = threading.local()

    def prepare_then_compete(conn, authority, notice):
        draft = real_prepare(conn, authority, notice)
        if not getattr(competing, "done", False):
            competing.done = True  # the competitor's own prepare runs unhindered
            hub.publish(version(9, 9))
        return draft

    monkeypatch.setattr(drafts, "prepare", prepare_then_compete)
    result = hub.publish(version(1, 1))
    assert result.attempts == 2
    assert_one_lineage(hub.engine)
    with read(hub.engine) as conn:
        assert notice_store.by_source(conn, "bulletin", ORG, "same-1").title == "update 1.1"


def test_when_drafts_keep_moving_the_last_resort_prepares_under_the_lock(hub, monkeypatch):
    hub.publish(version(0, 0))
    real_prepare = drafts.prepare
    inside = threading.local()
    competitors = iter(range(1, publish.REDO_LIMIT + 1))

    def prepare_then_compete(conn, authority, notice):
        draft = real_prepare(conn, authority, notice)
        if not getattr(inside, "yes", False):
            round_ = next(competitors, None)
            if round_ is not None:  # the last-resort prepare holds the lock: no competitor
                inside.yes = True
                try:
                    hub.publish(version(8, round_))
                finally:
                    inside.yes = False
        return draft

    monkeypatch.setattr(drafts, "prepare", prepare_then_compete)
    result = hub.publish(version(1, 1))
    assert result.attempts == publish.REDO_LIMIT + 1
    assert_one_lineage(hub.engine)


def test_a_cve_claimed_meanwhile_is_referenced_not_minted_again(hub, monkeypatch):
    """Two open notices name one CVE; the other claims it while this one is prepared, so
    this one's draft (which minted its own vulnerability) is prepared again to share it."""
    real_prepare = drafts.prepare
    first = threading.local()
    cve = "CVE-2024-3400"

    def prepare_then_compete(conn, authority, notice):
        draft = real_prepare(conn, authority, notice)
        if not getattr(first, "done", False):
            first.done = True
            hub.publish(bulletin("other", "claims it", ["192.0.2.1"], "clear", [cve], "all"))
        return draft

    monkeypatch.setattr(drafts, "prepare", prepare_then_compete)
    result = hub.publish(bulletin("mine", "shares it", ["192.0.2.2"], "clear", [cve], "all"))
    assert result.attempts == 2
    with read(hub.engine) as conn:
        vulnerabilities = conn.execute(sa.select(objects.c.id).where(
            objects.c.type == "vulnerability")).scalars().all()
    assert len(vulnerabilities) == 1
    assert vulnerabilities[0] not in result.object_ids  # referenced, not one of its own


def test_a_batch_with_one_notice_twice_stores_both_in_order(hub):
    """publish_notices prepares a batch together; the second copy of a notice was prepared
    before the first was stored, so it is prepared again under the lock."""
    results = publish.publish_notices(hub.engine, hub.authority, hub.settings.tiers,
                                      [version(1, 1), version(2, 2)])
    assert [r.created for r in results] == [True, False]
    assert results[1].stored
    assert_one_lineage(hub.engine)
    with read(hub.engine) as conn:
        assert notice_store.by_source(conn, "bulletin", ORG, "same-1").title == "update 2.2"


def test_clients_of_a_real_server_updating_one_bulletin(database_url, tmp_path):
    """8 clients of a 2-worker server POST the same source_id at once, 3 times each:
    exactly one creates it, every other POST updates it, and the lineage is whole."""
    server = LiveServer(service_env(tmp_path, database_url), workers=2)
    try:
        key = server.add_principal("pub", "--org", ORG, "--tier", "trusted",
                                   "--all-sectors", "--role", "publisher")["api_key"]
        requests.post(f"{server.base}/api/v1/subscriptions", json={"name": "all"},
                      headers={"Authorization": f"Bearer {key}"}, timeout=30
                      ).raise_for_status()

        def client(t: int) -> list[int]:
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {key}"
                codes = []
                for r in range(3):
                    document = {"title": f"update {t}.{r}", "kind": "cyber", "tlp": "green",
                                "sectors": ["energy"], "source_id": "same-1",
                                "indicators": [{"value": "198.51.100.1"},
                                               {"value": f"192.0.2.{t}"}]}
                    response = session.post(f"{server.base}/api/v1/bulletins",
                                            json=document, timeout=60)
                    assert response.status_code in (200, 201), response.text
                    codes.append(response.status_code)
                return codes

        with ThreadPoolExecutor(8) as pool:
            codes = [c for cs in pool.map(client, range(8)) for c in cs]
    finally:
        server.stop()
    assert sorted(codes) == [200] * 23 + [201]
    engine = connect_engine(database_url)
    try:
        assert_one_lineage(engine)
    finally:
        engine.dispose()


def test_a_process_publishes_at_most_two_at_once_and_a_batch_may_fall_back_inside_its_turn():
    import threading
    import time

    from infoshare.turns import Turns

    turns, inside, most, lock = Turns(2), [0], [0], threading.Lock()

    @turns
    def publish(n):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.01)
        with lock:
            inside[0] -= 1
        if n == 3:
            raise ValueError("a bad notice gives its turn back too")
        return n

    @turns
    def batch():  # falls back to one publish per notice, inside its own turn
        return [publish(n) for n in (10, 11)]

    results, errors = [], []

    def run(n):
        try:
            results.append(batch() if n == 0 else publish(n))
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert most[0] == 2 and len(errors) == 1 and len(results) == 11
    assert [10, 11] in results


def test_two_batches_at_once_each_fall_back_inside_their_own_turn():
    """Two feeds' batches hold both turns and each publishes inside it: without
    re-entry each would wait for a turn the other holds, for ever."""
    import threading

    from infoshare.turns import Turns

    turns = Turns(2, wait_s=5)
    started = threading.Barrier(2)

    @turns
    def publish(n):
        return n

    @turns
    def batch(n):
        started.wait(5)  # both turns are held from here on
        return [publish(n), publish(n + 1)]

    results = []
    threads = [threading.Thread(target=lambda n=n: results.append(batch(n)))
               for n in (0, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [[0, 1], [10, 11]]


def test_a_publisher_that_gets_no_turn_in_time_is_told_the_service_is_busy():
    import threading

    import sqlalchemy as sa

    from infoshare import publish
    from infoshare.turns import Busy, Turns

    turns, holding, release = Turns(1, wait_s=0.2), threading.Event(), threading.Event()

    @turns
    def slow():
        holding.set()
        release.wait(5)

    thread = threading.Thread(target=slow)
    thread.start()
    holding.wait(5)
    try:
        with pytest.raises(Busy) as caught:
            turns(lambda: None)()
        assert isinstance(caught.value, sa.exc.OperationalError)  # answered 503
    finally:
        release.set()
        thread.join(5)
    # The real entries of the write path take turns.
    for entry in (publish.publish_notice, publish.publish_notices, publish.ingest):
        assert entry.__wrapped__ is not entry
        assert entry.__code__.co_name == "in_turn"


def test_a_turn_that_ends_goes_to_the_longest_waiter_not_to_a_newcomer():
    """At 16 publishers most wait for a turn; a newcomer that took the turn a waiter was
    woken for (a semaphore's barging) made the wait a lottery and p99 its loser."""
    from infoshare.turns import Turns

    turns, order = Turns(1), []
    turns.enter()
    waiters = []
    for n in range(3):
        def wait(n=n):
            turns.enter()
            order.append(n)
            turns.leave()
        waiters.append(threading.Thread(target=wait))
        waiters[-1].start()
        deadline = time.monotonic() + 5
        while turns.waiting() < n + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    turns.leave()
    newcomer_got_it = turns.enter(timeout=0)  # arrives just as the turn ends
    if newcomer_got_it:
        turns.leave()
    for thread in waiters:
        thread.join(5)
    assert not newcomer_got_it
    assert order == [0, 1, 2]
