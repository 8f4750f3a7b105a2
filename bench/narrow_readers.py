"""Narrow readers (issue 12): a page costs what it returns, not what it skips.

One store of N indicators where most rows (green, energy only) are hidden from each
narrow reader, and each narrow reader may see about 1% of the rows by one mechanism of the
access rule:

  sector       a sector only it holds (green, water only)
  compartment  a compartment it holds (green, all sectors, LES)
  red          TLP:RED naming it
  strict       TLP:AMBER+STRICT naming its organisation
  clear        a low tier (clear only) among mostly-green rows
  red-many     TLP:RED naming it, every bulletin of 100 objects naming a different
               co-recipient too (many distinct audiences: the fallback must not be worse)

and an all-seeing reader (every sector, tier red, the compartment, named everywhere).
For each reader at the same page size: the first page and a deep page (added_after at 90%
of what it sees), p50 over --repeat samples taken in interleaved rounds, the server's CPU
per page, and the ratios narrow / all-seeing.

Run through bench/taxii_poll.py: `--narrow 1000000` (sizes, comma-separated).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import taxii_poll as poll

from infoshare import access, sectors, timestamps
from infoshare.settings import load_settings
from infoshare.store import migrate
from infoshare.store import objects as object_store
from infoshare.store import principals as principal_store
from infoshare.store.engine import connect_engine, write

EVERY = 100  # each narrow variant holds one row in EVERY
BULLETIN = 100  # red-many: objects per bulletin, each bulletin with its own co-recipient
ALL = "bench-all"


@dataclass(frozen=True)
class Reader:
    name: str
    org: str
    tier: str
    sectors: tuple[str, ...] = ()
    all_sectors: bool = False
    compartments: tuple[str, ...] = ()


READERS = {
    "all-seeing": Reader(ALL, "hub org", "trusted", all_sectors=True, compartments=("LES",)),
    "sector": Reader("narrow-sector", "water org", "member", ("water",)),
    "compartment": Reader("narrow-compartment", "les org", "member", ("chemical",),
                          compartments=("LES",)),
    "red": Reader("narrow-red", "red org", "trusted", ("dams",)),
    "strict": Reader("narrow-strict", "strict org", "trusted", ("food-agriculture",)),
    "clear": Reader("narrow-clear", "public org", "public", all_sectors=True),
    "red-many": Reader("narrow-red-many", "many org", "trusted", ("transportation",)),
}
VARIANTS = [v for v in READERS if v != "all-seeing"]
BACKGROUND = access.Audience(tlp="green", all_sectors=False,
                             sector_mask=sectors.mask(["energy"]))
_FIXED = {
    "sector": access.Audience(tlp="green", all_sectors=False,
                              sector_mask=sectors.mask(["water"])),
    "compartment": access.Audience(tlp="green", compartments=frozenset({"LES"})),
    "red": access.Audience(tlp="red", recipient_principals=frozenset({"narrow-red", ALL})),
    "strict": access.Audience(tlp="amber+strict",
                              recipient_orgs=frozenset({"strict org", "hub org"})),
    "clear": access.Audience(tlp="clear", all_sectors=False,
                             sector_mask=sectors.mask(["energy"])),
}


def variant_of(i: int) -> str | None:
    """Which narrow variant row i belongs to, if any: one row in EVERY per variant."""
    slot = i % EVERY
    return VARIANTS[slot] if slot < len(VARIANTS) else None


def audience_of(i: int, variant: str | None) -> access.Audience:
    if variant is None:
        return BACKGROUND
    if variant == "red-many":
        bulletin = i // (EVERY * BULLETIN)
        return access.Audience(tlp="red", recipient_principals=frozenset(
            {"narrow-red-many", ALL, f"co-recipient-{bulletin}"}))
    return _FIXED[variant]


def load(engine, n: int) -> tuple[dict, dict[str, list[int]]]:
    """n objects through the store API (the poll bench's bulk builder), and each
    reader's date_added values (the all-seeing reader's: every row's)."""
    rng = random.Random(n)
    base_us = timestamps.now_us() - n * 1000 - 86_400_000_000
    added: dict[str, list[int]] = {name: [] for name in READERS}
    started = time.perf_counter()
    for start in range(0, n, poll.BATCH):
        items, kinds = [], []
        for i in range(start, min(n, start + poll.BATCH)):
            item = poll._new_object(i, rng, base_us)
            kind = variant_of(i)
            items.append(replace(item, audience=audience_of(i, kind)))
            kinds.append(kind)
        with write(engine) as conn:
            stamps = object_store.insert(conn, items)
        for kind, stamp in zip(kinds, stamps, strict=True):
            added["all-seeing"].append(stamp)
            if kind:
                added[kind].append(stamp)
        if (start // poll.BATCH) % 20 == 19:
            poll.log(f"  loaded {start + len(items)}/{n}")
    seconds = time.perf_counter() - started
    return {"load_seconds": round(seconds, 2), "load_objects_per_s": round(n / seconds)}, added


def add_readers(engine, env: dict[str, str]) -> dict[str, str]:
    """One principal per reader; their API keys by variant."""
    settings = load_settings(environ=env)
    keys = {}
    with write(engine) as conn:
        for variant, r in READERS.items():
            _, keys[variant] = principal_store.add(
                conn, settings.tiers, name=r.name, org=r.org, tier=r.tier,
                sector_codes=r.sectors, all_sectors=r.all_sectors,
                compartments=r.compartments, known_compartments=settings.compartments,
                password="bench-password-0123", log2_n=10)
    return keys


class Reading(poll.Client):
    """A client that can also start at added_after."""

    def page(self, added_after: int | None) -> bytes:
        params = {"limit": str(self.limit)}
        if added_after is not None:
            params["added_after"] = timestamps.format_us(added_after)
        response = self.session.get(self.url, params=params, timeout=600)
        if response.status_code != 200:
            raise RuntimeError(f"GET {response.url}: {response.status_code}")
        return response.content


def measure(server, keys: dict[str, str], added: dict[str, list[int]], args) -> dict:
    """Every reader's first and deep page, `repeat` rounds, the readers interleaved in each
    round so that a busy machine weighs on all of them alike; wall p50 per page, and the
    server workers' CPU per page (mean over the rounds, from /proc)."""
    workers = poll._children(server.process.pid)
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    clients = {v: Reading(server.base, keys[v], args.limit) for v in READERS}
    pages = {}
    for variant, stamps in added.items():
        pages[(variant, "first")] = None
        pages[(variant, "deep")] = stamps[int(0.9 * len(stamps)) - 1]
    samples = {key: [] for key in pages}
    ticks = dict.fromkeys(pages, 0)
    counts = {}
    try:
        for (variant, page), after in pages.items():
            poll.warm_up(clients[variant], 2)
            counts[(variant, page)] = len(json.loads(clients[variant].page(after))["objects"])
        poll.log(f"  {len(pages)} pages x{args.repeat}, interleaved")
        for _ in range(args.repeat):
            for (variant, page), after in pages.items():
                cpu = poll.cpu_ticks(workers)
                t0 = time.perf_counter()
                clients[variant].page(after)
                samples[(variant, page)].append((time.perf_counter() - t0) * 1000)
                ticks[(variant, page)] += poll.cpu_ticks(workers) - cpu
    finally:
        for client in clients.values():
            client.close()
    readers = {}
    for variant in READERS:
        readers[variant] = {"visible": len(added[variant])}
        for page in ("first", "deep"):
            readers[variant][f"{page}_page_ms"] = poll.percentiles(samples[(variant, page)])
            readers[variant][f"{page}_page_server_cpu_ms"] = round(
                ticks[(variant, page)] * tick_ms / args.repeat, 2)
            readers[variant][f"{page}_page_objects"] = counts[(variant, page)]
    full = readers["all-seeing"]
    for variant in VARIANTS:
        mine = readers[variant]
        for page in ("first", "deep"):
            mine[f"{page}_over_all_seeing_p50"] = round(
                mine[f"{page}_page_ms"]["p50"] / full[f"{page}_page_ms"]["p50"], 3)
            mine[f"{page}_over_all_seeing_cpu"] = round(
                mine[f"{page}_page_server_cpu_ms"]
                / max(full[f"{page}_page_server_cpu_ms"], 0.01), 3)
    return readers


def run(n: int, args) -> dict:
    """Build the store, serve it, measure every reader; always clean up."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"infoshare-narrow-{n}-"))
    env = poll.service_env(data_dir)
    engine = None
    try:
        engine = connect_engine(f"sqlite:///{data_dir / 'infoshare.db'}")
        migrate.upgrade(engine)
        poll.log(f"narrow N={n}: loading")
        figures, added = load(engine, n)
        keys = add_readers(engine, env)
        engine.dispose()
        engine = None
        poll.log(f"narrow N={n}: {figures['load_objects_per_s']} objects/s; serving")
        with poll.serving(env, args.workers, data_dir) as server:
            return {"objects": n, **figures, "limit": args.limit,
                    "readers": measure(server, keys, added, args)}
    finally:
        if engine is not None:
            engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)
