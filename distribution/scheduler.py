"""Background jobs inside each service worker (APScheduler).

Every worker runs the delivery job: twice a second it claims what its free sending
threads can take (delivery.Sender), one delivery per subscription at a time, so adding
workers adds throughput, not duplicates, and a hanging receiver holds only its own
subscription. Feeds run in exactly one process across all workers and hosts: the worker
holding the "feeds" lease schedules them, renewing it every few seconds; if it dies, the
lease expires (at once on its own host) and another worker takes over. Every second each
worker looks for TAXII envelopes queued for the background and, when one waits, starts an
`infoshare ingest-queue` process (infoshare/submissions.py). A clean shutdown hands every
lease back (stop()).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from feeds.runner import FeedBusy, holder, run_feed
from infoshare import submissions
from infoshare.store import feeds as feed_store
from infoshare.store import leases
from infoshare.store.engine import read

from .delivery import Sender

log = logging.getLogger(__name__)
LEADER_LEASE = "feeds"
LEADER_SECONDS = 20
RENEW_SECONDS = 5


class Jobs:
    def __init__(self, services):
        self.services = services
        self.scheduler = BackgroundScheduler(daemon=True)
        self.leading = False
        self.sender = Sender(services.engine, services.settings, holder())
        self.spawner = submissions.Spawner(services)

    def start(self) -> Jobs:
        self.scheduler.add_job(self._deliveries, "interval", seconds=0.5, id="deliveries",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self._ingest, "interval", seconds=1, id="ingest",
                               max_instances=1, coalesce=True)
        if any(spec.enabled for spec in self.services.settings.feeds):
            self.scheduler.add_job(self._lead, "interval", seconds=RENEW_SECONDS, id="leader",
                                   max_instances=1, coalesce=True, next_run_time=_now())
        self.scheduler.start()
        return self

    def _deliveries(self) -> None:
        try:
            self.sender.tick()
        except Exception:  # the scheduler must survive a database hiccup
            log.exception("delivery job failed")

    def _ingest(self) -> None:
        try:
            self.spawner.tick()
        except Exception:
            log.exception("cannot start the background ingest")

    def stop(self) -> None:
        """A clean shutdown: stop scheduling, finish or hand back deliveries in flight,
        and give up the feeds lease so another worker takes the feeds at once."""
        try:
            self.scheduler.shutdown(wait=False)
        except Exception:  # already stopped
            pass
        self.sender.stop()
        self.spawner.stop()
        if self.leading:
            leases.release(self.services.engine, LEADER_LEASE, holder())

    def _lead(self) -> None:
        try:
            leader = leases.acquire(self.services.engine, LEADER_LEASE, holder(), LEADER_SECONDS)
        except Exception:
            log.exception("cannot reach the database for the feeds lease")
            leader = False
        if leader and not self.leading:
            self._schedule_feeds()
        elif not leader and self.leading:
            self._unschedule_feeds()
        self.leading = leader

    def _schedule_feeds(self) -> None:
        with read(self.services.engine) as conn:
            states = feed_store.all_rows(conn)
        for spec in self.services.settings.feeds:
            if not spec.enabled:
                continue
            trigger = (CronTrigger.from_crontab(spec.cron) if spec.cron
                       else IntervalTrigger(seconds=spec.interval_seconds))
            first = {} if spec.cron else {"next_run_time": _first_run(spec, states.get(spec.name))}
            self.scheduler.add_job(self._feed, trigger, args=[spec], id=f"feed:{spec.name}",
                                   max_instances=1, coalesce=True, replace_existing=True,
                                   **first)
        log.info("this worker now runs the feeds")

    def _unschedule_feeds(self) -> None:
        for spec in self.services.settings.feeds:
            if self.scheduler.get_job(f"feed:{spec.name}"):
                self.scheduler.remove_job(f"feed:{spec.name}")

    def _feed(self, spec) -> None:
        if not leases.acquire(self.services.engine, LEADER_LEASE, holder(), LEADER_SECONDS):
            return  # leadership moved since this run was scheduled
        try:
            run_feed(self.services, spec)
        except FeedBusy as exc:
            log.info("feed %s: this scheduled run is skipped: %s", spec.name, exc)
        except Exception:
            log.exception("feed %s failed", spec.name)


def _now() -> datetime:
    return datetime.now(UTC)


def _first_run(spec, state) -> datetime:
    """When an interval feed first runs in this process: at once if it never ran (or ran
    more than its interval ago), else when its interval is up, so a restart (a deploy, a
    crash, a new leader) does not fetch every source again. Cron feeds follow their
    expression."""
    if state is None or not state.last_run_us:
        return _now()
    due = datetime.fromtimestamp(state.last_run_us / 1e6 + spec.interval_seconds, UTC)
    return max(due, _now())


_jobs: list[Jobs] = []


def start(services) -> Jobs:
    jobs = Jobs(services).start()
    _jobs.append(jobs)
    return jobs


def stop() -> None:
    """Stop this process's jobs (gunicorn's worker_exit hook calls this)."""
    while _jobs:
        _jobs.pop().stop()
