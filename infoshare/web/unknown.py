"""Every /console/ URL no page claims: the console's own 404 page.

The admin area answers non-admins with this same page (identity.admin_required), so a URL
under /console/admin/ looks to them exactly like one that does not exist, whatever the
method: the catch-all takes every method a route does not (a 405 would list the route's
own methods), it runs after the same session and CSRF checks, and OPTIONS is answered
alike everywhere (blueprint.py).
"""

from __future__ import annotations

from flask import abort

from .blueprint import bp


@bp.route("/<path:anything>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(anything: str):
    abort(404)
