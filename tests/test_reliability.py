"""Faults injected on loopback: slow and hanging webhook receivers with several workers,
killed feed runs, bad settings. Each test is bounded in count and time.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests

from .live import BIN, LiveServer, cli, service_env
from .receiver import Receiver

SECRET = "a-webhook-secret-of-some-length"
TAXII = "application/taxii+json;version=2.1"


def slow_receiver(seconds: float) -> Receiver:
    receiver = Receiver()
    original = receiver._app

    def app(environ, start_response):
        time.sleep(seconds)
        return original(environ, start_response)
    receiver.server.app = app
    return receiver


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    env = service_env(tmp_path_factory.mktemp("reliability"),
                      INFOSHARE_WEBHOOKS_ALLOW_HTTP_HOSTS="127.0.0.1",
                      INFOSHARE_WEBHOOKS_TIMEOUT_SECONDS="3.0",
                      INFOSHARE_WEBHOOKS_RETRY_BASE_SECONDS="30")
    server = LiveServer(env, workers=3)
    server.keys = {
        "analyst": server.add_principal("analyst", "--org", "Ops", "--tier", "trusted",
                                        "--all-sectors", "--role", "publisher")["api_key"],
        "water": server.add_principal("water", "--org", "Water Co", "--tier", "member",
                                      "--sector", "water")["api_key"],
    }
    yield server
    server.stop()


def api(hub, who: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{hub.base}/api/v1/{path}", timeout=30, headers={
        "Authorization": f"Bearer {hub.keys[who]}"}, **kwargs)


def subscribe(hub, name: str, url: str) -> dict:
    response = api(hub, "water", "POST", "subscriptions", json={
        "name": name, "sectors": ["water"], "webhook_url": url, "webhook_secret": SECRET})
    assert response.status_code == 201, response.text
    return response.json()


def publish(hub, n: int) -> None:
    response = api(hub, "analyst", "POST", "bulletins", json={
        "title": f"Reliability {n} {time.monotonic()}", "kind": "cyber", "tlp": "green",
        "sectors": ["water"], "indicators": [{"value": f"198.51.100.{n % 250}"}]})
    assert response.status_code == 201, response.text


def test_each_delivery_arrives_once_with_a_slow_receiver_and_three_workers(hub):
    """16 deliveries of 2.5 s each outlast a lease of 2 x 3 s + 30 s: claimed as a batch,
    the late ones were sent twice."""
    receiver = slow_receiver(2.5)
    sub = subscribe(hub, "slow", receiver.url)
    try:
        for n in range(16):
            publish(hub, n)
        receiver.wait_for(lambda r: len(r.accepted()) >= 16, timeout=120)
        time.sleep(3)  # anything sent twice would have arrived by now
        ids = collections.Counter(r.delivery_id for r in receiver.requests)
        assert len(ids) == 16 and set(ids.values()) == {1}, ids
        listed = [json.loads(line) for line in cli(
            hub.env, "deliveries", "list", "--state", "delivered", "--limit", "200"
        ).stdout.splitlines()]
        attempts = [row["attempts"] for row in listed if row["id"] in ids]
        assert len(attempts) == 16 and set(attempts) == {1}, attempts  # counted truthfully
    finally:
        receiver.stop()
        api(hub, "water", "DELETE", f"subscriptions/{sub['id']}", json={})


def test_a_hanging_receiver_delays_only_its_own_subscription(hub):
    hanging = slow_receiver(30)  # longer than the sender's 3 s timeout
    healthy = Receiver()
    stuck = subscribe(hub, "hanging", hanging.url)
    fine = subscribe(hub, "healthy", healthy.url)
    try:
        lags = []
        for n in range(8):
            started = time.monotonic()
            publish(hub, 100 + n)
            healthy.wait_for(lambda r, k=n: len(r.accepted()) > k, timeout=30)
            lags.append(time.monotonic() - started)
        lags.sort()
        assert lags[len(lags) // 2] < 1.5 and lags[-1] < 5, lags
    finally:
        for receiver in (hanging, healthy):
            receiver.stop()
        for sub in (stuck, fine):
            api(hub, "water", "DELETE", f"subscriptions/{sub['id']}", json={})


def test_a_feed_run_killed_mid_way_is_not_blocked_for_long(tmp_path):
    """SIGKILL a process that holds a feed's lease: another run may start within a
    minute, not after 15."""
    env = service_env(tmp_path / "data")
    config = tmp_path / "feeds.toml"
    slow = tmp_path / "slow.json"
    slow.write_text("[]")
    config.write_text(f'[[feeds]]\nname = "local"\nkind = "stix"\nurl = "{slow}"\n'
                      'interval = 3600\n')
    env["INFOSHARE_CONFIG"] = str(config)
    cli(env, "init")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, time\n"
        "from infoshare.settings import load_settings\n"
        "from infoshare.store.engine import connect_engine\n"
        "from feeds import runner\n"
        "s = load_settings()\n"
        "e = connect_engine(s.database_url)\n"
        "lease = runner.hold_lease(e, 'feed:local')\n"
        "print('held', flush=True)\n"
        "time.sleep(300)\n")], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = cli(env, "feeds", "run", "local", check=False)
        assert busy.returncode != 0 and "another process" in busy.stderr
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline:
            result = cli(env, "feeds", "run", "local", check=False)
            if result.returncode == 0:
                break
            time.sleep(5)
        assert result.returncode == 0, result.stderr
        assert time.monotonic() < deadline
    finally:
        holder.kill()


@pytest.mark.parametrize(("variable", "value"), [
    ("INFOSHARE_WEBHOOKS_TIMEOUT_SECONDS", "nan"),
    ("INFOSHARE_WEBHOOKS_TIMEOUT_SECONDS", "inf"),
    ("INFOSHARE_WEBHOOKS_RETRY_BASE_SECONDS", "nan"),
    ("INFOSHARE_WEBHOOKS_RETRY_BASE_SECONDS", "1e309"),
    ("INFOSHARE_SERVER_HEADER_TIMEOUT", "inf"),
])
def test_non_finite_settings_are_refused(tmp_path, variable, value):
    env = service_env(tmp_path / "data", **{variable: value})
    result = subprocess.run([str(BIN / "infoshare"), "db", "upgrade"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    dotted = variable.removeprefix("INFOSHARE_").lower().replace("_", ".", 1)
    assert dotted in result.stderr and "Traceback" not in result.stderr


# --- the database: outages, concurrent first start, durable commits -----------------------

@pytest.fixture(scope="module")
def own_postgres():
    """A PostgreSQL server of this module's own, so stopping it harms no other test."""
    from .pg import PostgresServer, Unavailable

    try:
        server = PostgresServer()
    except Unavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield server
    server.stop()


