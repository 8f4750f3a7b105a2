"""The overview map: real country, state and county boundaries, the alerts' own areas
coloured by severity, expired alerts drawn as expired; and a screenshot through Debian's
chromium."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from .browser import ARTIFACTS, CHROMIUM, log_in
from .live import LiveServer, service_env

PASSWORD = "a map reader's long password"
AUSTIN = [[30.20, -97.90], [30.45, -97.90], [30.45, -97.60], [30.20, -97.60]]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(service_env(tmp_path_factory.mktemp("map")), workers=1)
    key = server.add_principal("mapper", "--org", "NWS", "--tier", "trusted", "--all-sectors",
                               "--role", "publisher", password=PASSWORD)["api_key"]
    for title, severity, extra in (
            ("Flash flood in Austin", "Severe", {"locations": [
                {"name": "Austin", "polygon": AUSTIN}]}),
            ("Storm over Potter County", "Moderate", {"locations": [
                {"name": "Potter", "country": "US", "geocodes": {"SAME": "048375"}}]}),
            ("Expired flood in Travis", "Extreme", {
                "valid_from": "2026-01-01T00:00:00Z", "locations": [
                    {"name": "Travis", "country": "US", "geocodes": {"SAME": "048453"}}]}),
            ("Ice in Anchorage", "Minor", {"locations": [
                {"name": "Anchorage", "lat": 61.2, "lon": -149.9, "radius_km": 30}]})):
        document = {"title": title, "kind": "natural", "tlp": "clear", "sectors": "all",
                    "severity": severity, "source_id": f"map-{uuid.uuid4()}", **extra}
        if title.startswith("Expired"):
            document["valid_until"] = _an_hour_ago()
        response = requests.post(f"{server.base}/api/v1/bulletins", json=document,
                                 timeout=30, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 201, response.text
    yield server
    server.stop()


def _an_hour_ago() -> str:
    from infoshare import timestamps

    return timestamps.format_stix(timestamps.now_us() - 3600 * 1_000_000)


def session(live) -> requests.Session:
    client = requests.Session()
    login = client.get(f"{live.base}/console/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    assert client.post(f"{live.base}/console/login", timeout=30, data={
        "name": "mapper", "password": PASSWORD, "csrf_token": token}).ok
    return client


def test_the_map_draws_real_boundaries_and_the_alerts_areas(live):
    client = session(live)
    us = client.get(f"{live.base}/console/?map=us", timeout=30).text
    land = re.search(r'<path class="land" d="([^"]+)"', us).group(1)
    assert land.count("M") >= 49  # the lower 48 and DC, at least, from the Census outlines
    assert re.search(r'class="area sev-severe"', us)  # the Austin polygon
    assert re.search(r'class="area sev-moderate"', us)  # Potter County, by its SAME code
    assert re.search(r'class="area sev-extreme expired"', us)  # drawn, but as expired
    assert "Expired flood in Travis" in us and ", expired)" in us
    alaska = client.get(f"{live.base}/console/?map=ak", timeout=30).text
    assert 'class="county"' in alaska and re.search(r'class="area sev-minor"', alaska)
    for view in ("world", "hi", "pr", "pacific"):
        assert client.get(f"{live.base}/console/?map={view}", timeout=30).status_code == 200


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_a_screenshot_of_the_map(live, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        log_in(page, live.base, "mapper", PASSWORD)
        page.goto(f"{live.base}/console/?map=us")
        svg = page.locator("svg.map")
        box = svg.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100
        assert page.locator("svg.map path.area").count() >= 3
        svg.screenshot(path=str(ARTIFACTS / "map-us.png"))
        for view in ("ak", "world"):
            page.goto(f"{live.base}/console/?map={view}")
            page.locator("svg.map").screenshot(path=str(ARTIFACTS / f"map-{view}.png"))
    finally:
        page.close()
    assert (ARTIFACTS / "map-us.png").stat().st_size > 10_000


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_a_subscriber_picks_and_draws_areas_on_the_console(live, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        log_in(page, live.base, "mapper", PASSWORD)
        page.goto(f"{live.base}/console/subscriptions")
        page.locator("#f-name").fill("Texas and a drawn box")
        page.get_by_label("States").fill("XX")
        page.get_by_role("button", name="Create subscription").click()
        assert "unknown state 'XX'" in page.content()  # the area named, nothing stored
        page.get_by_label("States").fill("TX")
        page.get_by_label("Circles").fill("61.2, -149.9, 40")
        drawing = page.locator("[data-draw-map]")
        box = drawing.bounding_box()
        for fx, fy in ((0.30, 0.30), (0.45, 0.30), (0.45, 0.50), (0.30, 0.50)):
            drawing.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
        drawn = page.locator("#f-area_geojson").input_value()
        assert '"type":"Polygon"' in drawn.replace(" ", "")
        page.get_by_role("button", name="Create subscription").click()
        card = page.locator("section.subscription", has_text="Texas and a drawn box")
        expect(card).to_contain_text("TX; 40.0 km around 61.2, -149.9; a drawn area")
        page.screenshot(path=str(ARTIFACTS / "subscription-areas.png"), full_page=True)
    finally:
        page.close()
