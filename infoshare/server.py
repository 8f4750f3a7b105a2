"""Running under gunicorn: one master, N sync workers, each with its own engine.

The schema is upgraded once in the master before workers fork, so workers never race to
create tables.
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from .app import create_app
from .settings import Settings
from .store import migrate
from .store.engine import connect_engine


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict):
        self.settings, self.options = settings, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app(self.settings)


def run(settings: Settings, host: str, port: int, workers: int) -> None:
    engine = connect_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "infoshare",
    }
    _Gunicorn(settings, options).run()
