"""Engines and transactions, with the SQLite/PostgreSQL differences kept in one place.

Reads use an ordinary (deferred) transaction: under WAL they never block writers. Writes
use `write()`: on SQLite that is BEGIN IMMEDIATE, so a write transaction takes the write
lock up front instead of failing half way when it tries to upgrade a read lock, and
writers queue for it on a file lock first (`_writers_queue`).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from . import walsync

# Memory is bounded by design: a process holds at most `pool_size` + OVERFLOW connections
# (the threads that serve requests, plus the scheduler's), each with a small private page
# cache; the rest of the file stays in the OS page cache, shared by every process. (mmap
# would share it too, but its pages count in each process's RSS, which is what an
# operator's limits see.)
OVERFLOW = 4
SQLITE_CACHE_KIB = 512  # per connection (it was 64 MiB, then 8 MiB): the OS caches the rest


def connect_engine(url: str, pool_size: int = 5) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, pool_size)
    return _postgres_engine(url, pool_size)


def _postgres_engine(url: str, pool_size: int) -> Engine:
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=pool_size,
                              max_overflow=OVERFLOW)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # The driver prepares a statement after five runs; PostgreSQL may then keep one
        # generic plan for it, made without the ids. Made while the objects table was
        # small, that plan scanned all of it for a notice's ids as it grew (10-12 ms of
        # PostgreSQL CPU a bulletin against 2-3). Plans made with the values stay right.
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_conn.commit()

    return engine


def _sqlite_engine(url: str, pool_size: int) -> Engine:
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    pooled = ({"pool_size": pool_size, "max_overflow": OVERFLOW}
              if database and database != ":memory:" else {})
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                              **pooled)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # transactions are begun below, not by pysqlite
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL: the log is synced by write() after the lock is let go and before it
        # returns (walsync.py), so no acknowledged write is lost. NORMAL alone lost the
        # last second of acknowledged writes when the file system failed.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # No checkpoint inside a commit, where it held the writers' lock (10-13 ms every
        # hundred publishes): write() checkpoints after letting go of it (walsync.py).
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.info.pop("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction: commits on success, rolls back on any exception; on a
    SQLite file it returns once the commit is on disk (walsync.py)."""
    database = _file(engine)
    with engine.connect() as conn:
        with _writers_queue(database):
            conn.info["write"] = True
            with conn.begin():
                yield conn
        if database:  # after the lock is let go: the next writer need not wait for the disk
            walsync.for_database(database).after_commit(conn.connection.driver_connection)


def _file(engine: Engine) -> str | None:
    database = engine.url.database if is_sqlite(engine) else None
    return database if database and database != ":memory:" else None


@contextmanager
def _writers_queue(database: str | None) -> Iterator[None]:
    """On a SQLite file (`database`), queue for the write lock before BEGIN IMMEDIATE: SQLite's own
    wait polls with sleeps of up to 100 ms, so a writer that keeps missing the lock starves
    (seconds at 16 publishers) while the lock sits idle. A process's writers queue on a
    lock of their own, which wakes the next one when it is let go; the one at its head
    then takes a file lock beside the database (flock, tried every 2 ms) against the
    other processes. Either wait gives up after QUEUE_WAIT_S, as SQLite's busy timeout
    does (then BEGIN IMMEDIATE fails, and the request gets 503): a writer that hangs must
    not hang the others for ever. Writers that do not use the file lock (the sqlite3
    shell) are still kept out by SQLite itself."""
    fd = _open_queue(database) if not getattr(_queued, "held", False) else None
    if fd is None:  # not a file, or a nested write (it fails after busy_timeout as before)
        yield
        return
    deadline = time.monotonic() + QUEUE_WAIT_S
    ours = _process_queue(database)
    in_line = ours.acquire(timeout=QUEUE_WAIT_S)
    try:
        _queued.held = in_line and _take(fd, deadline)
        yield
    finally:
        _queued.held = False
        os.close(fd)  # releases the file lock
        if in_line:
            ours.release()


QUEUE_WAIT_S = 30.0  # as SQLite's busy_timeout
_process_queues: dict[str, threading.Lock] = {}
_making = threading.Lock()


def _process_queue(database: str) -> threading.Lock:
    with _making:
        return _process_queues.setdefault(database, threading.Lock())


def _take(fd: int, deadline: float) -> bool:
    """The file lock, tried every 2 ms until `deadline`; False when it gave up."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)


_queued = threading.local()


def _open_queue(database: str | None) -> int | None:
    if not database:
        return None
    try:
        return os.open(f"{database}-writers", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # e.g. made by another user: SQLite's own wait still keeps order
        return None


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read transaction: one consistent snapshot for everything read inside it."""
    with engine.connect() as conn:
        with conn.begin():
            yield conn


def binary_rows(conn: Connection, statement: sa.Select) -> list:
    """A PostgreSQL statement's rows in binary form: a bytea arrives as its bytes, where the
    text form (SQLAlchemy's only one) sends hex twice their size, which PostgreSQL encodes
    and the driver decodes; a page of 1000 stored objects came in 2.3 ms against 5.8. The
    compiled statement runs on the driver's cursor, in this connection's transaction; rows
    have the statement's column names as attributes."""
    from psycopg.rows import namedtuple_row  # the postgres extra; only PostgreSQL gets here

    compiled = statement.compile(dialect=conn.dialect,
                                 compile_kwargs={"render_postcompile": True})
    driver = conn.connection.driver_connection
    with driver.cursor(binary=True, row_factory=namedtuple_row) as cursor:
        cursor.execute(str(compiled), compiled.params)
        return cursor.fetchall()
