"""Readers while partners POST large envelopes: the page latency a reader sees.

Starts the real server (`infoshare serve`, 2 workers, SQLite) twice on the same data: once
storing every POST before answering it (`taxii.background_bytes` above any body: how it
was before) and once as configured by default (bodies over 1 MiB answered `pending` and
stored in the background). Each time, reader threads poll the first page of a collection
(each at most every --interval seconds, as pollers do) for a quiet baseline, then while 4
partners each POST one envelope of just under 10 MiB of indicators, until every status is
complete. JSON to stdout (latency percentiles per phase,
time until all stored, objects/s, the server's peak RSS), progress to stderr.

    .venv/bin/python bench/readers_during_ingest.py [--readers 4] [--posters 4]
                                                    [--envelope-mib 10] [--seed-objects 5000]
                                                    [--interval 0.1]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from ingest import SUBMISSIONS, TAXII, envelopes  # noqa: E402
from taxii_poll import (  # noqa: E402
    BIN,
    COLLECTION,
    peak_rss_mib,
    percentiles,
    service_env,
    serving,
)

MODES = {"synchronous (before)": str(1024**3), "background (default)": None}


def log(message: str) -> None:
    print(f"[readers] {message}", file=sys.stderr, flush=True)


def sized_envelope(limit_bytes: int, seed: int) -> list[dict]:
    """Indicators filling an envelope to just under `limit_bytes`."""
    objs = envelopes(40_000, 40_000, seed)[0]
    size, count = 14, 0  # {"objects":[]}
    for obj in objs:
        size += len(json.dumps(obj)) + 2
        if size > limit_bytes:
            break
        count += 1
    return objs[:count]


def add_principal(env: dict, name: str, tier: str) -> str:
    result = subprocess.run(
        [str(BIN / "infoshare"), "principals", "add", name, "--org", name, "--tier", tier,
         "--all-sectors"], env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)["api_key"]


class Readers:
    """Threads each fetching the first page of the collection in a loop, timing each."""

    def __init__(self, base: str, key: str, count: int, interval: float):
        self.interval = interval
        self.url = f"{base}/taxii2/infoshare/collections/{COLLECTION}/objects/"
        self.headers = {"Accept": TAXII, "Authorization": f"Bearer {key}"}
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            started = time.perf_counter()
            response = session.get(self.url, headers=self.headers, params={"limit": "100"},
                                   timeout=120)
            response.raise_for_status()
            elapsed = time.perf_counter() - started
            self.samples.append(elapsed * 1000)
            self.stop.wait(max(0.0, self.interval - elapsed))

    def measure(self, phase) -> dict:
        """Run `phase()` while the readers read; their latencies during it."""
        self.samples, self.stop = [], threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(len(self.threads))]
        for thread in self.threads:
            thread.start()
        extra = phase()
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=150)
        return {"reader_pages": len(self.samples),
                "reader_page_ms": percentiles(self.samples), **(extra or {})}


def post_and_wait(base: str, key: str, bodies: list[bytes], deadline_s: float) -> dict:
    """Every poster sends its envelope at once; returns when every status is complete."""
    url = f"{base}/taxii2/infoshare/collections/{SUBMISSIONS}/objects/"
    headers = {"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {key}"}
    answers: list[tuple[float, dict]] = []

    def post(body: bytes) -> None:
        started = time.perf_counter()
        response = requests.post(url, data=body, headers=headers, timeout=deadline_s)
        response.raise_for_status()
        answers.append((time.perf_counter() - started, response.json()))

    started = time.perf_counter()
    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(answers) != len(bodies):
        raise RuntimeError("a POST failed")
    stored = sum(_wait_complete(base, headers, status, started + deadline_s)
                 for _, status in answers)
    seconds = time.perf_counter() - started
    return {"post_answer_ms_max": round(max(a for a, _ in answers) * 1000, 1),
            "first_status": sorted({s["status"] for _, s in answers}),
            "seconds_until_all_stored": round(seconds, 2), "objects_stored": stored,
            "objects_per_s": round(stored / seconds, 1)}


def _wait_complete(base: str, headers: dict, status: dict, deadline: float) -> int:
    url = f"{base}/taxii2/infoshare/status/{status['id']}/"
    while status["status"] != "complete":
        if time.perf_counter() > deadline:
            raise RuntimeError(f"status {status['id']} still pending")
        time.sleep(0.25)
        status = requests.get(url, headers=headers, timeout=60).json()
    if status["failure_count"]:
        raise RuntimeError(f"failures: {json.dumps(status)[:500]}")
    return status["success_count"]


def run_mode(args, name: str, background_bytes: str | None, bodies: list[bytes]) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="infoshare-bench-readers-"))
    env = service_env(data_dir)
    if background_bytes is not None:
        env["INFOSHARE_TAXII_BACKGROUND_BYTES"] = background_bytes
    try:
        with serving(env, 2, data_dir, log) as server:
            return _measure_mode(args, name, env, server, bodies)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _measure_mode(args, name: str, env, server, bodies: list[bytes]) -> dict:
    """The quiet baseline, then readers while the partners POST."""
    writer = add_principal(env, "partner", "trusted")
    reader = add_principal(env, "reader", "member")
    seed = [json.dumps({"objects": batch}).encode()
            for batch in envelopes(args.seed_objects, 1000, seed=7)]
    post_and_wait(server.base, writer, seed, 600)
    readers = Readers(server.base, reader, args.readers, args.interval)
    log(f"{name}: quiet baseline, {args.baseline_s} s")
    quiet = readers.measure(lambda: time.sleep(args.baseline_s))
    log(f"{name}: {len(bodies)} partners POST {len(bodies[0]) / 2**20:.1f} MiB each")
    busy = readers.measure(lambda: post_and_wait(server.base, writer, bodies, 900))
    return {"mode": name, "quiet": quiet, "while_posting": busy,
            "server_peak_rss_mib": peak_rss_mib(server.process.pid)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--posters", type=int, default=4)
    parser.add_argument("--envelope-mib", type=float, default=10)
    parser.add_argument("--seed-objects", type=int, default=5000)
    parser.add_argument("--baseline-s", type=float, default=5)
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between one reader's requests (0: back to back)")
    args = parser.parse_args(argv)
    limit = min(int(args.envelope_mib * 2**20), 10 * 2**20)  # taxii.max_content_length
    bodies = [json.dumps({"objects": sized_envelope(limit, seed=100 + n)}).encode()
              for n in range(args.posters)]
    results = [run_mode(args, name, value, bodies) for name, value in MODES.items()]
    before, after = (r["while_posting"]["reader_page_ms"] for r in results)
    print(json.dumps({
        "benchmark": "readers_during_ingest", "python": platform.python_version(),
        "workers": 2, "posters": args.posters, "readers": args.readers,
        "reader_interval_s": args.interval,
        "envelope_bytes": len(bodies[0]),
        "objects_per_envelope": len(json.loads(bodies[0])["objects"]),
        "modes": results,
        "reader_p95_ratio_before_over_after": round(before["p95"] / after["p95"], 1),
        "reader_p50_ratio_before_over_after": round(before["p50"] / after["p50"], 1),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
