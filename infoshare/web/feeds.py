"""The feeds page: each configured feed's schedule, last run, last success, counts and last
error (feeds.runner.status), and a "run now" button for publishers and admins."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for

from feeds import runner

from .. import outbound
from . import display, feed_jobs
from .blueprint import bp
from .common import svc
from .identity import publisher_required


@bp.get("/feeds")
@publisher_required  # feed URLs, errors and item names are operators' business
def feeds():
    specs = {spec.name: spec for spec in svc().settings.feeds}
    return render_template("feeds.html", feeds=[_shown(f, specs.get(f["name"]))
                                                for f in runner.status(svc())])


def _shown(feed: dict, spec) -> dict:
    """A feed's status without the credentials its URL may carry (the CLI shows them), its
    schedule in words."""
    errors = [{**e, "item": outbound.redact(e["item"]), "message": outbound.redact(e["message"])}
              for e in feed.get("errors") or []]
    schedule = feed["schedule"]
    if spec is not None:
        schedule = f"cron {spec.cron}" if spec.cron else display.every(spec.interval_seconds)
    return {**feed, "url": outbound.redact(feed.get("url") or ""), "errors": errors,
            "schedule": schedule,
            "last_error": outbound.redact(feed["last_error"]) if feed.get("last_error")
            else feed.get("last_error")}


@bp.post("/feeds/<name>/run")
@publisher_required
def run_feed(name: str):
    spec = next((f for f in svc().settings.feeds if f.name == name), None)
    if spec is None:
        abort(404, f"No feed named {name!r} is configured.")
    try:
        feed_jobs.start(svc(), spec)
    except runner.FeedBusy as exc:
        flash(f"Not started: {exc}. Try again when it has finished.", "warning")
    else:
        flash(f"Feed {name} is running in the background. Reload this page to see its "
              "result.", "success")
    return redirect(url_for("console.feeds"))
