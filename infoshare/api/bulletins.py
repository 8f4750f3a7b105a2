"""Bulletins: publish, list, read and revoke the analyst's notices."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, current_app, g, jsonify, request
from marshmallow import ValidationError

from .. import publish, sectors, tiers, timestamps
from ..notices import KINDS
from ..schemas import load_bulletin
from ..store import notices as notice_store
from ..store.engine import read
from .body import json_object
from .errors import ApiError, render

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.register_error_handler(ApiError, render)


def _svc():
    return current_app.extensions["infoshare"]


@bp.before_request
def _authenticate() -> None:
    principal = _svc().authenticator.authenticate(request.headers.get("Authorization"),
                                                  request.remote_addr)  # or Throttled: 429
    if principal is None:
        raise ApiError(401, "authentication required",
                       "send HTTP Basic credentials or Authorization: Bearer <api key>")
    g.principal = principal
    _json_only()


def _json_only() -> None:
    """Every change is a JSON request, even one without a body (send `{}`).

    A browser's cross-site form can only send form or text bodies, and it would carry
    the user's cached HTTP Basic credentials; refusing those types (415) keeps another
    site from acting through the API with them.
    """
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and not request.is_json:
        raise ApiError(415, "unsupported media type",
                       "send Content-Type: application/json (an empty change sends {})")


def _require_publisher() -> None:
    if not g.principal.has_role("publisher", "admin"):
        raise ApiError(403, "forbidden", "publishing needs the publisher or admin role")


def _published(result: publish.Published, status: int):
    response = jsonify({"id": result.report_id, "version": result.version,
                        "objects": result.object_ids, "stored": result.stored,
                        "unchanged": result.unchanged})
    response.status_code = status
    return response


@bp.post("/bulletins")
def create_bulletin():
    _require_publisher()
    try:
        notice = load_bulletin(json_object("bulletin"), _svc().settings.compartments)
    except ValidationError as exc:
        raise ApiError(400, "invalid bulletin", "see fields", fields=exc.messages) from None
    notice = replace(notice, org=g.principal.org)  # source_ids are per organisation
    _may_update(notice)
    try:
        result = publish.publish_notice(_svc().engine, _svc().authority(),
                                        _svc().settings.tiers, notice, g.principal)
    except publish.IdTaken as exc:
        raise ApiError(409, "id taken", str(exc)) from None
    return _published(result, 201 if result.created else 200)


def _may_update(notice) -> None:
    """Re-using a source_id updates your organisation's bulletin of that source_id, when
    you may see it; another organisation's source_ids are invisible here (no oracle)."""
    if not notice.source_id:
        return
    with read(_svc().engine) as conn:
        existing = notice_store.by_source(conn, notice.source, notice.org, notice.source_id)
        visible = existing is None or notice_store.get(conn, g.principal, existing.report_id)
    if not visible:
        raise ApiError(409, "source_id unavailable",
                       "your organisation has a bulletin with this source_id that you "
                       "may not see; choose another source_id")
    if existing is not None and existing.revoked:
        raise ApiError(409, "bulletin revoked",
                       "this source_id's bulletin is revoked, and a revoked STIX object "
                       "cannot come back; publish a new bulletin with another source_id")


@bp.get("/bulletins")
def list_bulletins():
    args = request.args
    sector, tlp, kind = args.get("sector"), args.get("tlp"), args.get("kind")
    if sector and sector not in sectors.CODES:
        raise ApiError(400, "invalid filter", f"unknown sector {sector!r}")
    if tlp and tlp not in tiers.TLP_LEVELS:
        raise ApiError(400, "invalid filter", f"unknown tlp {tlp!r}")
    if kind and kind not in KINDS:
        raise ApiError(400, "invalid filter", f"unknown kind {kind!r}")
    since = _time_arg("since")
    limit = _int_arg("limit", 100, 1000)
    with read(_svc().engine) as conn:
        rows = notice_store.listing(conn, g.principal,
                                    sector_bit=sectors.bit(sector) if sector else None,
                                    tlp=tlp, kind=kind, since_us=since, limit=limit)
    return jsonify({"bulletins": [summary(row) for row in rows]})


def _time_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        return timestamps.parse_us(value)
    except timestamps.BadTimestamp as exc:
        raise ApiError(400, "invalid filter", f"{name}: {exc}") from None


def _int_arg(name: str, default: int, maximum: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= maximum:
        raise ApiError(400, "invalid filter", f"{name} must be between 1 and {maximum}")
    return int(value)


def summary(row) -> dict:
    return {
        "id": row.report_id, "title": row.title, "kind": row.kind, "tlp": row.tlp,
        "severity": row.severity,
        "sectors": "all" if row.all_sectors else sectors.codes(row.sector_mask),
        "revoked": row.revoked, "source": row.source, "source_id": row.source_id,
        "created": timestamps.format_stix(row.created_us), "version": row.version,
    }


@bp.get("/bulletins/<report_id>")
def get_bulletin(report_id: str):
    with read(_svc().engine) as conn:
        row = notice_store.get(conn, g.principal, report_id)
    if row is None:
        raise ApiError(404, "not found", f"no bulletin {report_id!r}")
    return jsonify({**summary(row), "objects": row.object_ids, "bulletin": row.document})


@bp.post("/bulletins/<report_id>/revoke")
def revoke_bulletin(report_id: str):
    _require_publisher()
    svc = _svc()
    try:
        row = publish.manageable(svc.engine, g.principal, report_id)
        result = publish.revoke_notice(svc.engine, svc.authority(), svc.settings.tiers,
                                       g.principal, row, svc.settings.compartments)
    except publish.UnknownNotice:
        raise ApiError(404, "not found", f"no bulletin {report_id!r}") from None
    except publish.NotYours:
        raise ApiError(403, "forbidden", "only publishers of the organisation that owns this "
                       "bulletin, or an admin, may revoke it") from None
    except publish.IdTaken as exc:
        raise ApiError(409, "id taken", str(exc)) from None
    return _published(result, 200)
