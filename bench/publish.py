"""Benchmark the one write path: convert + sign + store + route.

In process (the default), it prints JSON: bulletins/s for a typical bulletin (20
indicators, 3 sectors) and how much of a publish holds the write lock (the time inside
publish.py's write transactions: `write_lock_share`), signed objects/s for a bulk notice
of 10,000 indicators, and two
baselines measured on the same objects in the same run: signing alone (RFC 8785 + Ed25519)
and building each indicator through the stix2 library. Ratios are what to compare across
machines, not absolute rates.

    python bench/publish.py [--bulletins 200] [--bulk 10000] [--database-url URL]

With --concurrent it starts the real server (`infoshare serve`, --workers 2) on a free
loopback port over a throwaway data directory, and drives it with 1, 4 and 16 HTTP
clients at once, each POSTing typical bulletins to /api/v1/bulletins with a publisher's
API key for --seconds (at most --max-per-client each). Per client count it prints
bulletins/s, p50/p99 latency, the server's CPU per bulletin (with --postgres, also the
PostgreSQL server's), and how busy the machine's cores were during the run (near 1.0 the
run was short of CPU, whatever the lock does; busier than the server, PostgreSQL and
the clients account for, another tenant of the machine took CPU), each worker's share of
the server's CPU (far from even: the connections piled on one worker), and
the ratio of 4 clients' rate to one client's, the peer measured in the same run. What
it measures: how much of a publish holds the store's one write lock (publish.py converts
and signs before taking it; SQLite's writers queue on a file lock, store/engine.py).

    python bench/publish.py --concurrent [--clients 1,4,16] [--seconds 10]
        [--database-url URL | --postgres] [--subscriptions N]

--postgres starts Debian's PostgreSQL the way the tests do (tests/pg.py: durability off,
so its figures are the lock's cost, not the disk's); SQLite syncs every write before answering.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import requests

from infoshare import publish
from infoshare.installation import id_space
from infoshare.notices import IndicatorSpec
from infoshare.schemas import load_bulletin
from infoshare.settings import load_settings
from infoshare.signing.keys import KeyRing
from infoshare.signing.objects import signing_payload
from infoshare.stix import convert
from infoshare.store import migrate
from infoshare.store.engine import connect_engine
from infoshare.tiers import DEFAULT_TIERS, Tiers

sys.path.insert(0, str(Path(__file__).parent))
from taxii_poll import (  # noqa: E402  (bench scripts share their server helpers)
    BIN,
    _children,
    cpu_seconds,
    cpu_ticks,
    service_env,
    serving,
)

TIERS = Tiers(DEFAULT_TIERS)


def typical_bulletin(i: int) -> dict:
    return {
        "title": f"Bench bulletin {i}", "summary": "Benchmark notice.", "kind": "cyber",
        "tlp": "green", "sectors": ["energy", "water", "communications"], "severity": "Severe",
        "indicators": [{"value": f"198.51.{i % 250}.{n}"} for n in range(20)],
        "vulnerabilities": ["CVE-2024-12345"], "mitigations": ["Block the addresses."],
    }


def bulk_notice(count: int):
    notice = load_bulletin({"title": "Bulk list", "kind": "cyber", "tlp": "green",
                            "sectors": "all"}, [])
    specs = tuple(IndicatorSpec("ipv4-addr", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
                  for n in range(count))
    return replace(notice, indicators=specs, source_id="bulk")


class LockTimer:
    """Time spent inside publish.py's write transactions: the store's one write lock,
    which concurrent publishers wait for (issue 12 measured 79% of a publish there)."""

    def __init__(self):
        self.original, self.seconds = publish.write, 0.0

    @contextmanager
    def __call__(self, engine):
        t0 = time.perf_counter()
        try:
            with self.original(engine) as conn:
                yield conn
        finally:
            self.seconds += time.perf_counter() - t0


def bench_bulletins(engine, authority, count: int) -> dict:
    latencies = []
    timer = publish.write = LockTimer()
    try:
        start = time.perf_counter()
        for i in range(count):
            notice = load_bulletin(typical_bulletin(i), [])
            t0 = time.perf_counter()
            publish.publish_notice(engine, authority, TIERS, notice)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
    finally:
        publish.write = timer.original
    return {"bulletins": count, "bulletins_per_s": round(count / elapsed, 1),
            "objects_per_bulletin": len(publish.publish_notice(
                engine, authority, TIERS, load_bulletin(typical_bulletin(0), [])).object_ids),
            "publish_ms_p50": round(statistics.median(latencies) * 1000, 2),
            "write_lock_ms_mean": round(timer.seconds / count * 1000, 2),
            "write_lock_share": round(timer.seconds / sum(latencies), 3)}


def bench_bulk(engine, authority, count: int) -> dict:
    notice = bulk_notice(count)
    start = time.perf_counter()
    result = publish.publish_notice(engine, authority, TIERS, notice)
    elapsed = time.perf_counter() - start
    return {"indicators": count, "objects": result.stored,
            "objects_per_s": round(result.stored / elapsed, 1), "seconds": round(elapsed, 3)}


def bench_sign_only(authority, count: int) -> float:
    """Signing alone (canonicalise + Ed25519) over the same converted objects."""
    objs = convert.convert(bulk_notice(count), convert.Stamp("2026-01-01T00:00:00.000Z", {}),
                           authority.ids)
    start = time.perf_counter()
    for obj in objs:
        authority.signer.sign(signing_payload(obj))
    return len(objs) / (time.perf_counter() - start)


def bench_stix2_build(count: int) -> float:
    """Building indicators through the stix2 library, for comparison."""
    import stix2

    start = time.perf_counter()
    for n in range(count):
        stix2.Indicator(name=f"10.0.0.{n % 255}", pattern=f"[ipv4-addr:value = '10.0.0.{n % 255}']",
                        pattern_type="stix", valid_from="2026-01-01T00:00:00Z",
                        indicator_types=["malicious-activity"])
    return count / (time.perf_counter() - start)


# --- the concurrent case: the real server, many HTTP clients -----------------------------

def log(message: str) -> None:
    print(f"[publish] {message}", file=sys.stderr, flush=True)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest rank: never a value between two real samples."""
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)


