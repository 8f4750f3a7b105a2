"""Background jobs inside each service worker (APScheduler).

Every worker runs the delivery job; the database leases in delivery.claim make sure each
delivery is sent by one worker at a time, so adding workers adds throughput, not
duplicates. Feeds run in exactly one process across all workers and hosts: the worker
holding the "feeds" lease schedules them, renewing it every few seconds; if it dies, the
lease expires and another worker takes over.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from feeds.runner import FeedBusy, holder, run_feed
from infoshare.store import leases

from .delivery import deliver_due

log = logging.getLogger(__name__)
LEADER_LEASE = "feeds"
LEADER_SECONDS = 20
RENEW_SECONDS = 5


class Jobs:
    def __init__(self, services):
        self.services = services
        self.scheduler = BackgroundScheduler(daemon=True)
        self.leading = False

    def start(self) -> Jobs:
        self.scheduler.add_job(self._deliveries, "interval", seconds=1, id="deliveries",
                               max_instances=1, coalesce=True)
        if any(spec.enabled for spec in self.services.settings.feeds):
            self.scheduler.add_job(self._lead, "interval", seconds=RENEW_SECONDS, id="leader",
                                   max_instances=1, coalesce=True, next_run_time=_now())
        self.scheduler.start()
        return self

    def _deliveries(self) -> None:
        try:
            while deliver_due(self.services.engine, self.services.settings) > 0:
                pass
        except Exception:  # the scheduler must survive a database hiccup
            log.exception("delivery job failed")

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
        for spec in self.services.settings.feeds:
            if not spec.enabled:
                continue
            trigger = (CronTrigger.from_crontab(spec.cron) if spec.cron
                       else IntervalTrigger(seconds=spec.interval_seconds))
            self.scheduler.add_job(self._feed, trigger, args=[spec], id=f"feed:{spec.name}",
                                   max_instances=1, coalesce=True, next_run_time=_now(),
                                   replace_existing=True)
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
        except FeedBusy:
            pass
        except Exception:
            log.exception("feed %s failed", spec.name)


def _now() -> datetime:
    return datetime.now(UTC)


def start(services) -> Jobs:
    return Jobs(services).start()
