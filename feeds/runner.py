"""Running one feed: fetch, turn into items, publish each through the one write path, and
record what happened. Nothing a source sends can crash the caller: every failure ends up
in the feed's status with the offending item, and each item is its own transaction, so a
bad one never leaves half a notice and never costs the good ones of the same fetch."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from infoshare import outbound, publish, timestamps
from infoshare.notices import Notice
from infoshare.settings import FeedSpec
from infoshare.store import feeds as feed_store
from infoshare.store import leases, provenance
from infoshare.store import notices as notice_store
from infoshare.store.engine import read, write
from infoshare.store.leases import holder

from . import peers, registry, relaying
from .base import Context, FeedError, ItemError, StixObjects, count_outcomes, feed_collection
from .http import Fetcher

log = logging.getLogger(__name__)
MAX_RECORDED_ERRORS = 50


class FeedBusy(RuntimeError):
    pass


def fetcher_for(spec: FeedSpec, policy: outbound.Policy) -> Fetcher:
    options = spec.options
    kwargs = {key: options[key] for key in ("max_bytes", "retries", "user_agent")
              if key in options}
    if "timeout_seconds" in options:
        kwargs["timeout"] = float(options["timeout_seconds"])
    return Fetcher(**kwargs, session=outbound.session(policy))


LEASE_SECONDS = 60
HEARTBEAT_SECONDS = 15


class Lease:
    """A feed's lease, renewed by a heartbeat while the run goes on: a run killed outright
    holds it at most LEASE_SECONDS (on its own host, not at all: leases.acquire sees that
    the holder is gone)."""

    def __init__(self, engine, name: str):
        self.engine, self.name, self.holder = engine, name, holder()
        if not leases.acquire(engine, name, self.holder, LEASE_SECONDS):
            raise FeedBusy(f"feed {name.removeprefix('feed:')} is running in another process")
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._renew, daemon=True)
        self._beat.start()

    def _renew(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                leases.acquire(self.engine, self.name, self.holder, LEASE_SECONDS)
            except Exception:  # a database hiccup: the next beat tries again
                log.warning("could not renew the lease %s", self.name)

    def release(self) -> None:
        self._stop.set()
        leases.release(self.engine, self.name, self.holder)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def hold_lease(engine, name: str) -> Lease:
    return Lease(engine, name)


def run_feed(services, spec: FeedSpec) -> dict:
    """Run a feed once; returns its counts. Raises FeedBusy if it is running elsewhere."""
    with hold_lease(services.engine, f"feed:{spec.name}"):
        return _run(services, spec)


def _run(services, spec: FeedSpec) -> dict:
    engine = services.engine
    with read(engine) as conn:
        state = feed_store.get(conn, spec.name)
    validators: dict = {}
    policy = outbound.policy(services.settings)
    context = Context(spec, dict(state.cursor) if state else {},
                      _conditional_get(fetcher_for(spec, policy), state, validators), policy)
    counts = {"fetched": 0, "created": 0, "updated": 0, "unchanged": 0, "rejected": 0,
              "skipped": 0}
    started = timestamps.now_us()
    kept = _standing(state)
    try:
        rules = relaying.rules_for(services, spec, context.get)
        if rules is not None:
            counts.update(withheld=0, echoes=0)
        fetched = registry.adapter(spec.kind).collect(context)
    except FeedError as exc:
        _record(engine, spec, started, counts, str(exc), kept, None, {}, success=False)
        return counts
    except Exception as exc:  # an adapter bug must not stop the scheduler
        log.exception("feed %s failed", spec.name)
        _record(engine, spec, started, counts, f"internal error: {exc}", kept, None, {}, False)
        return counts
    errors = list(fetched.errors)
    counts["fetched"] = fetched.fetched
    counts["rejected"] = len(fetched.errors)
    counts["skipped"] = fetched.skipped
    stored_all = _publish_items(services, spec, fetched.items, counts, errors, rules)
    if not stored_all:  # keep the old cursor and validators: the next run fetches it again
        fetched.cursor, validators = None, {}
    errors = _still_standing(kept, errors, fetched)
    summary = f"{len(errors)} item(s) rejected" if errors else None
    _record(engine, spec, started, counts, summary, errors, fetched.cursor, validators, True,
            fetched.notes)
    return counts


def _standing(state) -> list[ItemError]:
    return [ItemError(e["item"], e["message"]) for e in (state.errors if state else [])]


def _still_standing(kept: list[ItemError], new: list[ItemError], fetched) -> list[ItemError]:
    """Rejections stay listed until the item changes or an operator clears them
    (`infoshare feeds clear`): a 304 changes nothing; a whole document fetched again
    judges every item anew; a source read past a cursor never sends an item twice, so
    its earlier rejections stay, unless the item was rejected again this run."""
    if fetched.not_modified:
        return kept
    if not fetched.incremental:
        return new
    again = {e.item for e in new}
    return (new + [e for e in kept if e.item not in again])[:MAX_RECORDED_ERRORS]


def clear(services, name: str) -> int:
    """Forget a feed's listed rejections (the operator has seen to them); how many."""
    with write(services.engine) as conn:
        state = feed_store.get(conn, name)
        if state is None:
            return 0
        feed_store.save(conn, name, errors=[], last_error=None)
        return len(state.errors)


def _conditional_get(fetcher: Fetcher, state, validators: dict):
    """ctx.get: with conditional=True, send the stored validators and keep the new ones."""
    def get(url: str, *, conditional: bool = False, **kwargs):
        if conditional and state is not None:
            kwargs.setdefault("etag", state.etag)
            kwargs.setdefault("last_modified", state.last_modified)
        response = fetcher.get(url, **kwargs)
        if conditional and not response.not_modified:
            validators.update(etag=response.etag, last_modified=response.last_modified)
        return response
    return get


