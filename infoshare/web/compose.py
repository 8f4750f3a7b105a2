"""Compose a new bulletin, or update one (a new version with the same source id): preview
the STIX it would publish, publish it, or show each field's errors next to the field.

The form becomes the API's bulletin JSON (bulletin_form) and schemas.load_bulletin judges
it, so the console accepts exactly what the API accepts.
"""

from __future__ import annotations

from dataclasses import replace

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from .. import notices, publish, sectors, tiers
from ..schemas import load_bulletin
from ..store import notices as notice_store
from ..store.engine import read
from . import bulletin_form, form_errors, preview
from .blueprint import bp
from .bulletin_page import managed_notice
from .common import principal, svc
from .identity import publisher_required

SOURCE = "bulletin"


@bp.route("/bulletins/new", methods=["GET", "POST"])
@publisher_required
def compose():
    if request.method == "GET":
        return _page(bulletin_form.empty())
    return _submit(bulletin_form.from_form(request.form), None)


@bp.route("/bulletins/<report_id>/edit", methods=["GET", "POST"])
@publisher_required
def update(report_id: str):
    row = _editable(report_id)
    if request.method == "GET":
        return _page(bulletin_form.from_document(row.document), row)
    values = bulletin_form.from_form(request.form)
    values["source_id"] = row.source_id  # the stored one: an update cannot move elsewhere
    return _submit(values, row)


def _editable(report_id: str):
    row = managed_notice(report_id)
    if row.source != SOURCE:
        abort(409, "This notice comes from a feed; the feed keeps it up to date.")
    if row.revoked:
        abort(409, "This bulletin is revoked; a revoked STIX object cannot come back. "
                   "Compose a new bulletin instead.")
    return row


def _submit(values: dict, row):
    draft = bulletin_form.to_json(values)
    errors, notice = dict(draft.problems), None
    try:
        notice = load_bulletin(draft.document, svc().settings.compartments, source=SOURCE)
        # source_ids are per organisation: an update stays with the bulletin's own.
        notice = replace(notice, org=row.org if row is not None else principal().org)
    except ValidationError as exc:
        errors = form_errors.merge(errors, form_errors.by_field(exc.messages,
                                                                draft.indicator_lines))
    if notice is not None and row is None:
        errors = form_errors.merge(errors, _source_id_taken(notice))
    if errors or notice is None:
        return _page(values, row, errors=errors), 422
    if request.form.get("action") == "publish":
        return _publish(notice, row)
    return _page(values, row, preview=preview.build(notice, svc().ids))


def _source_id_taken(notice: notices.Notice) -> dict[str, list[str]]:
    """A new bulletin may not reuse one of its organisation's source ids: that would
    silently update another bulletin. Updates go through its own page. Other
    organisations' source ids are theirs alone and never consulted (no oracle)."""
    if not notice.source_id:
        return {}
    with read(svc().engine) as conn:
        taken = notice_store.by_source(conn, SOURCE, notice.org,
                                       notice.source_id) is not None
    return {"source_id": ["a bulletin with this source id exists; open it and use Update"]} \
        if taken else {}


def _publish(notice: notices.Notice, row):
    s = svc()
    try:
        result = publish.publish_notice(s.engine, s.authority(), s.settings.tiers, notice,
                                        principal())
    except publish.IdTaken as exc:
        abort(409, str(exc))
    if row is None:
        flash(f"Published, with {len(result.object_ids)} STIX objects.", "success")
    elif result.stored:
        flash(f"Published version {result.version}: {result.stored} object(s) changed.",
              "success")
    else:
        flash("Nothing changed, so no new version was published.", "info")
    return redirect(url_for("console.bulletin", report_id=result.report_id))


def _page(values: dict, row=None, errors: dict | None = None, preview=None):
    return render_template(
        "compose.html", values=values, row=row, errors=errors or {}, preview=preview,
        sectors=sectors.SECTORS, kinds=notices.KINDS, tlps=tiers.TLP_LEVELS,
        severities=notices.SEVERITIES, urgencies=notices.URGENCIES,
        certainties=notices.CERTAINTIES, categories=notices.CAP_CATEGORIES,
        compartments=svc().settings.compartments)
