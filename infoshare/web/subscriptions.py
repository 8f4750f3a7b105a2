"""The subscriptions page: the logged-in principal's own subscriptions (create, pause,
resume, delete), their webhook delivery status, and dead letters with a retry button.

Every action acts only on the principal's own subscriptions and deliveries; anyone else's
answer 404, as if they did not exist.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from distribution import delivery

from .. import notices, sectors, tiers
from ..schemas import dump_subscription
from ..store import audit
from ..store import subscriptions as store
from ..store.engine import read, write
from . import deliveries, geo, subscription_form
from .blueprint import bp
from .common import principal, svc
from .identity import login_required


def _page(values: dict, errors: dict | None = None):
    with read(svc().engine) as conn:
        items = [{"sub": dump_subscription(row), "recent": deliveries.recent(conn, row.pk),
                  "dead": deliveries.dead(conn, row.pk),
                  "counts": deliveries.counts(conn, row.pk)}
                 for row in store.of_principal(conn, principal().pk)]
    return render_template("subscriptions.html", items=items, values=values,
                           errors=errors or {}, sectors=sectors.SECTORS, kinds=notices.KINDS,
                           severities=notices.SEVERITIES[:-1], tlps=tiers.TLP_LEVELS,
                           draw_view=geo.VIEWS["us"], draw_land=geo.land_path("us"))


@bp.get("/subscriptions")
@login_required
def subscriptions():
    return _page(subscription_form.empty())


@bp.post("/subscriptions")
@login_required
def subscription_create():
    values = subscription_form.from_form(request.form)
    columns, errors = subscription_form.columns(values, svc().settings)
    if columns is None:
        return _page(values, errors), 422
    with write(svc().engine) as conn:
        row = store.create(conn, principal().pk, columns)
        audit.record(conn, principal().name, "subscribe", row.id, name=row.name)
    flash(f"Subscription {row.name!r} created.", "success")
    return redirect(url_for("console.subscriptions"))


def _own(conn, ident: str):
    row = store.by_id(conn, ident)
    if row is None or row.principal_pk != principal().pk:
        abort(404, "No such subscription of yours.")
    return row


@bp.post("/subscriptions/<ident>/pause")
@login_required
def subscription_pause(ident: str):
    return _set_paused(ident, True)


@bp.post("/subscriptions/<ident>/resume")
@login_required
def subscription_resume(ident: str):
    return _set_paused(ident, False)


def _set_paused(ident: str, paused: bool):
    with write(svc().engine) as conn:
        row = store.update(conn, _own(conn, ident).pk, {"paused": paused})
        audit.record(conn, principal().name, "subscription-update", row.id, changed=["paused"])
    flash(f"Subscription {row.name!r} {'paused' if paused else 'resumed'}.", "success")
    return redirect(url_for("console.subscriptions"))


@bp.post("/subscriptions/<ident>/delete")
@login_required
def subscription_delete(ident: str):
    with write(svc().engine) as conn:
        row = _own(conn, ident)
        store.delete(conn, row.pk)
        audit.record(conn, principal().name, "unsubscribe", row.id, name=row.name)
    flash(f"Subscription {row.name!r} deleted.", "success")
    return redirect(url_for("console.subscriptions"))


@bp.post("/subscriptions/<ident>/retry")
@login_required
def subscription_retry(ident: str):
    """Queue the chosen dead letters (all of them with "retry all") for delivery again."""
    with read(svc().engine) as conn:
        row = _own(conn, ident)
        wanted = ([d.id for d in deliveries.dead(conn, row.pk, limit=500)]
                  if request.form.get("all") else request.form.getlist("delivery"))
        ids = deliveries.owned_dead(conn, row.pk, wanted)
    if not ids:  # delivery.retry([]) would retry every dead letter of every subscription
        flash("Choose at least one dead letter to retry.", "warning")
    else:
        queued = delivery.retry(svc().engine, ids)
        flash(f"{queued} delivery(ies) queued again.", "success")
    return redirect(url_for("console.subscriptions"))
