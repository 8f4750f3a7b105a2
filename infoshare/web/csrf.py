"""CSRF protection: one random token per session, put in every form and compared on every
POST to the console.

The token lives in the signed session cookie, which another site can neither read nor
forge; SameSite=Lax already keeps most cross-site POSTs from carrying the cookie, and this
check covers the rest (older browsers, same-site subdomains). A log-in rotates the token.
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"
_KEY = "csrf"


def token() -> str:
    """This session's token, created on first use (the log-in form needs one too)."""
    value = session.get(_KEY)
    if not value:
        value = session[_KEY] = secrets.token_urlsafe(32)
    return value


def rotate() -> None:
    session[_KEY] = secrets.token_urlsafe(32)


def check() -> None:
    """Refuse a POST whose form does not carry this session's token."""
    expected = session.get(_KEY, "")
    sent = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "This form was not sent from this console, or your session has expired. "
                   "Reload the page and try again.")
