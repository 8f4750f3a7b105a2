"""Ingest benchmark: how fast a partner's TAXII POST of indicators is validated and stored.

Starts the real server (`infoshare serve`, one worker, SQLite) on a free loopback port,
POSTs envelopes of indicators (each with its own pattern, as real feeds have) to the
writable `submissions` collection and reports objects/s, server CPU seconds per object and
the server's peak RSS. In the same run it times `stix.validate.check` against the same
check built on stix2-validator's `validate_instance` (what it was before), as medians of
several rounds over fresh objects, and their ratio: for indicators of value comparisons
(the POSTed kind, which need no parse) and of file hashes (parsed once, not twice). With
--opentaxii PYTHON (an interpreter that has OpenTAXII 0.9.3 installed) the same envelopes
also go to OpenTAXII on loopback, one worker, and the ratio of the two POST rates is
reported. `infoshare import` of the same objects from a JSON lines file (batches the size
of the envelopes) is measured in the same run: objects/s, CPU per object, peak RSS, and
its ratio to the POST rate. JSON goes to stdout, progress to stderr.

    .venv/bin/python bench/ingest.py [--objects 20000] [--envelope 1000] [--rounds 5]
                                     [--opentaxii /path/to/venv/bin/python]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

import requests
from stix2validator import ValidationOptions, validate_instance

from infoshare import timestamps
from infoshare.stix import conformance
from infoshare.stix.validate import InvalidObject, check

sys.path.insert(0, str(Path(__file__).parent))
from taxii_poll import (  # noqa: E402  (bench scripts share their server helpers)
    BIN,
    cpu_seconds,
    peak_rss_mib,
    service_env,
    serving,
)

TAXII = "application/taxii+json;version=2.1"
SUBMISSIONS = "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a04"
TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
OPTIONS = ValidationOptions(strict=False, version="2.1")


def log(message: str) -> None:
    print(f"[ingest] {message}", file=sys.stderr, flush=True)


# --- data ----------------------------------------------------------------------------------

def value_pattern(rng: random.Random, serial: int) -> str:
    octets = "{}.{}.{}.{}".format(*rng.randbytes(4))
    return f"[ipv4-addr:value = '{octets}'] OR [domain-name:value = 'c2-{serial}.example']"


def hash_pattern(rng: random.Random, serial: int) -> str:
    """A pattern the validator must parse (a hash, checked against its algorithm)."""
    return (f"[file:hashes.'SHA-256' = '{rng.randbytes(32).hex()}' "
            f"AND file:name = 'dropper-{serial}.exe']")


def indicator(rng: random.Random, stamp: str, pattern=value_pattern) -> dict:
    """A partner's indicator: its own id and pattern, marked TLP:GREEN."""
    serial = rng.getrandbits(32)
    return {
        "type": "indicator", "spec_version": "2.1",
        "id": f"indicator--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "created": stamp, "modified": stamp, "valid_from": stamp,
        "name": f"Malicious infrastructure {serial}",
        "description": "Command and control seen against water utilities.",
        "indicator_types": ["malicious-activity"],
        "pattern": pattern(rng, serial),
        "pattern_type": "stix",
        "labels": ["critical-infrastructure"],
        "object_marking_refs": [TLP_GREEN],
    }


def envelopes(count: int, size: int, seed: int, pattern=value_pattern) -> list[list[dict]]:
    rng = random.Random(seed)
    stamp = timestamps.format_stix(timestamps.now_us() - 3_600_000_000)
    objects = [indicator(rng, stamp, pattern) for _ in range(count)]
    return [objects[i:i + size] for i in range(0, count, size)]


# --- process figures -----------------------------------------------------------------------

def post_all(url: str, batches: list[list[dict]], headers: dict, accepted=(202,),
             check_body=None) -> float:
    """POST every envelope in turn on one keep-alive session; returns the seconds taken."""
    session = requests.Session()
    session.headers.update(headers)
    started = time.perf_counter()
    for batch in batches:
        response = session.post(url, data=json.dumps({"objects": batch}), timeout=600)
        if response.status_code not in accepted:
            raise RuntimeError(f"POST {url}: {response.status_code} {response.text[:500]}")
        if check_body:
            check_body(response, batch)
    seconds = time.perf_counter() - started
    session.close()
    return seconds


def _all_stored(response, batch) -> None:
    status = response.json()
    if status.get("success_count") != len(batch):
        raise RuntimeError(f"not all stored: {json.dumps(status)[:800]}")