BATCH = 100


def _publish_items(services, spec: FeedSpec, items: list, counts: dict, errors: list,
                   rules=None) -> bool:
    """Store every item; False when storing any of them failed (not when one was invalid).

    Notices go in batches (see publish.publish_notices); cancels and STIX one at a time.
    """
    ok = True
    batch = [i for i in items if isinstance(i, Notice) and not i.revoked]
    for start in range(0, len(batch), BATCH):
        chunk = [replace(n, source=f"feed:{spec.name}") for n in batch[start:start + BATCH]]
        results = publish.publish_notices(services.engine, services.authority(),
                                          services.settings.tiers, chunk)
        for notice, result in zip(chunk, results, strict=True):
            ok &= _count(spec, notice, result, counts, errors)
    for item in items:
        if isinstance(item, Notice) and item.revoked:
            ok &= _guarded(spec, item, counts, errors, _publish_cancel, services)
        elif isinstance(item, StixObjects) and rules is not None:
            ok &= _guarded(spec, item, counts, errors, relaying.ingest(rules), services)
        elif isinstance(item, StixObjects):
            ok &= _guarded(spec, item, counts, errors, _ingest, services)
    return ok


def _count(spec, notice: Notice, result, counts: dict, errors: list) -> bool:
    if isinstance(result, Exception):
        _failed(spec, notice.source_id, result, counts, errors)
        return False
    key = "created" if result.created else ("updated" if result.stored else "unchanged")
    counts[key] += 1
    return True


def _guarded(spec, item, counts: dict, errors: list, store, services) -> bool:
    try:
        store(services, spec, item, counts, errors)
    except Exception as exc:  # one bad item must not cost the others
        label = item.source_id if isinstance(item, Notice) else "objects"
        _failed(spec, label, exc, counts, errors)
        return False
    return True


def _failed(spec, label, exc: Exception, counts: dict, errors: list) -> None:
    log.warning("feed %s: item rejected: %s", spec.name, exc)
    counts["rejected"] += 1
    errors.append(ItemError(str(label), f"{type(exc).__name__}: {exc}"))


def _publish_cancel(services, spec: FeedSpec, notice: Notice, counts: dict, errors) -> None:
    """A cancel revokes everything the original published, not only what it repeats."""
    notice = replace(notice, source=f"feed:{spec.name}")
    with read(services.engine) as conn:
        row = notice_store.by_source(conn, notice.source, notice.org, notice.source_id)
    if row is not None:
        result = publish.revoke_notice(services.engine, services.authority(),
                                       services.settings.tiers, None, row,
                                       services.settings.compartments)
    else:
        result = publish.publish_notice(services.engine, services.authority(),
                                        services.settings.tiers, notice)
    _count(spec, notice, result, counts, errors)


def _ingest(services, spec: FeedSpec, item: StixObjects, counts: dict, errors: list) -> None:
    outcomes = publish.ingest(services.engine, services.settings, services.ids,
                              feed_collection(spec), None,
                              item.objects, actor=f"feed:{spec.name}",
                              sector_codes=spec.sectors, keys=services.keyring.public_keys(),
                              relay=publish.Relay(raws=item.raws or ()))
    count_outcomes(outcomes, counts, errors)


def _record(engine, spec, started, counts, error, errors, cursor, validators, success,
            notes=()) -> None:
    values = {"last_run_us": started, "counts": counts, "last_error": error,
              "errors": [{"item": e.item, "message": e.message[:500]}
                         for e in errors[:MAX_RECORDED_ERRORS]],
              "notes": [n[:500] for n in list(notes)[:MAX_RECORDED_ERRORS]]}
    if success:
        values["last_success_us"] = timestamps.now_us()
        values.update({k: v for k, v in validators.items()})
        if cursor is not None:
            values["cursor"] = dict(cursor)
    with write(engine) as conn:
        feed_store.save(conn, spec.name, **values)


def status(services) -> list[dict]:
    with read(services.engine) as conn:
        states = feed_store.all_rows(conn)
        relayed = provenance.by_feed(conn)
    return [describe(spec, states.get(spec.name), _relay_status(services, spec, relayed))
            for spec in services.settings.feeds]


def _relay_status(services, spec: FeedSpec, relayed: dict) -> dict | None:
    """For a relaying feed: its pin, and the hubs whose objects it relayed (provenance)."""
    if not spec.options.get("jwks"):
        return None
    try:
        pin = peers.load(services.settings.data_dir, spec.name)
    except FeedError as exc:
        return {"pinned_at": None, "pinned_keys": 0, "hubs": [], "error": str(exc)}
    return {"pinned_at": pin.pinned_at if pin else None,
            "pinned_keys": len(pin.keys) if pin else 0,
            "hubs": relayed.get(spec.name, [])}


def describe(spec: FeedSpec, state, relay: dict | None = None) -> dict:
    def when(value):
        return timestamps.format_us(value) if value else None

    return {
        "name": spec.name, "kind": spec.kind, "url": spec.url, "enabled": spec.enabled,
        "schedule": spec.cron or f"every {spec.interval_seconds} s",
        "last_run": when(state.last_run_us) if state else None,
        "last_success": when(state.last_success_us) if state else None,
        "counts": dict(state.counts) if state else {},
        "last_error": state.last_error if state else None,
        "errors": list(state.errors) if state else [],
        "notes": list(state.notes or []) if state else [],
        **({"relay": relay} if relay is not None else {}),
    }
