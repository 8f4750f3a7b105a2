"""Group commit: the publishes of one process that wait for the store's write lock share
one write transaction.

On SQLite most of the time a publish holds the write lock is its commit's fsync
(`synchronous=FULL`, docs/ARCHITECTURE.md "Writes"), so publishers taking turns one
transaction each were capped near 1 / fsync per second however many workers served them
(issue 12). Here a publish hands its work to a queue; the first in line takes the lock
for everything queued by then (up to MAX_GROUP), runs each piece in its own savepoint,
commits once, and wakes the others with their results. Each publish still lands whole or
not at all: a piece that fails is rolled back to its savepoint and its caller gets the
exception, and a transaction that fails to commit fails every piece in it. No caller is
answered before its piece is committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine

from .store.engine import write

MAX_GROUP = 32


@dataclass(eq=False)
class _Piece:
    work: Callable[[Connection], Any]
    result: Any = None
    error: BaseException | None = None
    done: bool = False


@dataclass(eq=False)
class Group:
    """The queue of one engine in one process."""

    engine: Engine
    begin: Callable[[Connection], None]  # run first in every transaction (take the lock)
    _queue: list[_Piece] = field(default_factory=list)
    _busy: bool = False
    _turn: threading.Condition = field(default_factory=threading.Condition)

    def run(self, work: Callable[[Connection], Any]) -> Any:
        """`work(conn)` inside a write transaction shared with whoever queued meanwhile;
        its result once committed, or its exception."""
        piece = _Piece(work)
        with self._turn:
            self._queue.append(piece)
            while not piece.done and (self._busy or self._queue[0] is not piece):
                self._turn.wait()
            if not piece.done:
                batch, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
                self._busy = True
        if not piece.done:
            try:
                self._commit(batch)
            finally:
                with self._turn:
                    self._busy = False
                    self._turn.notify_all()
        if piece.error is not None:
            raise piece.error
        return piece.result

    def _commit(self, batch: list[_Piece]) -> None:
        try:
            with write(self.engine) as conn:
                self.begin(conn)
                for piece in batch:
                    _attempt(conn, piece)
        except BaseException as exc:  # the commit failed: nothing of the group is stored
            for piece in batch:
                piece.result, piece.error = None, piece.error or exc
        finally:
            for piece in batch:
                piece.done = True


def _attempt(conn: Connection, piece: _Piece) -> None:
    savepoint = conn.begin_nested()
    try:
        piece.result = piece.work(conn)
    except Exception as exc:
        savepoint.rollback()
        piece.error = exc
    else:
        savepoint.commit()


_groups: dict[int, Group] = {}
_made = threading.Lock()


def group_for(engine: Engine, begin: Callable[[Connection], None]) -> Group:
    """The process's group for `engine` (one queue per engine)."""
    with _made:
        group = _groups.get(id(engine))
        if group is None or group.engine is not engine:
            group = _groups[id(engine)] = Group(engine, begin)
        return group