def _none_failed(response, batch) -> None:
    """OpenTAXII's status: every object counted, none failed (it may still be pending)."""
    status = response.json()
    if status.get("total_count") != len(batch) or status.get("failure_count"):
        raise RuntimeError(f"OpenTAXII refused some: {json.dumps(status)[:800]}")


# --- infoshare -----------------------------------------------------------------------------

def bench_infoshare(args, batches) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="infoshare-bench-ingest-"))
    env = service_env(data_dir)
    try:
        with serving(env, 1, data_dir, log) as server:
            return _post_to(server, env, args, batches)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _post_to(server, env, args, batches) -> dict:
    """The POST rate, with the server's CPU per object and peak memory."""
    result = subprocess.run(
        [str(BIN / "infoshare"), "principals", "add", "bench", "--org", "Bench",
         "--tier", "trusted", "--all-sectors", "--role", "publisher"],
        env=env, capture_output=True, text=True, timeout=120, check=True)
    key = json.loads(result.stdout)["api_key"]
    url = f"{server.base}/taxii2/infoshare/collections/{SUBMISSIONS}/objects/"
    headers = {"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {key}"}
    warm = envelopes(args.envelope, args.envelope, seed=-1)
    post_all(url, warm, headers, check_body=_all_stored)  # imports, caches, key check
    log(f"infoshare: POSTing {args.objects} indicators in envelopes of {args.envelope}")
    cpu0 = cpu_seconds(server.process.pid)
    seconds = post_all(url, batches, headers, check_body=_all_stored)
    cpu = cpu_seconds(server.process.pid) - cpu0
    return {"objects": args.objects, "envelope": args.envelope, "workers": 1,
            "seconds": round(seconds, 3), "objects_per_s": round(args.objects / seconds, 1),
            "server_cpu_s_per_object": round(cpu / args.objects, 6),
            "server_peak_rss_mib": peak_rss_mib(server.process.pid)}


# --- infoshare import: the same objects from a file --------------------------------------

def _run_measured(args: list[str], env: dict) -> tuple[float, float, float, str]:
    """Run a command to its end: (wall seconds, CPU seconds, peak RSS MiB, stdout), its
    CPU and peak RSS from the kernel's accounting of that one process (wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:3])}: exit {process.returncode}: "
                               f"{err.read()[-2000:]}")
        return (seconds, usage.ru_utime + usage.ru_stime, round(usage.ru_maxrss / 1024, 1),
                out.read())


def _write_jsonl(path: Path, batches: list[list[dict]]) -> None:
    with open(path, "w") as fh:
        for batch in batches:
            fh.writelines(json.dumps(obj) + "\n" for obj in batch)


def bench_import(args, batches, post: dict) -> dict:
    """`infoshare import` of the POSTed objects as one JSON lines file, batches the size of
    the POST's envelopes, into a fresh store that (like the POST case's) holds a warm-up
    batch first. objects/s is the import's own figure (reading to the last commit); CPU
    per object and peak RSS are the whole process's, start-up included."""
    data_dir = Path(tempfile.mkdtemp(prefix="infoshare-bench-import-"))
    env = service_env(data_dir)
    try:
        subprocess.run([str(BIN / "infoshare"), "init"], env=env, capture_output=True,
                       check=True, timeout=300)
        subprocess.run([str(BIN / "infoshare"), "principals", "add", "bench", "--org", "Bench",
                        "--tier", "trusted", "--all-sectors", "--role", "publisher"],
                       env=env, capture_output=True, check=True, timeout=120)
        command = [str(BIN / "infoshare"), "import", "--collection", "submissions", "--as",
                   "bench", "--batch", str(args.envelope)]
        _write_jsonl(data_dir / "warm.jsonl", envelopes(args.envelope, args.envelope, seed=-1))
        _run_measured([*command, str(data_dir / "warm.jsonl")], env)
        _write_jsonl(data_dir / "objects.jsonl", batches)
        log(f"infoshare import: {args.objects} indicators as JSON lines, batches of "
            f"{args.envelope}")
        seconds, cpu, rss, out = _run_measured([*command, str(data_dir / "objects.jsonl")], env)
        summary = json.loads(out)
        if summary["stored"] != args.objects:
            raise RuntimeError(f"import stored {summary['stored']} of {args.objects}")
        figures = {"objects": args.objects, "batch": args.envelope,
                   "objects_per_s": summary["objects_per_s"],
                   "wall_s_with_start": round(seconds, 3),
                   "cpu_s_per_object": round(cpu / args.objects, 6),
                   "peak_rss_mib": rss}
        return {"infoshare_import": figures, "post_objects_per_s": post["objects_per_s"],
                "import_over_post": round(figures["objects_per_s"] / post["objects_per_s"], 2)}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


