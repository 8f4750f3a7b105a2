"""Subscriptions: a principal's standing filters, their personal collections and webhooks."""

from __future__ import annotations

from flask import current_app, g, jsonify
from marshmallow import ValidationError

from distribution import webhooks

from .. import outbound, timestamps
from ..schemas import SubscriptionSchema, dump_subscription, subscription_columns
from ..store import audit
from ..store import subscriptions as store
from ..store.engine import read, write
from ..store.schema import deliveries
from .body import json_object
from .bulletins import bp
from .errors import ApiError


def _svc():
    return current_app.extensions["infoshare"]


def _load(partial: bool) -> dict:
    data = json_object("subscription")
    try:
        loaded = SubscriptionSchema().load(data, partial=partial)
    except ValidationError as exc:
        raise ApiError(400, "invalid subscription", "see fields", fields=exc.messages) from None
    if loaded.get("webhook_url"):
        try:
            settings = _svc().settings
            webhooks.check(loaded["webhook_url"], outbound.policy(settings),
                           settings.webhooks.allow_http_hosts)
        except webhooks.UnsafeWebhook as exc:
            raise ApiError(400, "invalid subscription", "see fields",
                           fields={"webhook_url": [str(exc)]}) from None
    return subscription_columns(loaded)


def _owned(conn, ident: str):
    row = store.by_id(conn, ident)
    # Owner only, admins included: a subscription's webhook receives what its owner may
    # see, so letting anyone else change it would hand them the owner's clearance.
    if row is None or row.principal_pk != g.principal.pk:
        raise ApiError(404, "not found", f"no subscription {ident!r}")
    return row


@bp.post("/subscriptions")
def create_subscription():
    columns = _load(partial=False)
    cap = _svc().settings.subscriptions.max_per_principal
    with write(_svc().engine) as conn:
        if len(store.of_principal(conn, g.principal.pk)) >= cap:
            raise ApiError(409, "too many subscriptions",
                           f"a principal may hold {cap} subscriptions "
                           f"(subscriptions.max_per_principal); delete one first")
        row = store.create(conn, g.principal.pk, columns)
        audit.record(conn, g.principal.name, "subscribe", row.id, name=row.name)
    response = jsonify(dump_subscription(row))
    response.status_code = 201
    return response


@bp.get("/subscriptions")
def list_subscriptions():
    with read(_svc().engine) as conn:
        rows = store.of_principal(conn, g.principal.pk)
    return jsonify({"subscriptions": [dump_subscription(r) for r in rows]})


@bp.get("/subscriptions/<ident>")
def get_subscription(ident: str):
    with read(_svc().engine) as conn:
        row = _owned(conn, ident)
        recent = conn.execute(deliveries.select().where(deliveries.c.subscription_pk == row.pk)
                              .order_by(deliveries.c.created_us.desc()).limit(20)).all()
    return jsonify({**dump_subscription(row), "deliveries": [describe_delivery(d)
                                                             for d in recent]})


def describe_delivery(row) -> dict:
    return {"id": row.id, "state": row.state, "attempts": row.attempts,
            "objects": len(row.date_added), "last_status": row.last_status,
            "last_error": row.last_error, "created": timestamps.format_us(row.created_us),
            "next_attempt": timestamps.format_us(row.next_attempt_us)
            if row.state == "pending" else None,
            "delivered": timestamps.format_us(row.delivered_us) if row.delivered_us else None}


@bp.patch("/subscriptions/<ident>")
def update_subscription(ident: str):
    columns = _load(partial=True)
    with write(_svc().engine) as conn:
        row = _owned(conn, ident)
        if columns.get("webhook_url") and not (columns.get("webhook_secret")
                                               or row.webhook_secret):
            raise ApiError(400, "invalid subscription", "see fields", fields={
                "webhook_secret": ["a webhook needs a webhook_secret"]})
        row = store.update(conn, row.pk, columns)
        audit.record(conn, g.principal.name, "subscription-update", row.id,
                     changed=sorted(columns))
    return jsonify(dump_subscription(row))


@bp.delete("/subscriptions/<ident>")
def delete_subscription(ident: str):
    with write(_svc().engine) as conn:
        row = _owned(conn, ident)
        store.delete(conn, row.pk)
        audit.record(conn, g.principal.name, "unsubscribe", row.id, name=row.name)
    return "", 204
