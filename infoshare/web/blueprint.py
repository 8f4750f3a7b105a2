"""The console blueprint and what every console request shares: who is asking, the CSRF
check on every POST, security headers, HTML error pages and the template globals."""

from __future__ import annotations

from flask import Blueprint, Response, g, render_template, request
from werkzeug.exceptions import HTTPException

from . import csrf, display, form_errors, identity
from .common import can_publish, is_admin

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

# Everything the console loads is its own: no inline script, no third-party origin.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


# Every console URL answers OPTIONS alike: the automatic answer lists each route's own
# methods, which would tell an admin-only route from a URL no page claims (unknown.py).
_OPTIONS_ALLOW = "GET, HEAD, OPTIONS, POST"


@bp.before_request
def _who_and_csrf() -> Response | None:
    if request.method == "OPTIONS":
        return Response(status=200, headers={"Allow": _OPTIONS_ALLOW})
    g.principal = identity.load_principal()
    if request.method == "POST":
        csrf.check()
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    return security_headers(response)


def security_headers(response: Response) -> Response:
    """The console's headers, shared with the landing page (landing.py)."""
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "console.static":  # pages show what the viewer may see: no caching
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(HTTPException)
def _error_page(exc: HTTPException):
    """400, 403, 404 and friends as a console page rather than Werkzeug's bare HTML."""
    return render_template("error.html", error=exc), exc.code or 500


@bp.app_template_global()
def csrf_token() -> str:
    return csrf.token()


@bp.context_processor
def _globals() -> dict:
    who = g.get("principal")
    return {"principal": who, "publisher": can_publish(who), "admin": is_admin(who),
            "display": display, "form_errors": form_errors}
