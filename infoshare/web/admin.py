"""The admin area's principals list and its "add a principal" form.

Every change goes through store/accounts.py, the functions the CLI's `infoshare principals`
commands call, with the same rules and the same audit entries (the actor is the admin's
name rather than "operator"). A new principal's API key is shown once, on the page that
answers the POST, and never again; no password or key hash is ever read into a page.
"""

from __future__ import annotations

from flask import render_template, request

from .. import sectors
from ..store import accounts
from ..store import principals as principal_store
from ..store.engine import read, write
from . import principal_form
from .blueprint import bp
from .common import principal, svc
from .identity import admin_required


def clearance_choices() -> dict:
    """What the clearance fields offer: the configured tiers and compartments."""
    settings = svc().settings
    return {"tiers": settings.tiers.names(), "all_compartments": settings.compartments,
            "sectors": sectors.SECTORS, "roles": ("reader", "publisher", "admin")}


def _page(values: dict, errors: dict | None = None):
    with read(svc().engine) as conn:
        rows = [principal_store.describe(row) for row in principal_store.all_rows(conn)]
    return render_template("admin_principals.html", rows=rows, values=values,
                           errors=errors or {}, **clearance_choices())


@bp.get("/admin/principals")
@admin_required
def admin_principals():
    return _page(principal_form.empty())


@bp.post("/admin/principals")
@admin_required
def admin_principal_add():
    values = principal_form.from_form(request.form)
    try:
        with write(svc().engine) as conn:
            principal_id, key = accounts.add(
                conn, svc().settings, principal().name, name=values["name"],
                org=values["org"], **principal_form.clearance(values))
    except accounts.AccountError as exc:
        return _page(values, {exc.field or "_form": [str(exc)]}), 422
    from .admin_principal import page  # one page shows a principal, with or without a key

    return page(principal_id, new_key=key, created=True), 201
