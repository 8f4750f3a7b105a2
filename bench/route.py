"""Benchmark routing: matching newly published objects against many subscriptions.

For 100, 1,000 and 10,000 subscriptions with varied filters, publishes notices through the
real write path and times routing.route alone (the SQL match plus the routing rows and the
delivery queue). Prints JSON: routing rows (matches) per second and routing time per
object and per notice, with the medians over the notices. `sql_match_ms_p50` is the SQL
match alone, the part that grows with the number of subscriptions (one scan per notice in
the database); the rest grows with the matches written, which is the output itself.

    python bench/route.py [--subscriptions 100,1000,10000] [--notices 40]
                          [--area-subscriptions 10000]

The geographic case publishes notices whose area is a 300-point polygon against 10,000
subscriptions with areas (counties, circles, drawn boxes) and prints the routing time per
notice (median; the target is under 10 ms): the bounding-box cut in SQL, then exact tests
against each candidate's prepared geometry, cached per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from distribution import routing
from infoshare import notices, publish, sectors
from infoshare.geo import areas, gazetteer
from infoshare.installation import id_space
from infoshare.schemas import load_bulletin, subscription_columns
from infoshare.settings import load_settings
from infoshare.signing.keys import KeyRing
from infoshare.store import migrate
from infoshare.store import principals as principal_store
from infoshare.store import subscriptions as subscription_store
from infoshare.store.engine import connect_engine, write

TIERS = ("public", "partner", "member", "trusted")


def make_principals(engine, settings, count: int = 20) -> list[int]:
    pks = []
    with write(engine) as conn:
        for i in range(count):
            codes = random.sample(sectors.CODES, 3)
            principal_store.add(conn, settings.tiers, name=f"p{i}", org=f"org{i % 5}",
                                tier=TIERS[i % 4], sector_codes=codes, log2_n=10)
            pks.append(principal_store.by_name(conn, f"p{i}").pk)
    return pks


def random_filter(i: int) -> dict:
    document: dict = {"name": f"s{i}"}
    if random.random() < 0.7:
        document["sectors"] = random.sample(sectors.CODES, random.randint(1, 3))
    if random.random() < 0.3:
        document["types"] = random.sample(["indicator", "report", "vulnerability"], 1)
    if random.random() < 0.3:
        document["kinds"] = random.sample(notices.KINDS, 2)
    if random.random() < 0.3:
        document["min_severity"] = random.choice(["Moderate", "Severe", "Extreme"])
    if random.random() < 0.2:
        document["labels"] = random.sample(["ransomware", "flood", "phishing", "ics"], 1)
    if random.random() < 0.2:
        document["webhook_url"] = "https://hooks.example.com/x"
        document["webhook_secret"] = "s" * 20
    return subscription_columns(document)


def add_subscriptions(engine, owners: list[int], count: int) -> None:
    with write(engine) as conn:
        for i in range(count):
            subscription_store.create(conn, random.choice(owners), random_filter(i))


def notice_document(i: int) -> dict:
    return {"title": f"n{i}", "kind": random.choice(notices.KINDS), "tlp": "green",
            "sectors": random.sample(sectors.CODES, 2),
            "severity": random.choice(["Minor", "Moderate", "Severe", "Extreme"]),
            "labels": random.sample(["ransomware", "flood", "phishing", "ics"], 1),
            "indicators": [{"value": f"192.0.2.{n}"} for n in range(20)]}


class TimedRoute:
    """Wraps routing.route to time it inside the real publish transaction."""

    def __init__(self):
        self.samples: list[tuple[float, int, int]] = []  # seconds, objects, rows
        self.match_seconds: list[float] = []  # the SQL match alone
        self.matched: list[int] = []  # subscriptions matched per notice
        self.original = routing.route

    def __call__(self, conn, groups, tier_map):
        groups = list(groups)
        for group in groups:
            start = time.perf_counter()
            self.matched.append(len(conn.execute(routing._matching_query(group)).all()))
            self.match_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        rows = self.original(conn, groups, tier_map)
        elapsed = time.perf_counter() - start
        self.samples.append((elapsed, sum(len(g.objects) for g in groups), rows))
        return rows


@contextmanager
def fresh_store(database_url: str):
    """A throwaway installation: (settings, engine, authority, principals' pks)."""
    with tempfile.TemporaryDirectory(prefix="infoshare-route-") as tmp:
        os.environ["INFOSHARE_DATA_DIR"] = tmp
        os.environ["INFOSHARE_DATABASE_URL"] = database_url
        settings = load_settings()
        engine = connect_engine(settings.database_url)
        migrate.upgrade(engine)
        authority = publish.Authority(KeyRing(Path(tmp)).signer(), id_space(settings))
        try:
            yield settings, engine, authority, make_principals(engine, settings)
        finally:
            engine.dispose()


def run_size(size: int, notice_count: int, database_url: str) -> dict:
    with fresh_store(database_url) as (settings, engine, authority, owners):
        add_subscriptions(engine, owners, size)
        timer = TimedRoute()
        routing.route = timer
        try:
            for i in range(notice_count):
                notice = load_bulletin(notice_document(i), [])
                publish.publish_notice(engine, authority, settings.tiers, notice)
        finally:
            routing.route = timer.original
    seconds = [s for s, _, _ in timer.samples]
    objects = sum(o for _, o, _ in timer.samples)
    rows = sum(r for _, _, r in timer.samples)
    return {"subscriptions": size, "notices": notice_count, "objects": objects,
            "matches": rows, "matches_per_s": round(rows / sum(seconds), 1),
            "subscriptions_matched_per_notice_p50": statistics.median(timer.matched),
            "sql_match_ms_p50": round(statistics.median(timer.match_seconds) * 1000, 3),
            "route_ms_per_notice_p50": round(statistics.median(seconds) * 1000, 3),
            "route_us_per_object_p50": round(
                statistics.median(s / o * 1e6 for s, o, _ in timer.samples if o), 1)}


def area_filter(i: int, counties: list[str]) -> dict:
    """A subscription that says where: a county, a circle or a drawn box, in CONUS."""
    lat, lon = random.uniform(26, 48), random.uniform(-124, -68)
    roll = random.random()
    if roll < 0.4:
        item: dict = {"county": random.choice(counties)}
    elif roll < 0.8:
        item = {"point": [round(lat, 4), round(lon, 4)], "radius_km": random.randint(5, 100)}
    else:
        d = random.uniform(0.1, 1.0)
        item = {"geojson": {"type": "Polygon", "coordinates": [[
            [lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]]}}
    return subscription_columns({"name": f"a{i}", "areas": [item]})


def alert_polygon(points: int = 300) -> list[list[float]]:
    """A 300-point outline (lat, lon) somewhere in the southern plains, ~60 km across."""
    lat, lon = random.uniform(31, 36), random.uniform(-102, -95)
    ring = areas.circle(lat, lon, random.uniform(20, 60), sides=points)
    return [[round(y, 5), round(x, 5)] for x, y in ring.exterior.coords[:-1]]


def run_geo(size: int, notice_count: int, database_url: str) -> dict:
    """Notices with a 300-point polygon against `size` subscriptions with areas."""
    counties = sorted(gazetteer.load().counties)
    with fresh_store(database_url) as (settings, engine, authority, owners):
        with write(engine) as conn:
            for i in range(size):
                subscription_store.create(conn, random.choice(owners), area_filter(i, counties))
        timer = TimedRoute()
        routing.route = timer
        try:
            for i in range(notice_count):
                notice = load_bulletin({
                    "title": f"g{i}", "kind": "natural", "tlp": "clear", "sectors": "all",
                    "locations": [{"name": "warned area", "polygon": alert_polygon()}]}, [])
                publish.publish_notice(engine, authority, settings.tiers, notice)
        finally:
            routing.route = timer.original
    seconds = [s for s, _, _ in timer.samples]
    return {"area_subscriptions": size, "notices": notice_count, "polygon_points": 300,
            "subscriptions_matched_per_notice_p50": statistics.median(timer.matched),
            "route_ms_per_notice_p50": round(statistics.median(seconds) * 1000, 3),
            "target_ms": 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", default="100,1000,10000")
    parser.add_argument("--notices", type=int, default=40)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--area-subscriptions", type=int, default=10_000,
                        help="subscriptions with areas for the geographic case (0: skip)")
    args = parser.parse_args()
    random.seed(args.seed)
    geographic = None
    if args.area_subscriptions:
        print(f"routing by place against {args.area_subscriptions} areas...", file=sys.stderr)
        gazetteer.load()  # once per process, not inside a timed route
        run_geo(20, 2, args.database_url)  # warm the caches the workers keep
        geographic = run_geo(args.area_subscriptions, args.notices, args.database_url)
    results = []
    for size in (int(s) for s in args.subscriptions.split(",")):
        print(f"routing against {size} subscriptions...", file=sys.stderr)
        results.append(run_size(size, args.notices, args.database_url))
    first, last = results[0], results[-1]
    print(json.dumps({
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "engine": "postgresql" if args.database_url.startswith("postgresql") else "sqlite",
        "results": results,
        "per_object_cost_ratio_largest_over_smallest": round(
            last["route_us_per_object_p50"] / first["route_us_per_object_p50"], 2),
        "geographic": geographic,
    }, indent=2))


if __name__ == "__main__":
    main()