def test_a_stopped_database_is_503_with_retry_after_and_recovers(own_postgres, tmp_path):
    env = service_env(tmp_path / "data", own_postgres.new_database())
    live = LiveServer(env, workers=1)
    try:
        key = live.add_principal("reader", "--org", "Ops", "--tier", "partner", "--sector",
                                 "water")["api_key"]
        headers = {"Authorization": f"Bearer {key}",
                   "Accept": "application/taxii+json;version=2.1"}
        page = f"{live.api_root}collections/5d4d1a3c-6b0e-4d55-9a44-0c5f2d8e7a01/objects/"
        assert requests.get(page, headers=headers, timeout=30).status_code == 200
        own_postgres.halt()
        try:
            for url, extra in ((page, headers), (f"{live.base}/api/v1/bulletins",
                                                 {"Authorization": f"Bearer {key}"}),
                               (f"{live.base}/healthz", {})):
                response = requests.get(url, headers=extra, timeout=30)
                assert response.status_code == 503, (url, response.status_code, response.text)
                if "healthz" not in url:
                    assert int(response.headers["Retry-After"]) > 0
        finally:
            own_postgres.resume()
        deadline = time.monotonic() + 30
        while requests.get(page, headers=headers, timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "no recovery without a restart"
            time.sleep(0.5)
        assert "Traceback" not in live.read_log()
    finally:
        live.stop()


def test_two_hosts_starting_at_once_on_a_fresh_database(own_postgres, tmp_path):
    url = own_postgres.new_database()
    first = service_env(tmp_path / "a", url)
    second = service_env(tmp_path / "b", url)
    (tmp_path / "b").mkdir()
    cli(first, "db", "upgrade")  # made the namespace file: the second host gets a copy
    # Fresh again: a new database, both hosts holding the same namespace file.
    url = own_postgres.new_database()
    first["INFOSHARE_DATABASE_URL"] = second["INFOSHARE_DATABASE_URL"] = url
    (tmp_path / "b" / "namespace").write_text((tmp_path / "a" / "namespace").read_text())
    runs = [subprocess.Popen([str(BIN / "infoshare"), "init"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for env in (first, second)]
    results = [(run.wait(120), run.stderr.read()) for run in runs]
    assert all(code == 0 for code, _ in results), results


def test_sqlite_commits_are_synced_after_the_lock_and_before_they_are_acknowledged(
        tmp_path, monkeypatch):
    """SQLite does not sync the log inside the commit (NORMAL): write() syncs it after
    letting go of the writers' lock, so the next writer need not wait for the disk, and
    before it returns, so nothing is acknowledged before it is on disk."""
    import fcntl
    import threading

    import sqlalchemy as sa

    from infoshare.store import walsync
    from infoshare.store.engine import connect_engine, write

    database = tmp_path / "x.db"
    engine = connect_engine(f"sqlite:///{database}")
    with write(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    syncs, real_fsync = [], os.fsync

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        probe = os.open(f"{database}-writers", os.O_RDWR)
        try:  # another writer could take the lock while this sync runs
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free = True
        except BlockingIOError:
            free = False
        finally:
            os.close(probe)
        syncs.append((path, free, threading.get_ident()))
        real_fsync(fd)

    monkeypatch.setattr(walsync.os, "fsync", fsync)
    returned = []
    with write(engine) as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    returned.append(len(syncs))
    assert returned == [1] and syncs[0][0] == f"{database}-wal" and syncs[0][1], syncs
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    # A failed sync is an unavailable store (503), never an acknowledged write.
    monkeypatch.setattr(walsync.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(sa.exc.OperationalError):
        with write(engine) as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    engine.dispose()


def test_the_log_is_copied_into_the_database_after_commits_not_inside_one(tmp_path):
    """SQLite's own checkpoint ran inside the commit that crossed 1000 log pages, while
    that writer held the writers' lock (10-13 ms every hundred publishes); the store
    checkpoints after letting go of it, every CHECKPOINT_EVERY commits of a process."""
    from infoshare.store import walsync
    from infoshare.store.engine import connect_engine, write

    database = tmp_path / "x.db"
    engine = connect_engine(f"sqlite:///{database}")
    blob = os.urandom(100_000)
    sizes = []
    for n in range(walsync.CHECKPOINT_EVERY):
        with write(engine) as conn:
            if n == 0:
                conn.exec_driver_sql("CREATE TABLE t (b BLOB)")
            conn.exec_driver_sql("INSERT INTO t VALUES (?)", (blob,))
        sizes.append(database.stat().st_size)
    # 6 MB went through the log (over SQLite's 1000-page checkpoint) and none reached
    # the database file until the 64th commit's checkpoint.
    assert max(sizes[:-1]) < 100_000 < 6_000_000 < sizes[-1], sizes[-3:]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == len(sizes)
    engine.dispose()


def test_a_database_reached_through_a_symlink_has_its_real_log_synced(tmp_path, monkeypatch):
    """SQLite keeps the log beside the real file: syncing `<link>-wal` found nothing and
    acknowledged commits that were never synced."""
    from infoshare.store import walsync
    from infoshare.store.engine import connect_engine, write

    (tmp_path / "real").mkdir()
    (tmp_path / "link.db").symlink_to(tmp_path / "real" / "x.db")
    engine = connect_engine(f"sqlite:///{tmp_path / 'link.db'}")
    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(walsync.os, "fsync",
                        lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                    real_fsync(fd))[1])
    with write(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    assert str(tmp_path / "real" / "x.db-wal") in synced, synced
    engine.dispose()


def test_after_a_failed_sync_the_process_takes_no_more_writes(tmp_path, monkeypatch):
    """Linux reports a failed write-back once, so a later fsync may succeed over pages it
    dropped: the process refuses writes (503) until restarted, as PostgreSQL does."""
    import sqlalchemy as sa

    from infoshare.store import walsync
    from infoshare.store.engine import connect_engine, write

    engine = connect_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with write(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    real_fsync, fail = os.fsync, [True]

    def fsync(fd):
        if fail.pop() if fail else False:
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(walsync.os, "fsync", fsync)
    for _ in range(2):  # the second sync would succeed: the write is refused all the same
        with pytest.raises(sa.exc.OperationalError):
            with write(engine) as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    engine.dispose()


def test_concurrent_writers_share_log_syncs_and_each_waits_for_one_after_its_commit():
    """Threads of a process share fsyncs, but none returns before an fsync that began
    after its own commit has finished."""
    import threading

    from infoshare.store import walsync

    sync = walsync.WalSync("/nonexistent/x.db")
    events, clock = [], threading.Lock()

    def fake_fsync():
        with clock:
            events.append(("start", time.monotonic_ns()))
        time.sleep(0.005)
        with clock:
            events.append(("end", time.monotonic_ns()))

    sync._fsync = fake_fsync
    marks = {}

    def writer(n):
        committed = time.monotonic_ns()
        sync.synced_after_commit()
        marks[n] = (committed, time.monotonic_ns())

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    syncs = list(zip([t for k, t in events if k == "start"], [t for k, t in events if k == "end"],
                     strict=True))
    assert 1 <= len(syncs) < 16, len(syncs)  # shared
    for committed, returned in marks.values():
        assert any(start >= committed and end <= returned for start, end in syncs)


def test_acknowledged_writes_survive_an_aborted_file_system(tmp_path):
    """The data directory on a loop-mounted ext4; partners POST while the file system is
    aborted under them (as on an I/O error). After recovery every object the service
    acknowledged is in the store."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop file system needs root")
    image, mount = tmp_path / "fs.img", tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "96M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a loop file system here: {mounted.stderr.strip()}")
    acknowledged: list[str] = []
    after_abort: collections.Counter = collections.Counter()
    try:
        live = LiveServer(service_env(mount / "data"), workers=1)
        key = live.add_principal("partner", "--org", "P", "--tier", "partner", "--sector",
                                 "water")["api_key"]
        url = f"{live.api_root}collections/f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a04/objects/"
        headers = {"Authorization": f"Bearer {key}", "Accept": TAXII, "Content-Type": TAXII}
        for n in range(300):
            if n == 120:
                subprocess.run(["mount", "-o", "remount,abort", str(mount)], check=True)
            object_id = f"indicator--{uuid.uuid4()}"
            body = {"objects": [{"type": "indicator", "spec_version": "2.1", "id": object_id,
                                 "created": "2025-01-01T00:00:00.000Z",
                                 "modified": "2025-01-01T00:00:00.000Z",
                                 "pattern": f"[ipv4-addr:value = '10.0.{n // 250}.{n % 250}']",
                                 "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}]}
            try:
                response = requests.post(url, data=json.dumps(body), headers=headers,
                                         timeout=30)
            except requests.RequestException:
                continue
            if n >= 120:
                after_abort[response.status_code] += 1
            if response.status_code == 202 and response.json()["success_count"] == 1:
                acknowledged.append(object_id)
        health = requests.get(f"{live.base}/healthz", timeout=30).status_code
        live.stop()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    assert len(acknowledged) >= 120
    # A read-only store is an outage, said as such: 503, never 500; /healthz sees it.
    assert set(after_abort) <= {202, 503} and after_abort[503] > 0, after_abort
    assert health == 503
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        import sqlite3

        conn = sqlite3.connect(mount / "data" / "infoshare.db")
        try:
            stored = {row[0] for row in conn.execute("SELECT id FROM objects")}
        finally:
            conn.close()
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # if still busy
    lost = [i for i in acknowledged if i not in stored]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged objects were lost"


def test_a_clean_restart_neither_pauses_nor_repeats_deliveries(tmp_path):
    env = service_env(tmp_path / "data", INFOSHARE_WEBHOOKS_ALLOW_HTTP_HOSTS="127.0.0.1",
                      INFOSHARE_WEBHOOKS_TIMEOUT_SECONDS="5.0")
    receiver = slow_receiver(1.5)
    live = LiveServer(env, workers=1)
    try:
        live.keys = {
            "analyst": live.add_principal("analyst", "--org", "Ops", "--tier", "trusted",
                                          "--all-sectors", "--role", "publisher")["api_key"],
            "water": live.add_principal("water", "--org", "Water Co", "--tier", "member",
                                        "--sector", "water")["api_key"]}
        subscribe(live, "restart", receiver.url)
        for n in range(4):
            publish(live, 200 + n)
        receiver.wait_for(lambda r: len(r.requests) >= 1, timeout=30)
        live.stop()  # SIGTERM while a delivery is in flight and three wait
        started = time.monotonic()
        live = LiveServer(env, workers=1)
        receiver.wait_for(lambda r: len(r.accepted()) >= 4, timeout=40)
        assert time.monotonic() - started < 20  # not a lease's 40 s wait
        ids = collections.Counter(r.delivery_id for r in receiver.requests)
        assert len(ids) == 4 and set(ids.values()) == {1}, ids
    finally:
        live.stop()
        receiver.stop()
