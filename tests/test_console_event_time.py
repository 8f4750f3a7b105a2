"""The bulletin list's event time in SQL (store/event_time.py) on SQLite and PostgreSQL:
the same microseconds Python computes, and a list ordered and ranged by it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from infoshare import timestamps
from infoshare.store.engine import connect_engine
from infoshare.store.event_time import stamp_us


@pytest.mark.parametrize("text", ["2020-03-01T00:00:00Z", "2020-03-01T12:34:56.789Z",
                                  "1999-12-31T23:59:59.001Z", "2030-06-15T06:00:00.000Z"])
def test_stamp_us_agrees_with_python(database_url, text):
    engine = connect_engine(database_url)
    try:
        with engine.connect() as conn:
            got = conn.execute(sa.select(stamp_us(sa.literal(text)))).scalar_one()
    finally:
        engine.dispose()
    assert got == timestamps.parse_us(text)


def test_the_list_sorts_and_ranges_by_event_time(database_url, tmp_path):
    """Through a live server on each backend: the 2020 advisory published last lists last,
    and From/To select it alone; older pages continue by the same order."""
    import re

    import requests

    from .live import LiveServer, service_env

    server = LiveServer(service_env(tmp_path / "data", database_url), workers=1)
    try:
        info = server.add_principal("pub", "--org", "Ops", "--tier", "trusted",
                                    "--all-sectors", "--role", "publisher",
                                    password="publisher password")
        ids = {}
        for title, extra in (("today", {}), ("tomorrow", {"valid_from":
                                                          "2030-01-01T00:00:00Z"}),
                             ("in 2020", {"valid_from": "2020-03-01T00:00:00Z"}),
                             ("issued in 2019", {})):
            answer = requests.post(f"{server.base}/api/v1/bulletins", timeout=30, json={
                "title": title, "kind": "cyber", "tlp": "green", "sectors": "all", **extra},
                headers={"Authorization": f"Bearer {info['api_key']}"})
            assert answer.status_code == 201, answer.text
            ids[title] = answer.json()["id"]
        # As a feed stores a source's issue time (the report's published) without a
        # valid_from: the list takes it from notices.issued_us.
        engine = connect_engine(database_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE notices SET issued_us = :t WHERE report_id = :r"),
                         {"t": timestamps.parse_us("2019-06-01T00:00:00Z"),
                          "r": ids["issued in 2019"]})
        engine.dispose()
        session = requests.Session()
        page = session.get(f"{server.base}/console/login", timeout=30).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        session.post(f"{server.base}/console/login", timeout=30, data={
            "name": "pub", "password": "publisher password", "csrf_token": token})

        def titles(query: str) -> list[str]:
            text = session.get(f"{server.base}/console/bulletins{query}", timeout=30).text
            return re.findall(r'<td class="title-cell"><a href="[^"]+">([^<]+)</a>', text)

        assert titles("") == ["tomorrow", "today", "in 2020", "issued in 2019"]
        listed = session.get(f"{server.base}/console/bulletins", timeout=30).text
        assert re.findall(r'class="status status-(\w+)"', listed) == [
            "upcoming", "active", "active", "active"]  # no valid_until: still active
        assert titles("?from=2020-01-01&to=2020-12-31") == ["in 2020"]
        assert titles("?to=2029-12-31") == ["today", "in 2020", "issued in 2019"]
        assert titles("?from=2019-01-01&to=2019-12-31") == ["issued in 2019"]
        after = f"{timestamps.parse_us('2030-01-01T00:00:00Z')}~{ids['tomorrow']}"
        assert titles(f"?before={after}") == ["today", "in 2020", "issued in 2019"]
    finally:
        server.stop()
