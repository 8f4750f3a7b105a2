"""Feeds run on their schedule in exactly one process, however many workers serve."""

from __future__ import annotations

import json
import threading
import time

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .live import LiveServer, cli, service_env

CSV = "value,type,description\n192.0.2.77,ipv4-addr,scheduled\nevil.example.net,,\n"


class Source:
    """A loopback HTTP server that serves one CSV file and notes when it was asked."""

    def __init__(self):
        self.hits: list[float] = []
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/list.csv"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _app(self, environ, start_response):
        Request(environ)
        self.hits.append(time.monotonic())
        return Response(CSV, content_type="text/csv")(environ, start_response)

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def source():
    served = Source()
    yield served
    served.stop()


def test_feed_runs_once_per_tick_with_several_workers(tmp_path, source):
    config = tmp_path / "feeds.toml"
    config.write_text(f'''
[[feeds]]
name = "blocklist"
kind = "csv"
url = "{source.url}"
interval = 10
sectors = ["energy"]
tlp = "green"
''')
    env = service_env(tmp_path / "data", INFOSHARE_CONFIG=str(config),
                      INFOSHARE_OUTBOUND_ALLOW_HOSTS="127.0.0.1")
    server = LiveServer(env, workers=3)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(source.hits) < 2:
            time.sleep(0.2)
        time.sleep(2)  # room for any duplicate run to show itself
    finally:
        server.stop()
    assert len(source.hits) >= 2, "the feed did not run on its schedule"
    gaps = [b - a for a, b in zip(source.hits, source.hits[1:], strict=False)]
    assert min(gaps) > 5, f"two processes ran the feed together: gaps {gaps}"
    status = [json.loads(line) for line in cli(env, "feeds", "status").stdout.splitlines()]
    assert status[0]["name"] == "blocklist" and status[0]["last_success"]
    assert status[0]["counts"]["fetched"] == 2


def test_a_restart_does_not_run_a_feed_before_its_interval(tmp_path, source):
    """A service that restarts (a deploy, a crash) must not hit every source at once: a
    feed that ran less than its interval ago waits for the rest of it."""
    config = tmp_path / "feeds.toml"
    config.write_text(f'''
[[feeds]]
name = "hourly"
kind = "csv"
url = "{source.url}"
interval = 3600
''')
    env = service_env(tmp_path / "data", INFOSHARE_CONFIG=str(config),
                      INFOSHARE_OUTBOUND_ALLOW_HOSTS="127.0.0.1")
    server = LiveServer(env, workers=1)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not source.hits:
            time.sleep(0.2)
        assert len(source.hits) == 1, "a feed that never ran runs at start"
        while time.monotonic() < deadline and not _last_run(env):
            time.sleep(0.5)  # the run is recorded once its items are stored
        assert _last_run(env), "the first run was never recorded"
    finally:
        server.stop()
    server = LiveServer(env, workers=1)
    try:
        time.sleep(6)  # the leader lease is taken and feeds scheduled within ~1 s
    finally:
        server.stop()
    assert len(source.hits) == 1, "the restart ran the feed again before its hour"


def _last_run(env) -> str | None:
    status = [json.loads(line) for line in cli(env, "feeds", "status").stdout.splitlines()]
    return status[0]["last_run"] if status else None