# --- check(): old and new ------------------------------------------------------------------

def _validator_errors(obj: dict) -> list[str]:
    return [str(e) for e in validate_instance(obj, OPTIONS).errors]


def old_check(obj: dict):
    """check() as it was: the same pre-checks, stix2-validator's validate_instance behind."""
    with mock.patch.object(conformance, "errors", _validator_errors):
        return check(obj)


def _per_object_us(function, objects: list[dict]) -> float:
    started = time.perf_counter()
    for obj in objects:
        try:
            function(obj)
        except InvalidObject as exc:
            raise RuntimeError(f"a benchmark object was refused: {exc}") from None
    return (time.perf_counter() - started) / len(objects) * 1e6


def bench_check(args, pattern) -> dict:
    """Medians over rounds; each round has fresh objects (patterns never seen before), timed
    old then new, and then new again over the same objects (patterns seen before)."""
    old, new, cached = [], [], []
    warm = envelopes(1, 1, seed=-2, pattern=pattern)[0][0]
    old_check(copy.deepcopy(warm))
    check(warm)  # builds the validators once, as a server does on its first POST
    for n in range(args.rounds):
        objects = [o for batch in envelopes(args.check_objects, args.check_objects, seed=n,
                                            pattern=pattern) for o in batch]
        old.append(_per_object_us(old_check, copy.deepcopy(objects)))
        new.append(_per_object_us(check, objects))
        cached.append(_per_object_us(check, objects))
        log(f"check ({pattern.__name__}) round {n + 1}/{args.rounds}: old {old[-1]:.0f} us, "
            f"new {new[-1]:.0f} us")
    old_us, new_us = statistics.median(old), statistics.median(new)
    return {"pattern": warm["pattern"], "objects_per_round": args.check_objects,
            "rounds": args.rounds,
            "old_validate_instance_us_per_object": round(old_us, 1),
            "new_us_per_object": round(new_us, 1),
            "new_us_per_object_pattern_seen": round(statistics.median(cached), 1),
            "old_over_new": round(old_us / new_us, 2)}


# --- OpenTAXII 0.9.3 as the peer -----------------------------------------------------------

OPENTAXII_CONFIG = """\
domain: "127.0.0.1:{port}"
support_basic_auth: yes
return_server_error_details: no
auth_api:
  class: opentaxii.auth.sqldb.SQLDatabaseAPI
  parameters:
    db_connection: sqlite:///{data}/auth.db
    create_tables: yes
    secret: bench-secret-not-for-production
taxii1:
taxii2:
  persistence_api:
    class: opentaxii.persistence.sqldb.Taxii2SQLDatabaseAPI
    parameters:
      db_connection: sqlite:///{data}/data.db
      create_tables: yes
  title: bench
  public_discovery: true
  allow_custom_properties: true
  max_content_length: 104857600
logging:
  opentaxii: warning
  root: warning
"""

# OpenTAXII 0.9.3 commits a POST, then answers 500: the status it returns holds a uuid.UUID
# that its JSON encoder cannot write. The one response function is wrapped to write a uuid
# as text; nothing else changes.
OPENTAXII_APP = """\
import json, uuid
import opentaxii.server
from opentaxii.config import ServerConfig
from opentaxii.middleware import create_app
from opentaxii.server import TAXIIServer

_respond = opentaxii.server.make_taxii2_response

def _text(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(type(value).__name__)

def make_taxii2_response(data, *args, **kwargs):
    if not isinstance(data, str):
        data = json.dumps(data, default=_text)
    return _respond(data, *args, **kwargs)

opentaxii.server.make_taxii2_response = make_taxii2_response
app = create_app(TAXIIServer(ServerConfig()))
"""

OPENTAXII_SETUP = """\
from bench_app import app
with app.app_context():
    api = app.taxii_server.servers.taxii2.persistence.api
    root = api.add_api_root(title="bench", default=True, is_public=True)
    collection = api.add_collection(api_root_id=root.id, title="bench", is_public=True,
                                    is_public_write=True)
    print(root.id, collection.id)
"""


