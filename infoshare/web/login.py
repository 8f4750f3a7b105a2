"""Log-in with a principal's name and password, and log-out (a POST, so another site
cannot log a user out with a link)."""

from __future__ import annotations

from flask import flash, g, make_response, redirect, render_template, request, url_for

from ..authn import Throttled
from ..store import principals as principal_store
from ..store.engine import read
from . import identity
from .blueprint import bp
from .common import svc


def verify(name: str, password: str) -> int | None:
    """The pk of the enabled principal with this name and password, else None; Throttled
    after too many failures for this name or from this client.

    An unknown name costs the same slow hash check as a known one, so the time taken does
    not reveal which names exist.
    """
    pk = svc().authenticator.check_password(name, password, request.remote_addr)
    if pk is None:
        return None
    with read(svc().engine) as conn:
        row = principal_store.by_pk(conn, pk)
    return None if row is None or row.disabled else pk


def safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site, and never
    a character that could break out of the Location header."""
    if (target and target.startswith("/console/") and not target.startswith("//")
            and target.isprintable() and "\\" not in target):
        return target
    return url_for("console.overview")


@bp.get("/login")
def login():
    if g.principal is not None:
        return redirect(safe_next(request.args.get("next")))
    return render_template("login.html", name="", error=None,
                           next=request.args.get("next", ""))


@bp.post("/login")
def login_post():
    name = request.form.get("name", "").strip()
    # The form carries ?next= both in its action and in a field, so a failed attempt (or a
    # reload of its answer) still leads where the visitor was going.
    again = request.form.get("next") or request.args.get("next", "")
    try:
        pk = verify(name, request.form.get("password", "")) if name else None
    except Throttled as exc:
        response = make_response(render_template(
            "login.html", name=name, next=again,
            error=f"Too many failed log-ins. Try again in {exc.retry_after} seconds."), 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if pk is None:
        return render_template("login.html", name=name, next=again,
                               error="That name and password do not match an active "
                                     "principal."), 401
    identity.log_in(pk)
    return redirect(safe_next(again))


@bp.post("/logout")
def logout():
    identity.log_out()
    flash("You are logged out.", "info")
    return redirect(url_for("console.login"))
