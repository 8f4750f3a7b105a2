"""Console views (placeholder until the console lands)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")


@bp.get("/")
def index():
    return "infoshare console"