def _opentaxii_setup(python: str, data: Path, port: int) -> dict:
    """Config, the wrapped app, one public writable collection; returns env and ids."""
    (data / "opentaxii.yml").write_text(OPENTAXII_CONFIG.format(port=port, data=data))
    (data / "bench_app.py").write_text(OPENTAXII_APP)
    env = {**os.environ, "OPENTAXII_CONFIG": str(data / "opentaxii.yml"),
           "PYTHONPATH": str(data)}
    out = subprocess.run([python, "-c", OPENTAXII_SETUP], env=env, cwd=data, check=True,
                         capture_output=True, text=True, timeout=120).stdout.split()
    return {"env": env, "api_root": out[-2], "collection": out[-1]}


def _opentaxii_count(python: str, setup: dict, data: Path) -> int:
    """Objects OpenTAXII holds after the run (its status is not proof it stored them)."""
    code = ("import sqlite3, sys; print(sqlite3.connect(sys.argv[1])"
            ".execute('select count(*) from opentaxii_stixobject').fetchone()[0])")
    out = subprocess.run([python, "-c", code, str(data / "data.db")], env=setup["env"],
                         check=True, capture_output=True, text=True, timeout=120)
    return int(out.stdout.strip())


def bench_opentaxii(args, batches) -> dict:
    from taxii_poll import free_port

    data = Path(tempfile.mkdtemp(prefix="opentaxii-bench-"))
    port = free_port()
    process = None
    try:
        setup = _opentaxii_setup(args.opentaxii, data, port)
        log_file = open(data / "server.log", "w")
        process = subprocess.Popen(
            [str(Path(args.opentaxii).parent / "gunicorn"), "bench_app:app", "--workers", "1",
             "--bind", f"127.0.0.1:{port}", "--timeout", "600"],
            env=setup["env"], cwd=data, stdout=log_file, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/taxii2/{setup['api_root']}/collections/{setup['collection']}/objects/"
        headers = {"Accept": TAXII, "Content-Type": TAXII}
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/taxii2/", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((data / "server.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        post_all(url, envelopes(args.envelope, args.envelope, seed=-1), headers,
                 check_body=_none_failed)
        log(f"OpenTAXII: POSTing {args.objects} indicators in envelopes of {args.envelope}")
        cpu0 = cpu_seconds(process.pid)
        seconds = post_all(url, batches, headers, check_body=_none_failed)
        cpu = cpu_seconds(process.pid) - cpu0
        stored = _opentaxii_count(args.opentaxii, setup, data)
        if stored < args.objects:
            raise RuntimeError(f"OpenTAXII stored {stored} of {args.objects}")
        return {"version": "0.9.3", "objects": args.objects, "workers": 1,
                "seconds": round(seconds, 3), "objects_per_s": round(args.objects / seconds, 1),
                "server_cpu_s_per_object": round(cpu / args.objects, 6),
                "server_peak_rss_mib": peak_rss_mib(process.pid)}
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(data, ignore_errors=True)


# --- main ----------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000, help="indicators to POST")
    parser.add_argument("--envelope", type=int, default=1000, help="objects per envelope")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the check() timing")
    parser.add_argument("--check-objects", type=int, default=200,
                        help="fresh objects per check() round")
    parser.add_argument("--opentaxii", default="",
                        help="a python with OpenTAXII 0.9.3 installed: also POST to it")
    args = parser.parse_args(argv)
    for name in ("objects", "envelope", "rounds", "check_objects"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.objects > 1_000_000:
        parser.error("--objects: at most 1,000,000")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    batches = envelopes(args.objects, args.envelope, seed=args.objects)
    doc = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                       "platform": platform.platform()},
           "check": {"value_comparisons": bench_check(args, value_pattern),
                     "file_hashes": bench_check(args, hash_pattern)},
           "taxii_post": {"infoshare": bench_infoshare(args, batches)}}
    doc["import"] = bench_import(args, batches, doc["taxii_post"]["infoshare"])
    if args.opentaxii:
        peer = bench_opentaxii(args, batches)
        doc["taxii_post"]["opentaxii"] = peer
        doc["taxii_post"]["infoshare_over_opentaxii"] = round(
            doc["taxii_post"]["infoshare"]["objects_per_s"] / peer["objects_per_s"], 2)
        # server CPU per object, the peer's over ours: what each costs, whatever else
        # the shared machine runs meanwhile
        doc["taxii_post"]["opentaxii_cpu_over_infoshare_cpu"] = round(
            peer["server_cpu_s_per_object"]
            / doc["taxii_post"]["infoshare"]["server_cpu_s_per_object"], 2)
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
