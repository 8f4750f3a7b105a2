"""Syncing SQLite's write-ahead log after the write lock is let go, shared by writers.

With `synchronous=FULL` SQLite syncs the log inside the commit, while it holds the
store's only write lock: about a third of the time a publish held the lock was that
fsync, and every other writer waited for it. The store runs `synchronous=NORMAL`
instead (the log is written at commit but not synced) and `engine.write()` calls
`synced()` after letting go of the lock and before it returns, so no write is
acknowledged before it is on disk, as before, while the next writer already works. A
writer whose commit an fsync already covered (one started after that commit) returns at
once: the threads of a process share fsyncs, and the kernel merges those of processes.

What changes: a commit is visible to readers for the milliseconds between its commit and
its sync. A power loss in that window loses it and every later commit (the log is a
sequence, so what survives is always a prefix of what was committed), but never one
that was acknowledged. A failed sync makes the process refuse writes (503) until it is
restarted: a later fsync could report success for pages the kernel already dropped.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

import sqlalchemy as sa

CHECKPOINT_EVERY = 64  # commits of a process between its checkpoints


class WalSync:
    """Group fsync of one database's log file (`<database>-wal`), and checkpoints."""

    def __init__(self, database: str):
        real = os.path.realpath(database)  # SQLite keeps the log beside the real file
        self.path, self.directory = f"{real}-wal", os.path.dirname(real)
        self.counting, self.syncing = threading.Lock(), threading.Lock()
        self.committed = self.synced = 0  # commits counted; commits known synced
        self.inode: int | None = None  # the log file whose directory entry was synced
        self.failed: OSError | None = None

    def after_commit(self, dbapi_conn) -> None:
        """Sync this commit (call while its connection is still open, so the log cannot
        be removed); every CHECKPOINT_EVERY commits, also copy the log into the database
        (a passive checkpoint: it waits for no reader or writer, and with
        synchronous=NORMAL it syncs the log before and the database after)."""
        mine = self.synced_after_commit()
        if mine % CHECKPOINT_EVERY == 0:
            try:
                dbapi_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # another process is checkpointing: next time
                log.info("checkpoint skipped: %s", exc)

    def synced_after_commit(self) -> int:
        """Return once every commit this process made so far is on disk; the number of
        this commit among the process's."""
        with self.counting:
            self.committed += 1
            mine = self.committed
        with self.syncing:
            if self.failed is not None:
                raise _unavailable(self.failed)
            if self.synced >= mine:
                return mine  # an fsync that began after this commit covered it
            covered = self.committed  # all counted commits are in the file already
            try:
                self._fsync()
            except OSError as exc:
                # Linux reports a failed write-back once: a later fsync could succeed
                # while these pages were dropped. As PostgreSQL does, this process takes
                # no more writes (503; /healthz says so) until it is restarted.
                self.failed = exc
                log.critical("fsync of %s failed (%s): refusing writes until restarted",
                             self.path, exc)
                raise _unavailable(exc) from exc
            self.synced = covered
        return mine

    def _fsync(self) -> None:
        """fsync the log (an OSError if it is missing: our connection is open, so
        SQLite cannot have removed it), and its directory when the file is new."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if inode != self.inode:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.inode = inode


def _unavailable(exc: OSError) -> sa.exc.OperationalError:
    """A failed sync is the store refusing writes (an I/O error, an aborted file system):
    the caller answers 503, as it does when SQLite itself cannot write."""
    return sa.exc.OperationalError("fsync of the write-ahead log", None, exc)


log = logging.getLogger(__name__)
_syncs: dict[str, WalSync] = {}
_making = threading.Lock()


def for_database(database: str) -> WalSync:
    with _making:
        return _syncs.setdefault(database, WalSync(database))


def _forget_after_fork() -> None:
    """A forked worker starts afresh: the parent's log file may be gone and a new one
    reuse its inode number, and its counts are not the child's."""
    global _making
    _syncs.clear()
    _making = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
