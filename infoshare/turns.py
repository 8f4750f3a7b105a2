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

IN_FLIGHT = 2  # one preparing while another holds the write lock (or waits for it)

T = TypeVar("T")


class Turns:
    """At most `limit` threads inside at once; the others wait, woken in arrival order
    (one arriving just as a turn ends may take it first). A thread already inside goes on
    (a feed's batch that falls back to one publish per notice)."""

    def __init__(self, limit: int):
        self.slots = threading.Semaphore(limit)
        self.inside = threading.local()

    def __call__(self, function: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(function)
        def in_turn(*args, **kwargs) -> T:
            if getattr(self.inside, "yes", False):
                return function(*args, **kwargs)
            with self.slots:
                self.inside.yes = True
                try:
                    return function(*args, **kwargs)
                finally:
                    self.inside.yes = False
        return in_turn


publishing = Turns(IN_FLIGHT)
