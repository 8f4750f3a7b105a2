"""The overview: active notices the viewer may see, by sector and severity, and a map of
their locations, so the situation reads at a glance."""

from __future__ import annotations

from flask import render_template, request

from .. import timestamps
from ..notices import SEVERITIES
from ..store.engine import read
from . import geo, situation
from .blueprint import bp
from .common import principal, svc
from .identity import login_required


@bp.get("/")
@login_required
def overview():
    view = geo.VIEWS.get(request.args.get("map", ""), geo.VIEWS["world"])
    now = timestamps.now_us()
    with read(svc().engine) as conn:
        rows = situation.active(conn, principal(), now)
        expired = situation.recently_expired(conn, principal(), now)
    places, unplaced = situation.places(rows)
    dots = geo.dots(view, places)
    areas = situation.areas(expired, expired=True) + situation.areas(rows)
    return render_template(
        "overview.html", rows=rows, latest=situation.latest(rows),
        table=situation.table(rows), severities=SEVERITIES,
        view=view, views=geo.VIEWS.values(), dots=dots, offscreen=len(places) - len(dots),
        unplaced=unplaced, land=geo.land_path(view.key), counties=geo.county_path(view.key),
        shapes=geo.shapes(view, areas), grid=geo.graticule(view))