def add_publisher(env: dict[str, str]) -> str:
    """A publisher of all sectors, made the way an operator makes one; its API key."""
    import subprocess

    result = subprocess.run(
        [str(BIN / "infoshare"), "principals", "add", "bench-publisher", "--org", "Bench",
         "--tier", "trusted", "--all-sectors", "--role", "publisher"],
        env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)["api_key"]


def add_subscriptions(base: str, key: str, count: int) -> None:
    """`count` subscriptions of the publisher, half of them matching the bulletins' sectors,
    so routing writes rows as it would for a subscribed hub."""
    with requests.Session() as session:
        for n in range(count):
            sector = ("energy", "finance")[n % 2]
            response = session.post(f"{base}/api/v1/subscriptions", timeout=30, json={
                "name": f"bench {n}", "sectors": [sector]},
                headers={"Authorization": f"Bearer {key}"})
            response.raise_for_status()


class Poster:
    """One client: POSTs distinct typical bulletins on a keep-alive session, recording
    each request's latency."""

    def __init__(self, base: str, key: str, first: int):
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.url, self.next = f"{base}/api/v1/bulletins", first
        self.latencies: list[float] = []
        self.error: str | None = None

    def post(self) -> None:
        t0 = time.perf_counter()
        response = self.session.post(self.url, json=typical_bulletin(self.next), timeout=120)
        if response.status_code != 201:
            raise RuntimeError(f"POST bulletin: {response.status_code} {response.text[:300]}")
        self.latencies.append((time.perf_counter() - t0) * 1000)
        self.next += 1

    def run(self, deadline: float, cap: int) -> None:
        """Post until the deadline or `cap` posts; an error stops this client only."""
        self.latencies = []
        try:
            while time.perf_counter() < deadline and len(self.latencies) < cap:
                self.post()
        except Exception as exc:  # reported by drive(), after the others finish
            self.error = str(exc)


