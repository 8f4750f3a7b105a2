"""Benchmark the one write path: convert + sign + store + route.

Prints JSON: bulletins/s for a typical bulletin (20 indicators, 3 sectors), signed
objects/s for a bulk notice of 10,000 indicators, and two baselines measured on the same
objects in the same run: signing alone (RFC 8785 + Ed25519) and building each indicator
through the stix2 library. Ratios are what to compare across machines, not absolute rates.

    python bench/publish.py [--bulletins 200] [--bulk 10000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

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


def bench_bulletins(engine, authority, count: int) -> dict:
    latencies = []
    start = time.perf_counter()
    for i in range(count):
        notice = load_bulletin(typical_bulletin(i), [])
        t0 = time.perf_counter()
        publish.publish_notice(engine, authority, TIERS, notice)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return {"bulletins": count, "bulletins_per_s": round(count / elapsed, 1),
            "objects_per_bulletin": len(publish.publish_notice(
                engine, authority, TIERS, load_bulletin(typical_bulletin(0), [])).object_ids),
            "publish_ms_p50": round(statistics.median(latencies) * 1000, 2)}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bulletins", type=int, default=200)
    parser.add_argument("--bulk", type=int, default=10_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
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
    print(json.dumps({
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "engine": "postgresql" if args.database_url.startswith("postgresql") else "sqlite",
        "typical_bulletin": bulletins,
        "bulk": bulk,
        "baselines": {"sign_only_objects_per_s": round(sign_rate, 1),
                      "stix2_library_build_per_s": round(stix2_rate, 1)},
        "ratios": {"bulk_over_sign_only": round(bulk["objects_per_s"] / sign_rate, 3),
                   "bulk_over_stix2_build": round(bulk["objects_per_s"] / stix2_rate, 2)},
    }, indent=2))


if __name__ == "__main__":
    main()
