"""Sending queued webhook deliveries: claim, send, retry with backoff, dead-letter.

Deliveries are rows written with the objects they carry, so nothing is lost when the
service or the receiver restarts. Any number of workers and hosts run a Sender: each claims
due rows by taking a lease on them in the database, so a delivery is in flight in one
place at a time. Each attempt re-applies access.py for the subscription's owner, so a
principal who lost clearance stops receiving at once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row

from infoshare import access, outbound, timestamps
from infoshare.settings import Settings
from infoshare.store import audit
from infoshare.store import principals as principal_store
from infoshare.store.engine import is_sqlite, read, write
from infoshare.store.schema import deliveries, objects, subscriptions

from . import webhooks

log = logging.getLogger(__name__)
BUNDLE_NAMESPACE = uuid.UUID("b7c1d2e3-4f50-4a61-8b72-9c83d4e5f607")
MAX_BACKOFF_US = 24 * 3600 * 1_000_000
RETRYABLE_4XX = {408, 425, 429}


@dataclass(frozen=True)
class Outcome:
    state: str  # delivered | pending (will retry) | dead | dropped
    status: int | None = None
    error: str = ""


class Sender:
    """Sends due deliveries on a few threads of this worker, one at a time per
    subscription, so a slow or dead receiver holds back only its own subscription.

    Each delivery is claimed alone, right before it is sent, under a lease longer than a
    send can take (2 x webhooks.timeout_seconds + 30 s), and its attempt is counted when
    it is claimed; finishing it checks that the lease is still ours. So no other worker or
    host can pick it up while it is in flight: each is received once while the receiver
    answers within the timeout.
    """

    def __init__(self, engine: Engine, settings: Settings, holder: str, threads: int = 8):
        self.engine, self.settings, self.holder = engine, settings, holder
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        self.in_flight: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = False

    @property
    def lease_us(self) -> int:
        return int((2 * self.settings.webhooks.timeout_seconds + 30) * 1_000_000)

    def tick(self) -> int:
        """Claim what free threads can send now; returns how many were started."""
        with self.lock:
            free = 0 if self.stopping else self.threads - len(self.in_flight)
        if free <= 0:
            return 0
        claimed = claim(self.engine, timestamps.now_us(), free, self.lease_us, self.holder)
        for row in claimed:
            with self.lock:
                self.in_flight.add(row.id)
            self.pool.submit(self._send, row)
        return len(claimed)

    def _send(self, row: Row) -> None:
        try:
            try:
                outcome = attempt(self.engine, self.settings, row)
            except Exception as exc:  # never let one delivery stop the others
                log.exception("delivery %s failed unexpectedly", row.id)
                outcome = Outcome("pending", error=f"internal error: {exc}")
            finish(self.engine, self.settings, row, outcome)
        except Exception:
            log.exception("delivery %s could not be recorded", row.id)
        finally:
            with self.lock:
                self.in_flight.discard(row.id)

    def stop(self, wait_seconds: float = 5.0) -> None:
        """A clean shutdown: claim nothing more, let sends in flight finish for a few
        seconds, then hand back the leases of any still unfinished."""
        with self.lock:
            self.stopping = True
        self.pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            with self.lock:
                if not self.in_flight:
                    break
            time.sleep(0.05)
        release(self.engine, self.holder)


def claim(engine: Engine, now: int, limit: int, lease_us: int, holder: str) -> list[Row]:
    """Up to `limit` due deliveries, at most one per subscription and none of a
    subscription that has one in flight; leased to `holder` and counted as attempted."""
    with write(engine) as conn:
        busy = sa.select(deliveries.c.subscription_pk).where(
            deliveries.c.state == "pending", deliveries.c.lease_until_us > now)
        query = (sa.select(deliveries.c.id, deliveries.c.subscription_pk)
                 .where(deliveries.c.state == "pending", deliveries.c.next_attempt_us <= now,
                        deliveries.c.lease_until_us <= now,
                        deliveries.c.subscription_pk.not_in(busy))
                 .order_by(deliveries.c.next_attempt_us).limit(limit * 4))
        if not is_sqlite(conn):
            query = query.with_for_update(skip_locked=True)
        chosen: dict[int, str] = {}
        for row in conn.execute(query):
            if row.subscription_pk not in chosen and len(chosen) < limit:
                chosen[row.subscription_pk] = row.id
        if not chosen:
            return []
        ids = list(chosen.values())
        conn.execute(deliveries.update().where(deliveries.c.id.in_(ids)).values(
            lease_until_us=now + lease_us, lease_holder=holder,
            attempts=deliveries.c.attempts + 1))
        return list(conn.execute(sa.select(deliveries).where(deliveries.c.id.in_(ids))
                                 .order_by(deliveries.c.next_attempt_us)))


def release(engine: Engine, holder: str) -> int:
    """Hand back the leases `holder` still has (a clean shutdown): others send them now."""
    with write(engine) as conn:
        return conn.execute(deliveries.update().where(
            deliveries.c.state == "pending", deliveries.c.lease_holder == holder)
            .values(lease_until_us=0, lease_holder=None)).rowcount


def bundle(delivery_id: str, raws: list[bytes]) -> bytes:
    """The same bytes on every attempt: the bundle id derives from the delivery id."""
    bundle_id = f"bundle--{uuid.uuid5(BUNDLE_NAMESPACE, delivery_id)}"
    return b'{"type":"bundle","id":"' + bundle_id.encode() + b'","objects":[' + b",".join(
        raws) + b"]}"


def attempt(engine: Engine, settings: Settings, row: Row) -> Outcome:
    with read(engine) as conn:
        sub = conn.execute(sa.select(subscriptions)
                           .where(subscriptions.c.pk == row.subscription_pk)).first()
        owner_row = principal_store.by_pk(conn, sub.principal_pk) if sub else None
        if sub is None or owner_row is None or owner_row.disabled or not sub.webhook_url:
            return Outcome("dead", error="the subscription, its owner or its webhook is gone")
        owner = principal_store.to_principal(owner_row, settings.tiers)
        raws = [r.raw for r in conn.execute(
            sa.select(objects.c.raw).where(objects.c.date_added.in_(row.date_added),
                                           access.visible(owner))
            .order_by(objects.c.date_added))]
    if not raws:
        return Outcome("dropped", error="none of the objects is visible to the owner any more")
    policy = outbound.policy(settings)
    try:
        webhooks.check(sub.webhook_url, policy, settings.webhooks.allow_http_hosts)
    except webhooks.UnsafeWebhook as exc:
        return Outcome("dead", error=str(exc))
    return _send(sub.webhook_url, policy, bundle(row.id, raws), row.id,
                 sub.webhook_secret or "", settings.webhooks.timeout_seconds)


def _send(url: str, policy: outbound.Policy, body: bytes, delivery_id: str, secret: str,
          timeout: float) -> Outcome:
    headers = {"Content-Type": "application/stix+json;version=2.1",
               "User-Agent": "infoshare-webhook/1", "X-Infoshare-Delivery": delivery_id,
               "X-Infoshare-Signature": webhooks.signature(secret, body)}
    try:
        response = webhooks.post(url, policy, body, headers, timeout)
    except outbound.Refused as exc:  # its host now resolves somewhere it may not go
        return Outcome("dead", error=str(exc)[:900])
    except (requests.RequestException, OSError) as exc:
        return Outcome("pending", error=f"{type(exc).__name__}: {exc}"[:900])
    if 200 <= response.status < 300:
        return Outcome("delivered", response.status)
    if response.status >= 500 or response.status in RETRYABLE_4XX:
        return Outcome("pending", response.status, f"HTTP {response.status}")
    return Outcome("dead", response.status, f"HTTP {response.status}: the receiver refused it")


def finish(engine: Engine, settings: Settings, row: Row, outcome: Outcome) -> None:
    """Record an attempt (counted when it was claimed), if the lease is still ours."""
    now = timestamps.now_us()
    attempts = row.attempts
    state = outcome.state
    if state == "pending" and attempts >= settings.webhooks.max_attempts:
        state = "dead"
    backoff = settings.webhooks.retry_base_seconds * 1_000_000 * 2 ** (attempts - 1)
    values = {"state": state, "lease_until_us": 0, "lease_holder": None,
              "last_status": outcome.status, "last_error": outcome.error or None,
              "next_attempt_us": now + int(min(backoff, MAX_BACKOFF_US))}
    if state == "delivered":
        values["delivered_us"] = now
    with write(engine) as conn:
        ours = conn.execute(deliveries.update().where(
            deliveries.c.id == row.id, deliveries.c.lease_until_us == row.lease_until_us)
            .values(**values)).rowcount
        if ours and state != "pending":
            audit.record(conn, "service", f"delivery-{state}", row.id,
                         subscription_pk=row.subscription_pk, attempts=attempts,
                         status=outcome.status, error=outcome.error)
        elif not ours:
            log.warning("delivery %s: lease lost while sending", row.id)


def retry(engine: Engine, delivery_ids: list[str] | None = None) -> int:
    """Queue dead (or given) deliveries again from the first attempt."""
    with write(engine) as conn:
        query = deliveries.update().values(state="pending", attempts=0, lease_until_us=0,
                                           lease_holder=None,
                                           next_attempt_us=timestamps.now_us())
        if delivery_ids:
            query = query.where(deliveries.c.id.in_(delivery_ids))
        else:
            query = query.where(deliveries.c.state == "dead")
        return conn.execute(query).rowcount
