"""One bulletin: what it says, its STIX objects with their signature status, the versions of
its report, and the revoke action."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for

from .. import publish, sectors, timestamps
from ..store import notices as notice_store
from ..store.engine import read
from . import stix_objects, timeline
from .blueprint import bp
from .common import principal, svc
from .identity import login_required, publisher_required

NOT_VISIBLE = "No such bulletin, or not one you may see."


def visible_notice(report_id: str):
    """The notice row if the viewer may see its current report; 404 otherwise, so a reader
    cannot tell a hidden bulletin from one that does not exist."""
    with read(svc().engine) as conn:
        row = notice_store.get(conn, principal(), report_id)
    if row is None:
        abort(404, NOT_VISIBLE)
    return row


@bp.get("/bulletins/<report_id>")
@login_required
def bulletin(report_id: str):
    keys = svc().keyring.public_keys()
    with read(svc().engine) as conn:
        row = notice_store.get(conn, principal(), report_id)
        if row is None:
            abort(404, NOT_VISIBLE)
        objects = stix_objects.latest(conn, principal(), list(row.object_ids), keys)
        versions = stix_objects.history(conn, principal(), report_id, keys)
    issued = row.issued_us or row.created_us  # the source's issue time, else ours
    valid = timeline.validity(row.revoked, row.document, row.modified_us, timestamps.now_us())
    return render_template(
        "bulletin.html", row=row, doc=row.document, objects=objects, versions=versions,
        sector_codes=sectors.codes(row.sector_mask), valid=valid,
        may_manage=publish.may_manage(principal(), row), issued_us=issued,
        event_us=timeline.event_us(row.document, issued))


@bp.post("/bulletins/<report_id>/revoke")
@publisher_required
def revoke(report_id: str):
    row = managed_notice(report_id)
    if row.revoked:
        flash("This bulletin was revoked already.", "info")
        return redirect(url_for("console.bulletin", report_id=report_id))
    s = svc()
    result = publish.revoke_notice(s.engine, s.authority(), s.settings.tiers, principal(),
                                   row, s.settings.compartments)
    flash(f"Revoked: {result.stored} object(s) published as revoked.", "success")
    return redirect(url_for("console.bulletin", report_id=report_id))


def managed_notice(report_id: str):
    """The notice row if the viewer may change it (publish.may_manage): 404 when it may not
    see it, 403 when it may see but not change it."""
    try:
        return publish.manageable(svc().engine, principal(), report_id)
    except publish.UnknownNotice:
        abort(404, NOT_VISIBLE)
    except publish.NotYours:
        abort(403, "Only publishers of the organisation that owns this bulletin, or an "
                   "admin, may change it.")
