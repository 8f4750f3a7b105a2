"""Poll benchmark: how fast a TAXII client can drain the all-hazards collection.

For each size N this builds a throwaway SQLite store (or, with --postgres, a database on
Debian's PostgreSQL) holding N signed-size indicators, starts the real server (`infoshare
serve`) on a free loopback port, and measures a full keyset pass, first-page latency and
deep-page latency with a keep-alive client. With --pollers P, P clients then drain the
collection at once while the server's memory is sampled: summed VmHWM, peak summed RSS
and peak summed PSS of its process tree (and of PostgreSQL's). The figures go to stdout
as one JSON document; progress goes to stderr.

    .venv/bin/python bench/taxii_poll.py --sizes 10000,100000 --repeat 30
    .venv/bin/python bench/taxii_poll.py --sizes 100000 --workers 2 --pollers 64 [--postgres]
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import math
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from infoshare import access, sectors, tiers, timestamps
from infoshare.settings import load_settings
from infoshare.store import migrate
from infoshare.store import objects as object_store
from infoshare.store import principals as principal_store
from infoshare.store.engine import connect_engine, write

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
COLLECTION = "all-hazards"
ACCEPT = "application/taxii+json;version=2.1"
OBJECT_BYTES = 1200
BENCH_LABEL = "taxii-poll-benchmark"  # marks the loaded objects apart from the service's
BATCH = 5000
WATER_EVERY = 10  # one object in ten is for the water sector only
SIGNATURE_EXTENSION = "extension-definition--3c9b0f2e-8d1a-4e57-b6a4-2f9d7c1e5a10"
TARGETS = {"poll_objects_per_s_at_100k": 50000, "deep_p50_at_1M_over_first_p50_at_10k": 1.5}
_ID_BASE = 0x3A7F_0000_0000  # where the ordered ids start; room for 2**47 objects after it
RANDOM_IDS = False  # set from --random-ids
_NEXT = re.compile(rb'^\{"more":(true|false)(?:,"next":"([^"]*)")?')


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays one parseable JSON document."""
    print(f"[taxii_poll] {message}", file=sys.stderr, flush=True)


# --- data --------------------------------------------------------------------------------

def _jws(rng: random.Random) -> str:
    """A detached compact JWS of realistic length (~124 chars): header..signature."""
    header = base64.urlsafe_b64encode(b'{"alg":"EdDSA","kid":"infoshare-2024"}')
    signature = base64.urlsafe_b64encode(rng.randbytes(64))
    return (header.rstrip(b"=") + b".." + signature.rstrip(b"=")).decode()


def _object_uuid(i: int, rng: random.Random) -> uuid.UUID:
    """A valid UUIDv4 whose top 48 bits count up with i.

    Fully random ids make every insert touch a random leaf of the (id, version_us) index;
    past ~64 MiB of index (SQLite's cache here) the load drops from ~8k to ~1k objects/s
    and 1M takes a quarter of an hour. Ordered ids keep the load to minutes; reads, which
    go by date_added, do not care. --random-ids measures the realistic ingest instead.
    """
    if RANDOM_IDS:
        return uuid.UUID(int=rng.getrandbits(128), version=4)
    return uuid.UUID(int=(_ID_BASE + i) << 80 | rng.getrandbits(80), version=4)


def _indicator(i: int, rng: random.Random, base_us: int) -> dict:
    """One indicator shaped like what the service publishes, signature extension included."""
    stamp = timestamps.format_stix(base_us + i * 1000)
    octets = "{}.{}.{}.{}".format(*rng.randbytes(4))
    return {
        "type": "indicator", "spec_version": "2.1",
        "id": f"indicator--{_object_uuid(i, rng)}",
        "created": stamp, "modified": stamp, "valid_from": stamp,
        "name": f"Malicious infrastructure {i}",
        "description": "",
        "indicator_types": ["malicious-activity"],
        "pattern": f"[ipv4-addr:value = '{octets}'] OR [domain-name:value = 'c2-{i}.example']",
        "pattern_type": "stix",
        "labels": ["infoshare", BENCH_LABEL, "critical-infrastructure"],
        "object_marking_refs": [tiers.TLP2_MARKING_IDS["green"]],
        "extensions": {SIGNATURE_EXTENSION: {
            "extension_type": "property-extension",
            "signature": {"alg": "EdDSA", "kid": "infoshare-2024", "jws": _jws(rng)},
        }},
    }


