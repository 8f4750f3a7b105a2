"""Taking turns to publish within a process.

The store takes one writer at a time, and a process's threads share one interpreter lock
(the GIL). A third thread converting, signing or validating in the same process adds
nothing to what the store can take: it only takes the GIL from the thread that holds the
write lock, so that thread holds it longer and every writer, in every process, waits
longer. With 16 publishers on 2 workers (8 threads each), p99 went from 318-342 ms
without turns to 250-273 ms with two (bench/publish.py, alternated runs).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

IN_FLIGHT = 2  # one preparing while another holds the write lock (or waits for it)
WAIT_S = 30.0  # as long as a writer waits for the store's lock (engine.QUEUE_WAIT_S)

T = TypeVar("T")


class Busy(sa.exc.OperationalError):
    """No turn came in time: answered 503 with Retry-After, as a store that cannot
    take the write."""

    def __init__(self, message: str):
        super().__init__(message, None, TimeoutError(message))


class Turns:
    """At most `limit` threads inside at once; the others wait, woken in arrival order
    (one arriving just as a turn ends may take it first). A thread already inside goes on
    (a feed's batch that falls back to one publish per notice). A thread that waits
    longer than `wait_s` (two slow ingests hold both turns) gets Busy, which is 503."""

    def __init__(self, limit: int, wait_s: float = WAIT_S):
        self.slots, self.wait_s = threading.Semaphore(limit), wait_s
        self.inside = threading.local()

    def __call__(self, function: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(function)
        def in_turn(*args, **kwargs) -> T:
            if getattr(self.inside, "yes", False):
                return function(*args, **kwargs)
            if not self.slots.acquire(timeout=self.wait_s):
                raise Busy(f"no turn to publish within {self.wait_s:g} s")
            self.inside.yes = True
            try:
                return function(*args, **kwargs)
            finally:
                self.inside.yes = False
                self.slots.release()
        return in_turn


publishing = Turns(IN_FLIGHT)
