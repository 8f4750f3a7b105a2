"""The service's front door: `/` and `/favicon.ico`, outside the console's /console prefix.

`/` is a small page that links what a visitor may be looking for (the console, TAXII
discovery, the public keys); nothing on it depends on who is asking. The icon is the
console's own, so a browser's automatic request for it finds one instead of a 404.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, render_template, send_from_directory

from . import blueprint

landing_bp = Blueprint("landing", __name__, template_folder="templates")
STATIC = Path(__file__).parent / "static"


@landing_bp.get("/")
def landing():
    return render_template("landing.html")


@landing_bp.get("/favicon.ico")
def favicon():
    return send_from_directory(STATIC, "favicon.ico",
                               mimetype="image/vnd.microsoft.icon", max_age=86_400)


@landing_bp.after_request
def _headers(response: Response) -> Response:
    return blueprint.security_headers(response)