_FILLER = ("Observed in campaigns against operational technology of water and energy "
           "utilities; block at the perimeter and review historical logs for contact. ")


_DESCRIPTION = _FILLER * (OBJECT_BYTES // len(_FILLER) + 1)
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _raw(obj: dict) -> bytes:
    """Compact JSON padded through the description to about OBJECT_BYTES.

    The padding is sized from the empty object's length (indicator 0 with its id and stamps
    at typical width), so one encode per object suffices; sizes vary by a few bytes.
    """
    obj["description"] = _DESCRIPTION[:_padding()]
    return _ENCODE(obj).encode()


@functools.cache
def _padding() -> int:
    """Description length that brings a typical (5-digit index) indicator to OBJECT_BYTES."""
    sample = _indicator(54321, random.Random(0), timestamps.now_us())
    return max(0, OBJECT_BYTES - len(_ENCODE(sample)))


WATER_ONLY = access.Audience(tlp="green", all_sectors=False,
                             sector_mask=sectors.mask(["water"]))
EVERYONE = access.Audience(tlp="green", all_sectors=True)


def _new_object(i: int, rng: random.Random, base_us: int) -> object_store.NewObject:
    """The store row for indicator i; every tenth is water-only so the predicate does work."""
    obj = _indicator(i, rng, base_us)
    raw = _raw(obj)
    version_us = base_us + i * 1000
    return object_store.NewObject(
        id=obj["id"], type="indicator", spec_version="2.1", version=obj["modified"],
        version_us=version_us, raw=raw,
        audience=WATER_ONLY if i % WATER_EVERY == 0 else EVERYONE)


def load(engine, n: int) -> dict:
    """Insert n objects through the store API, one write transaction per batch."""
    rng = random.Random(n)
    base_us = timestamps.now_us() - n * 1000 - 86_400_000_000
    started, raw_bytes = time.perf_counter(), 0
    for start in range(0, n, BATCH):
        batch = [_new_object(i, rng, base_us) for i in range(start, min(n, start + BATCH))]
        raw_bytes += sum(len(item.raw) for item in batch)
        with write(engine) as conn:
            added = object_store.insert(conn, batch)
        if not all(isinstance(a, int) for a in added):
            raise RuntimeError("a generated object collided with a stored one")
        if (start // BATCH) % 20 == 19:
            log(f"  loaded {start + len(batch)}/{n}")
    seconds = time.perf_counter() - started
    return {"load_seconds": round(seconds, 2), "load_objects_per_s": round(n / seconds),
            "mean_object_bytes": round(raw_bytes / n)}


def add_principal(engine, env: dict[str, str]) -> str:
    """A member-tier principal holding all sectors; returns its API key."""
    tier_map = load_settings(environ=env).tiers
    with write(engine) as conn:
        _, key = principal_store.add(conn, tier_map, name="bench", org="bench org",
                                     tier="member", all_sectors=True,
                                     password="bench-password-0123", log2_n=10)
    return key


# --- server ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def service_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment minus any INFOSHARE_ settings, pointed at data_dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFOSHARE_")}
    env.update(INFOSHARE_DATA_DIR=str(data_dir), INFOSHARE_DATABASE_URL="",
               INFOSHARE_AUTH_SCRYPT_LOG2_N="10")
    return env


@dataclass
class Server:
    process: subprocess.Popen
    base: str
    log_path: Path


def start_server(env: dict[str, str], workers: int, data_dir: Path) -> Server:
    """Start `infoshare serve` and wait until /healthz answers 200."""
    port = free_port()
    log_path = data_dir / "server.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [str(BIN / "infoshare"), "serve", "--host", HOST, "--port", str(port),
             "--workers", str(workers)], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(process, f"http://{HOST}:{port}", log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(server.base + "/healthz", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"server did not become healthy:\n{log_path.read_text()[-3000:]}")


@contextmanager
def serving(env: dict[str, str], workers: int, data_dir: Path,
            say: Callable[[str], None] = log) -> Iterator[Server]:
    """A started server for the block; if the block fails, the tail of the server's log
    is printed first (what the benchmark cannot say); the server is stopped after."""
    server = start_server(env, workers, data_dir)
    try:
        yield server
    except Exception:
        if server.log_path.exists():
            say("server log tail:\n" + server.log_path.read_text()[-3000:])
        raise
    finally:
        stop_server(server)


def stop_server(server: Server) -> None:
    """Terminate (gunicorn shuts workers down gracefully), then kill if it lingers."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


def _children(pid: int) -> list[int]:
    """Direct children of pid, from /proc (no psutil dependency)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def peak_rss_mib(root_pid: int) -> float:
    """Sum of VmHWM over the server's process tree (master and workers)."""
    return round(sum(_status_kib(pid, "VmHWM:") for pid in _tree(root_pid)) / 1024, 1)


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of these processes, in clock ticks (/proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            continue
    return total


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process tree (a server: master and workers) so far;
    children that exited are not counted: a server's workers live as long as the bench."""
    return cpu_ticks(_tree(root_pid)) / os.sysconf("SC_CLK_TCK")


def _tree(root_pid: int) -> list[int]:
    pids, found = [root_pid], []
    while pids:
        pid = pids.pop()
        found.append(pid)
        pids += _children(pid)
    return found


def _status_kib(pid: int, field: str, name: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class MemorySampler:
    """Peaks, sampled every 0.2 s, of a process tree's summed RSS and summed PSS. RSS counts
    a page shared by the forked workers once per process; PSS divides it among them, so
    its sum is what the tree really holds (what a cgroup limit sees, about)."""

    def __init__(self, root_pids: list[int]):
        import threading

        self.roots, self.peak_rss, self.peak_pss = root_pids, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            pids = [p for root in self.roots for p in _tree(root)]
            self.peak_rss = max(self.peak_rss, sum(_status_kib(p, "VmRSS:") for p in pids))
            self.peak_pss = max(self.peak_pss,
                                sum(_status_kib(p, "Pss:", "smaps_rollup") for p in pids))

    def figures(self, prefix: str) -> dict:
        return {f"{prefix}_peak_rss_sum_mib": round(self.peak_rss / 1024, 1),
                f"{prefix}_peak_pss_mib": round(self.peak_pss / 1024, 1)}


# --- measuring ---------------------------------------------------------------------------

def percentiles(samples_ms: list[float]) -> dict:
    """Nearest-rank p50/p95, so a small --repeat never interpolates past real samples."""
    ordered = sorted(samples_ms)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)

    return {"p50": rank(0.50), "p95": rank(0.95), "min": round(ordered[0], 2),
            "max": round(ordered[-1], 2), "samples": len(ordered)}


class Client:
    """A keep-alive TAXII client for one collection's objects endpoint."""

    def __init__(self, base: str, api_key: str, limit: int):
        self.session = requests.Session()
        self.session.headers.update({"Accept": ACCEPT, "Authorization": f"Bearer {api_key}"})
        self.url = f"{base}/taxii2/infoshare/collections/{COLLECTION}/objects/"
        self.limit = limit

    def get(self, next_token: str | None = None) -> bytes:
        params = {"limit": str(self.limit)}
        if next_token:
            params["next"] = next_token
        response = self.session.get(self.url, params=params, timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"GET {response.url}: {response.status_code} "
                               f"{response.text[:500]}")
        return response.content

    def close(self) -> None:
        self.session.close()


def warm_up(client: Client, requests_: int = 5) -> float:
    """Pay the one-off costs (API key hash check, lazy imports, cold page cache) outside the
    timed pass; returns the first, cold request's time in ms for the record."""
    t0 = time.perf_counter()
    client.get()
    cold_ms = (time.perf_counter() - t0) * 1000
    for _ in range(requests_ - 1):
        client.get()
    return round(cold_ms, 2)


def full_pass(client: Client, n: int) -> dict:
    """Drain the collection as a real client would (json.loads every page), check it,
    and keep the cursor of the page that starts near 90% of n for the deep-page test.

    Each page also carries the definitions its objects reference (a marking, again on
    every page), so the check is on the benchmark's indicators: exactly n of them, and
    none served twice.
    """
    seen: set[str] = set()
    deep_cursor, token, pages, served, ours, parse_s = None, None, 0, 0, 0, 0.0
    started = time.perf_counter()
    while True:
        if deep_cursor is None and token and ours >= 0.9 * n:
            deep_cursor = token
        body = client.get(token)
        t0 = time.perf_counter()
        page = json.loads(body)
        parse_s += time.perf_counter() - t0
        pages += 1
        objs = page.get("objects", ())
        served += len(objs)
        mine = [obj["id"] for obj in objs if BENCH_LABEL in obj.get("labels", ())]
        ours += len(mine)
        seen.update(mine)
        if not page.get("more"):
            break
        token = page["next"]
    seconds = time.perf_counter() - started
    if ours != n or len(seen) != ours:
        raise RuntimeError(f"full pass served {ours} benchmark objects (expected {n}), "
                           f"{len(seen)} distinct, {served} objects in all")
    return {"pages": pages, "service_objects": served - n, "poll_seconds": round(seconds, 3),
            "poll_objects_per_s": round(served / seconds),
            "client_parse_seconds": round(parse_s, 3), "deep_cursor": deep_cursor}


def transfer_pass(client: Client, total: int) -> dict:
    """The same pass without json.loads: only the page head is read, for `next`."""
    token, pages = None, 0
    started = time.perf_counter()
    while True:
        body = client.get(token)
        pages += 1
        match = _NEXT.match(body[:400])
        if not match or match.group(1) == b"false":
            break
        token = match.group(2).decode()
    seconds = time.perf_counter() - started
    return {"transfer_seconds": round(seconds, 3), "transfer_objects_per_s": round(total / seconds)}


def concurrent_pollers(server: Server, api_key: str, n: int, args) -> dict:
    """`args.pollers` clients, each draining the whole collection at once: what the
    server's memory and rate do when many ISACs poll together."""
    from concurrent.futures import ThreadPoolExecutor

    clients = [Client(server.base, api_key, args.limit) for _ in range(args.pollers)]
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(args.pollers) as pool:
            list(pool.map(lambda c: transfer_pass(c, n), clients))
    finally:
        for client in clients:
            client.close()
    seconds = time.perf_counter() - started
    return {"pollers": args.pollers, "seconds": round(seconds, 3),
            "objects_per_s_all": round(n * args.pollers / seconds)}


def latency(client: Client, token: str | None, repeat: int) -> dict:
    """p50/p95 of one page fetched `repeat` times (after one warm-up), body included."""
    client.get(token)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        client.get(token)
        samples.append((time.perf_counter() - t0) * 1000)
    return percentiles(samples)


def _with_pollers(server: Server, api_key: str, n: int, args) -> dict:
    """Concurrent pollers' figures, with the server's (and PostgreSQL's) memory."""
    log(f"N={n}: {args.pollers} concurrent pollers, each a whole pass")
    database = [args.postgres.postmaster_pid()] if args.postgres else []
    with MemorySampler([server.process.pid]) as ours, MemorySampler(database) as pg:
        result = {"concurrent": concurrent_pollers(server, api_key, n, args)}
    result["server_peak_rss_mib_with_pollers"] = peak_rss_mib(server.process.pid)
    result.update(ours.figures("server_with_pollers"))
    if args.postgres:
        result.update(pg.figures("postgresql_with_pollers"))
    return result


def measure(server: Server, api_key: str, n: int, args) -> dict:
    """All the client-side figures for one running server."""
    client = Client(server.base, api_key, args.limit)
    try:
        result = {"cold_first_request_ms": warm_up(client)}
        log("  full pass (json.loads per page)")
        result.update(full_pass(client, n))
        deep_cursor = result.pop("deep_cursor")
        log(f"  {result['poll_objects_per_s']} objects/s; transfer-only pass")
        result.update(transfer_pass(client, n + result["service_objects"]))
        log(f"  first-page latency x{args.repeat}")
        result["first_page_ms"] = latency(client, None, args.repeat)
        log(f"  deep-page latency x{args.repeat}")
        result["deep_page_ms"] = latency(client, deep_cursor, args.repeat)
        result["deep_over_first_p50"] = round(
            result["deep_page_ms"]["p50"] / result["first_page_ms"]["p50"], 3)
    finally:
        client.close()
    return result


# --- one size ----------------------------------------------------------------------------

def run_size(n: int, args) -> dict:
    """Build a fresh store of n objects, serve it, measure; always clean up."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"infoshare-bench-{n}-"))
    env = service_env(data_dir)
    url = args.postgres.new_database() if args.postgres else ""
    env["INFOSHARE_DATABASE_URL"] = url
    engine = None
    try:
        engine = connect_engine(url or f"sqlite:///{data_dir / 'infoshare.db'}")
        migrate.upgrade(engine)
        log(f"N={n}: loading")
        result = {"objects": n, **load(engine, n)}
        api_key = add_principal(engine, env)
        engine.dispose()
        engine = None
        if not url:
            result["db_mib"] = round(sum(p.stat().st_size
                                         for p in data_dir.glob("infoshare.db*")) / 2**20, 1)
        log(f"N={n}: {result['load_objects_per_s']} objects/s loaded; starting server")
        with serving(env, args.workers, data_dir) as server:
            result.update(measure(server, api_key, n, args))
            result["server_peak_rss_mib"] = peak_rss_mib(server.process.pid)
            if args.pollers:
                result.update(_with_pollers(server, api_key, n, args))
        return result
    finally:
        if engine is not None:
            engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


def summary(results: list[dict], args) -> dict:
    """The output document, with the headline ratio when both 10k and 1M were run."""
    doc = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"limit": args.limit, "repeat": args.repeat, "workers": args.workers,
                     "database": "postgresql" if args.postgres else "sqlite"},
        "results": results,
        "targets": TARGETS,
    }
    by_size = {r["objects"]: r for r in results}
    if 10_000 in by_size and 1_000_000 in by_size:
        doc["ratio_deep_1M_vs_first_10k"] = round(
            by_size[1_000_000]["deep_page_ms"]["p50"] / by_size[10_000]["first_page_ms"]["p50"],
            3)
    return doc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="comma-separated collection sizes (e.g. 10000,100000,1000000)")
    parser.add_argument("--limit", type=int, default=1000, help="page size requested")
    parser.add_argument("--postgres", action="store_true",
                        help="serve from Debian's PostgreSQL (started as tests/pg.py does)")
    parser.add_argument("--repeat", type=int, default=30, help="latency samples per page")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument("--pollers", type=int, default=0,
                        help="then this many concurrent clients each poll everything; "
                             "reports the server's peak RSS with them")
    parser.add_argument("--random-ids", action="store_true",
                        help="fully random UUIDv4 ids (realistic, but 1M loads ~8x slower)")
    parser.add_argument("--narrow", default="",
                        help="comma-separated sizes for the narrow-reader case "
                             "(bench/narrow_readers.py), e.g. 1000000; then only that runs")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.narrow = [int(s) for s in args.narrow.split(",") if s.strip()]
    if not args.sizes or min(args.sizes) < 1 or args.repeat < 1 or args.limit < 1:
        parser.error("sizes, --repeat and --limit must be positive")
    return args


def _start_postgres():
    """Debian's PostgreSQL in a temporary directory, as tests/pg.py runs it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import PostgresServer

    return PostgresServer()


def main(argv: list[str] | None = None) -> int:
    global RANDOM_IDS
    args = parse_args(argv)
    RANDOM_IDS = args.random_ids
    if args.narrow:
        import narrow_readers
        doc = summary([], args)
        doc["narrow"] = [narrow_readers.run(n, args) for n in args.narrow]
    else:
        args.postgres = _start_postgres() if args.postgres else None
        try:
            doc = summary([run_size(n, args) for n in args.sizes], args)
        finally:
            if args.postgres:
                args.postgres.stop()
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
