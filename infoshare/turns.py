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
from collections import deque
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
    """At most `limit` threads inside at once; the others wait, and a turn that ends goes
    to the longest waiter, never to a thread that arrives just then (with a semaphore one
    could, and at 16 publishers the wait became a lottery whose losers set p99). A thread
    already inside goes on (a feed's batch that falls back to one publish per notice). A
    thread that waits longer than `wait_s` (two slow ingests hold both turns) gets Busy,
    which is 503."""

    def __init__(self, limit: int, wait_s: float = WAIT_S):
        self.free, self.wait_s = limit, wait_s
        self.lock = threading.Lock()
        self.queue: deque[threading.Lock] = deque()  # each waiter's own lock, held until
        self.inside = threading.local()               # its turn is handed to it

    def enter(self, timeout: float | None = None) -> bool:
        """Take a turn, waiting at most `timeout` (default wait_s); whether one came."""
        with self.lock:
            if self.free and not self.queue:
                self.free -= 1
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self.queue.append(waiter)
        if waiter.acquire(timeout=self.wait_s if timeout is None else timeout):
            return True
        with self.lock:
            if waiter in self.queue:
                self.queue.remove(waiter)
                return False
        return True  # handed a turn just as the wait ran out

    def leave(self) -> None:
        with self.lock:
            if self.queue:
                self.queue.popleft().release()  # the turn passes on, never freed between
            else:
                self.free += 1

    def waiting(self) -> int:
        with self.lock:
            return len(self.queue)

    def __call__(self, function: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(function)
        def in_turn(*args, **kwargs) -> T:
            if getattr(self.inside, "yes", False):
                return function(*args, **kwargs)
            if not self.enter():
                raise Busy(f"no turn to publish within {self.wait_s:g} s")
            self.inside.yes = True
            try:
                return function(*args, **kwargs)
            finally:
                self.inside.yes = False
                self.leave()
        return in_turn


publishing = Turns(IN_FLIGHT)
