"""Who is logged in.

The session cookie holds a random token; the session itself lives on the server
(store/sessions.py), so log-out ends it for every copy of the cookie, and disabling a
principal, changing its password or revoking one of its keys ends its sessions at once.
The principal is read from the store on every request, so a change of roles or tier takes
effect on its next click, and a session ends after MAX_AGE_SECONDS whatever happens.
"""

from __future__ import annotations

from functools import wraps

from flask import abort, g, redirect, request, session, url_for

from .. import access
from ..store import principals as principal_store
from ..store import sessions as session_store
from ..store.engine import read, write
from . import csrf
from .common import can_publish, svc

MAX_AGE_SECONDS = 12 * 3600
_TOKEN = "session"


def load_principal() -> access.Principal | None:
    """The session's principal, or None (and a cleared session) when it may not go on."""
    token = session.get(_TOKEN)
    if token is None:
        return None
    with read(svc().engine) as conn:
        pk = session_store.principal_of(conn, token) if isinstance(token, str) else None
        row = principal_store.by_pk(conn, pk) if pk is not None else None
    try:
        who = principal_store.to_principal(row, svc().settings.tiers) if row else None
    except ValueError:  # its tier was removed from the configuration
        who = None
    if who is None or row.disabled:
        session.clear()
        return None
    return who


def log_in(pk: int) -> None:
    """A fresh session (no fixation: nothing from before the log-in survives)."""
    session.clear()
    with write(svc().engine) as conn:
        session[_TOKEN] = session_store.start(conn, pk, MAX_AGE_SECONDS)
    csrf.rotate()


def log_out() -> None:
    token = session.get(_TOKEN)
    if isinstance(token, str):
        with write(svc().engine) as conn:
            session_store.end(conn, token)
    session.clear()


def login_required(view):
    """Send anonymous visitors to the log-in page, then back to where they were going."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("principal") is None:
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("console.login", next=target))
        return view(*args, **kwargs)
    return wrapper


def publisher_required(view):
    """Readers get 403: they never see the forms that publish, revoke or run feeds."""
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not can_publish(g.principal):
            abort(403, "This needs the publisher or admin role.")
        return view(*args, **kwargs)
    return wrapper


def admin_required(view):
    """The admin area is for role admin alone. To anyone else, logged in or not, its URLs
    answer exactly as a URL that does not exist (unknown.py): the same 404 page, so
    nobody learns the area is there."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        who = g.get("principal")
        if who is None or not who.has_role("admin"):
            abort(404)
        return view(*args, **kwargs)
    return wrapper
