"""One principal in the admin area: its clearance (tier, sectors, compartments, roles),
enable/disable, a new password, its API keys (create: shown once; revoke), and the audit
entries about it. Each change is a store/accounts.py call, as the CLI makes it.

An admin may not disable itself or take away its own admin role here: the console would
lock out the one doing it. Another admin, or the CLI, can.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ..store import accounts, audit
from ..store import principals as principal_store
from ..store.engine import read, write
from . import principal_form
from .admin import clearance_choices
from .blueprint import bp
from .common import principal, svc
from .identity import admin_required

AUDIT_SHOWN = 20


def _row(principal_id: str):
    with read(svc().engine) as conn:
        row = principal_store.by_id(conn, principal_id)
    if row is None:
        abort(404)
    return row


def page(principal_id: str, *, values: dict | None = None, errors: dict | None = None,
         new_key: str | None = None, created: bool = False):
    row = _row(principal_id)
    with read(svc().engine) as conn:
        keys = [principal_store.describe_key(k) for k in principal_store.keys_of(conn, row.pk)]
        entries = audit.search(conn, target=row.name, limit=AUDIT_SHOWN)
    return render_template(
        "admin_principal.html", who=principal_store.describe(row), pid=row.id,
        values=values or principal_form.from_row(row), errors=errors or {}, keys=keys,
        entries=entries, new_key=new_key, created=created, is_self=row.pk == principal().pk,
        min_password=accounts.MIN_PASSWORD, **clearance_choices())


@bp.get("/admin/principals/<principal_id>")
@admin_required
def admin_principal(principal_id: str):
    return page(principal_id)


@bp.post("/admin/principals/<principal_id>")
@admin_required
def admin_principal_update(principal_id: str):
    row = _row(principal_id)
    values = {**principal_form.from_form(request.form), "name": row.name, "org": row.org}
    if row.pk == principal().pk and "admin" not in values["roles"]:
        return page(principal_id, values=values, errors={"roles": [
            "you cannot take away your own admin role; another admin or the CLI can"]}), 422
    try:
        with write(svc().engine) as conn:
            changed = accounts.update(conn, svc().settings, principal().name, row.name,
                                      **principal_form.clearance(values))
    except accounts.AccountError as exc:
        return page(principal_id, values=values,
                    errors={exc.field or "_form": [str(exc)]}), 422
    flash(f"Changed: {', '.join(changed)}." if changed else "Nothing changed.",
          "success" if changed else "info")
    return redirect(url_for("console.admin_principal", principal_id=principal_id))


@bp.post("/admin/principals/<principal_id>/disable")
@admin_required
def admin_principal_disable(principal_id: str):
    return _set_disabled(principal_id, True)


@bp.post("/admin/principals/<principal_id>/enable")
@admin_required
def admin_principal_enable(principal_id: str):
    return _set_disabled(principal_id, False)


def _set_disabled(principal_id: str, disabled: bool):
    row = _row(principal_id)
    if disabled and row.pk == principal().pk:
        flash("You cannot disable yourself; another admin or the CLI can.", "warning")
    else:
        with write(svc().engine) as conn:
            accounts.set_disabled(conn, principal().name, row.name, disabled)
        done = "disabled: its keys, password and sessions stopped" if disabled else "enabled"
        flash(f"{row.name} is {done}.", "success")
    return redirect(url_for("console.admin_principal", principal_id=principal_id))


@bp.post("/admin/principals/<principal_id>/password")
@admin_required
def admin_principal_password(principal_id: str):
    row = _row(principal_id)
    try:
        with write(svc().engine) as conn:
            accounts.set_password(conn, svc().settings, principal().name, row.name,
                                  request.form.get("password", ""))
    except accounts.AccountError as exc:
        return page(principal_id, errors={exc.field or "_form": [str(exc)]}), 422
    flash(f"{row.name} has a new password; its console sessions ended.", "success")
    return _back(row, principal_id)


def _back(row, principal_id: str):
    """Back to the principal's page; to the log-in page when the change ended the admin's
    own session (its own new password or revoked key)."""
    if row.pk == principal().pk:
        return redirect(url_for("console.login"))
    return redirect(url_for("console.admin_principal", principal_id=principal_id))


@bp.post("/admin/principals/<principal_id>/keys")
@admin_required
def admin_key_add(principal_id: str):
    row = _row(principal_id)
    with write(svc().engine) as conn:
        key, _ = accounts.new_key(conn, svc().settings, principal().name, row.name)
    return page(principal_id, new_key=key), 201  # shown here, once: never stored in clear


@bp.post("/admin/principals/<principal_id>/keys/<key_id>/revoke")
@admin_required
def admin_key_revoke(principal_id: str, key_id: str):
    row = _row(principal_id)
    try:
        with write(svc().engine) as conn:
            accounts.revoke_key(conn, principal().name, row.name, key_id)
    except accounts.AccountError:
        abort(404)
    flash(f"Key {key_id} of {row.name} is revoked.", "success")
    return _back(row, principal_id)
