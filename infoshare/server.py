"""Running under gunicorn: one master, N uvicorn workers (see front.py), each with its
own engine and a pool of threads for the Flask app.

The data directory is prepared once in the master before workers fork (schema, signing
key, definitions), so workers never race to create tables or keys.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from gunicorn.app.base import BaseApplication

from . import balance, front
from .app import create_app
from .settings import Settings
from .store import migrate
from .store.engine import connect_engine, write


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict):
        self.settings, self.options = settings, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        app = create_app(self.settings)
        from distribution import scheduler

        scheduler.start(app.extensions["infoshare"])
        server = self.settings.server
        return front.BufferedWSGI(app, self.settings.taxii.max_content_length,
                                  server.body_timeout, server.threads)


def run(settings: Settings, host: str, port: int, workers: int) -> None:
    """Serve until stopped; call prepare() first (the CLI does)."""
    _steady_malloc()
    balance.LEDGER = balance.Ledger()  # before the fork: every worker maps the same one
    server = settings.server
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": front.worker_class(server.header_timeout, server.max_connections,
                                           ",".join(server.forwarded_allow_ips)),
        "forwarded_allow_ips": ",".join(server.forwarded_allow_ips) or "127.0.0.1",
        "keepalive": 5,
        "pre_fork": _pre_fork,
        "worker_exit": _worker_exit,
        "child_exit": _child_exit,
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "infoshare",
    }
    _Gunicorn(settings, options).run()


def _steady_malloc() -> None:
    """Keep a worker's heap near what it holds, in the master so the workers inherit it.

    glibc gives threads that allocate at once arenas of their own (up to 8 per core), and
    after each large buffer freed it raises the size from which buffers are mapped apart,
    so the buffers of a page (the rows' bytes, the body) land in arenas that keep their
    peak. Two arenas and a fixed threshold: a buffer over 256 KiB is mapped and given back
    when freed. Elsewhere than glibc this does nothing."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, 2)
    mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc's malloc.h


def _worker_exit(server, worker) -> None:
    """In the exiting worker: hand back its leases (deliveries, the feeds lease)."""
    from distribution import scheduler

    scheduler.stop()


def _pre_fork(server, worker) -> None:
    """In the master: the worker's slot in the ledger of held connections (balance.py)."""
    worker.ledger_slot = balance.LEDGER.reserve()


def _child_exit(server, worker) -> None:
    """In the master, once a worker has exited, killed or not: free its ledger slot."""
    if getattr(worker, "ledger_slot", None) is not None:
        balance.LEDGER.free(worker.ledger_slot)


def prepare(settings: Settings) -> dict:
    """Everything a fresh or upgraded data directory needs before serving: the schema, the
    id namespace, a signing key, and the service's own definitions. Idempotent; run once,
    before workers."""
    from . import installation, publish
    from .signing.keys import KeyRing

    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # RED objects, webhook secrets and password hashes live here
    engine = connect_engine(settings.database_url)
    try:
        before, after = migrate.upgrade(engine)
        ids = installation.id_space(settings)
        with write(engine) as conn:
            installation.check_namespace(conn, ids)
        signer = KeyRing(settings.data_dir, settings.key_passphrase).signer()
        added = publish.ensure_definitions(engine, settings, publish.Authority(signer, ids))
    finally:
        engine.dispose()
    return {"schema_version": after, "schema_version_before": before, "kid": signer.kid,
            "definitions_added": added}
