"""Background jobs inside each service worker (APScheduler).

Every worker runs the delivery job; the database leases in delivery.claim make sure each
delivery is sent by one worker at a time, so adding workers adds throughput, not duplicates.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler

from .delivery import deliver_due

log = logging.getLogger(__name__)


def start(services) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(_deliveries, "interval", seconds=1, args=[services], id="deliveries",
                      max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler


def _deliveries(services) -> None:
    try:
        while deliver_due(services.engine, services.settings) > 0:
            pass
    except Exception:  # the scheduler must survive a database hiccup
        log.exception("delivery job failed")
