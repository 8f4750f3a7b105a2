"""Sending queued webhook deliveries: claim, send, retry with backoff, dead-letter.

Deliveries are rows written with the objects they carry, so nothing is lost when the
service or the receiver restarts. Any number of workers may run `deliver_due`: each claims
due rows by taking a lease on them in the database, so a delivery is in flight in one
place at a time. Each attempt re-applies access.py for the subscription's owner, so a
principal who lost clearance stops receiving at once.
"""

from __future__ import annotations

import logging
import uuid
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


def deliver_due(engine: Engine, settings: Settings, limit: int = 20) -> int:
    """Send what is due now; returns how many deliveries were attempted."""
    claimed = claim(engine, timestamps.now_us(), limit,
                    lease_us=int((2 * settings.webhooks.timeout_seconds + 30) * 1_000_000))
    for row in claimed:
        try:
            outcome = attempt(engine, settings, row)
        except Exception as exc:  # never let one delivery stop the others
            log.exception("delivery %s failed unexpectedly", row.id)
            outcome = Outcome("pending", error=f"internal error: {exc}")
        finish(engine, settings, row, outcome)
    return len(claimed)


def claim(engine: Engine, now: int, limit: int, lease_us: int) -> list[Row]:
    with write(engine) as conn:
        query = (sa.select(deliveries)
                 .where(deliveries.c.state == "pending", deliveries.c.next_attempt_us <= now,
                        deliveries.c.lease_until_us <= now)
                 .order_by(deliveries.c.next_attempt_us).limit(limit))
        if not is_sqlite(conn):
            query = query.with_for_update(skip_locked=True)
        rows = list(conn.execute(query))
        if rows:
            conn.execute(deliveries.update().where(deliveries.c.id.in_([r.id for r in rows]))
                         .values(lease_until_us=now + lease_us))
    return rows


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
    now = timestamps.now_us()
    attempts = row.attempts + 1
    state = outcome.state
    if state == "pending" and attempts >= settings.webhooks.max_attempts:
        state = "dead"
    backoff = settings.webhooks.retry_base_seconds * 1_000_000 * 2 ** (attempts - 1)
    values = {"state": state, "attempts": attempts, "lease_until_us": 0,
              "last_status": outcome.status, "last_error": outcome.error or None,
              "next_attempt_us": now + int(min(backoff, MAX_BACKOFF_US))}
    if state == "delivered":
        values["delivered_us"] = now
    with write(engine) as conn:
        conn.execute(deliveries.update().where(deliveries.c.id == row.id).values(**values))
        if state != "pending":
            audit.record(conn, "service", f"delivery-{state}", row.id,
                         subscription_pk=row.subscription_pk, attempts=attempts,
                         status=outcome.status, error=outcome.error)


def retry(engine: Engine, delivery_ids: list[str] | None = None) -> int:
    """Queue dead (or given) deliveries again from the first attempt."""
    with write(engine) as conn:
        query = deliveries.update().values(state="pending", attempts=0, lease_until_us=0,
                                           next_attempt_us=timestamps.now_us())
        if delivery_ids:
            query = query.where(deliveries.c.id.in_(delivery_ids))
        else:
            query = query.where(deliveries.c.state == "dead")
        return conn.execute(query).rowcount
