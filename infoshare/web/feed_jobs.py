"""Running a feed now, from the console, without holding the page: the run happens in a
background thread of this worker and the page returns at once.

Whether the feed is busy must be known before the page answers, so the feed's lease is
taken here first, under the name and holder feeds.runner.run_feed uses: run_feed then
renews the lease it finds held by its own holder, and releases it when done. A feed held by
another process answers FeedBusy at once; one already started from this worker, too.
"""

from __future__ import annotations

import logging
import threading

from feeds import runner
from infoshare.settings import FeedSpec
from infoshare.store import leases

log = logging.getLogger(__name__)
LEASE_SECONDS = runner.LEASE_SECONDS  # as run_feed takes it (its heartbeat renews it)
_running: set[str] = set()
_lock = threading.Lock()


def lease_name(spec: FeedSpec) -> str:
    return f"feed:{spec.name}"


def start(services, spec: FeedSpec) -> None:
    """Start one run in the background; raises runner.FeedBusy when it cannot start."""
    with _lock:
        if spec.name in _running:
            raise runner.FeedBusy(f"feed {spec.name} is running already")
        if not leases.acquire(services.engine, lease_name(spec), runner.holder(),
                              LEASE_SECONDS):
            raise runner.FeedBusy(f"feed {spec.name} is running in another process")
        _running.add(spec.name)
    try:
        threading.Thread(target=_run, args=(services, spec), daemon=True,
                         name=f"console-feed-{spec.name}").start()
    except RuntimeError:  # cannot start a thread: give the lease back
        _finish(services, spec)
        raise


def _run(services, spec: FeedSpec) -> None:
    try:
        counts = runner.run_feed(services, spec)
        log.info("feed %s run from the console: %s", spec.name, counts)
    except runner.FeedBusy as exc:
        log.warning("console run of feed %s: %s", spec.name, exc)
    except Exception:  # the thread has no caller to tell; the feed status records failures
        log.exception("console run of feed %s failed", spec.name)
    finally:
        _finish(services, spec)


def _finish(services, spec: FeedSpec) -> None:
    with _lock:
        _running.discard(spec.name)
    leases.release(services.engine, lease_name(spec), runner.holder())