def _run_all(posters: list[Poster], deadline: float, cap: int) -> None:
    threads = [threading.Thread(target=p.run, args=(deadline, cap)) for p in posters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [p.error for p in posters if p.error]
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")


def drive(server, key: str, clients: int, seconds: float, cap: int, first: int,
          database_pid: int | None = None) -> dict:
    """`clients` posters at once; each first warms up with two posts (its connection,
    the key check), then all post for `seconds` (at most `cap` each). Besides rate and
    latency: the server's CPU per bulletin, and how busy the machine's cores were (near
    1.0, the run was short of CPU, not held up by the lock: more clients cannot help)."""
    posters = [Poster(server.base, key, first + n * 100_000) for n in range(clients)]
    try:
        _run_all(posters, time.perf_counter() + 60, 2)
        workers = _children(server.process.pid)
        per_worker0 = [cpu_ticks([pid]) for pid in workers]
        cpu0, machine0 = cpu_seconds(server.process.pid), machine_ticks()
        db0 = cpu_seconds(database_pid) if database_pid else 0.0
        started = time.perf_counter()
        _run_all(posters, started + seconds, cap)
        elapsed = time.perf_counter() - started
        db = cpu_seconds(database_pid) - db0 if database_pid else None
        cpu, machine = (cpu_seconds(server.process.pid) - cpu0,
                        [b - a for a, b in zip(machine0, machine_ticks(), strict=True)])
        per_worker = [cpu_ticks([pid]) - t for pid, t in zip(workers, per_worker0, strict=True)]
    finally:
        for poster in posters:
            poster.session.close()
    samples = sorted(ms for poster in posters for ms in poster.latencies)
    return {"clients": clients, "bulletins": len(samples), "seconds": round(elapsed, 2),
            "bulletins_per_s": round(len(samples) / elapsed, 1),
            "p50_ms": percentile(samples, 0.50), "p99_ms": percentile(samples, 0.99),
            "max_ms": round(samples[-1], 1),
            "server_cpu_ms_per_bulletin": round(cpu * 1000 / max(1, len(samples)), 2),
            **({"postgres_cpu_ms_per_bulletin": round(db * 1000 / max(1, len(samples)), 2)}
               if db is not None else {}),
            "machine_busy_share": round(machine[0] / max(1, machine[1]), 3),
            # Each worker's share of the server's CPU: far from even, the connections
            # piled on one worker (balance.py) and the run measured one GIL.
            "worker_cpu_shares": sorted(round(t / max(1, sum(per_worker)), 2)
                                        for t in per_worker)}


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def concurrent(args) -> dict:
    """Serve a throwaway data directory and drive it with each client count in turn."""
    data_dir = Path(tempfile.mkdtemp(prefix="infoshare-bench-publish-"))
    postgres = None
    try:
        url = args.database_url
        if args.postgres:
            postgres = _start_postgres()
            url = postgres.new_database()
        env = {**service_env(data_dir), "INFOSHARE_DATABASE_URL": url}
        log(f"starting the server ({args.workers} workers, {'postgresql' if url else 'sqlite'})")
        with serving(env, args.workers, data_dir, log) as server:
            runs = _drive_each(server, env, url, args, postgres)
        return _concurrent_summary(runs, args, "postgresql" if url else "sqlite")
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def analysed(server, key: str, url: str) -> None:
    """A few bulletins, then ANALYZE: PostgreSQL's autovacuum gathers a new table's
    statistics within a minute of its first rows, and until then the planner takes the
    lookup of a notice's ids (`id IN (...)`, 24 ids) for a tenth of the table and scans
    all of it (4.7 ms under the lock at 10k rows, against 0.1 ms). A running hub has
    them; the benchmark does not wait a minute for them."""
    import sqlalchemy as sa

    poster = Poster(server.base, key, 90_000_000)
    try:
        for _ in range(10):
            poster.post()
    finally:
        poster.session.close()
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def _drive_each(server, env, url: str, args, postgres) -> list[dict]:
    """Each client count in turn, after the publisher, subscriptions and statistics."""
    key = add_publisher(env)
    add_subscriptions(server.base, key, args.subscriptions)
    if url.startswith("postgresql"):
        analysed(server, key, url)
    database_pid = postgres.postmaster_pid() if postgres is not None else None
    runs = []
    for n, clients in enumerate(args.clients):
        log(f"{clients} client(s) for {args.seconds} s")
        runs.append(drive(server, key, clients, args.seconds, args.max_per_client,
                          first=n * 10_000_000, database_pid=database_pid))
    return runs


def _start_postgres():
    """Debian's PostgreSQL in a temporary directory, as tests/pg.py runs it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import PostgresServer

    return PostgresServer()


def _concurrent_summary(runs: list[dict], args, engine: str) -> dict:
    by_clients = {run["clients"]: run for run in runs}
    doc = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0],
                       "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
           "engine": engine, "workers": args.workers, "subscriptions": args.subscriptions,
           "bulletin": "typical (20 indicators, 3 sectors)", "runs": runs}
    if 1 in by_clients and 4 in by_clients:
        doc["ratio_4_over_1"] = round(by_clients[4]["bulletins_per_s"]
                                      / by_clients[1]["bulletins_per_s"], 2)
    if 16 in by_clients:
        doc["p99_ms_at_16"] = by_clients[16]["p99_ms"]
    return doc


def in_process(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="infoshare-bench-") as tmp:
        os.environ["INFOSHARE_DATA_DIR"] = tmp
        os.environ["INFOSHARE_DATABASE_URL"] = args.database_url
        settings = load_settings()
        engine = connect_engine(settings.database_url)
        migrate.upgrade(engine)
        signer = KeyRing(Path(tmp)).signer()
        authority = publish.Authority(signer, id_space(settings))
        print("publishing typical bulletins...", file=sys.stderr)
        bulletins = bench_bulletins(engine, authority, args.bulletins)
        print("publishing the bulk notice...", file=sys.stderr)
        bulk = bench_bulk(engine, authority, args.bulk)
        sign_rate = bench_sign_only(authority, args.bulk)
        stix2_rate = bench_stix2_build(min(args.bulk, 2000))
        engine.dispose()
    return {
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "engine": "postgresql" if args.database_url.startswith("postgresql") else "sqlite",
        "typical_bulletin": bulletins,
        "bulk": bulk,
        "baselines": {"sign_only_objects_per_s": round(sign_rate, 1),
                      "stix2_library_build_per_s": round(stix2_rate, 1)},
        "ratios": {"bulk_over_sign_only": round(bulk["objects_per_s"] / sign_rate, 3),
                   "bulk_over_stix2_build": round(bulk["objects_per_s"] / stix2_rate, 2)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulletins", type=int, default=200)
    parser.add_argument("--bulk", type=int, default=10_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--concurrent", action="store_true",
                        help="the real server and concurrent HTTP clients (see above)")
    parser.add_argument("--postgres", action="store_true",
                        help="with --concurrent: start Debian's PostgreSQL for the run")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-per-client", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subscriptions", type=int, default=0)
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    if not args.clients or min(args.clients) < 1 or args.seconds <= 0 or args.seconds > 300:
        parser.error("--clients must be positive and --seconds within (0, 300]")
    print(json.dumps(concurrent(args) if args.concurrent else in_process(args), indent=2))


if __name__ == "__main__":
    main()
