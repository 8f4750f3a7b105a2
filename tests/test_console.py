"""The analyst console in a real browser: Debian's headless Chromium driven by Playwright
against a live server on loopback. It logs in, composes and publishes a bulletin with
indicators and locations, finds it listed, opens it (signatures OK), updates and revokes
it; a reader is refused the compose page and never sees an amber bulletin; a form POST
without the CSRF token is refused. Screenshots of each step land in tests/artifacts/.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .browser import ARTIFACTS, require_chromium
from .browser import log_in as browser_log_in
from .live import LiveServer, cli, service_env

PASSWORDS = {"analyst": "analyst password 1", "reader": "reader password 1",
             "leaver": "leaver password 1"}

sync_api = require_chromium()
expect = sync_api.expect

FEEDS = """
[[feeds]]
name = "local-csv"
kind = "csv"
url = "http://127.0.0.1:9/indicators.csv"
interval = 86400
enabled = false
retries = 0
timeout_seconds = 2
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("console")
    (data_dir / "feeds.toml").write_text(FEEDS)
    server = LiveServer(service_env(data_dir, INFOSHARE_CONFIG=str(data_dir / "feeds.toml"),
                                    INFOSHARE_OUTBOUND_ALLOW_HOSTS="127.0.0.1"))
    people = {
        "analyst": ["--org", "Ops", "--tier", "trusted", "--all-sectors", "--role",
                    "publisher"],
        "reader": ["--org", "Water Co", "--tier", "partner", "--sector", "water"],
        "leaver": ["--org", "Water Co", "--tier", "partner", "--sector", "water"],
    }
    with ThreadPoolExecutor(len(people)) as pool:  # each `infoshare` subprocess takes ~2 s to start
        added = dict(zip(people, pool.map(
            lambda name: server.add_principal(name, *people[name], password=PASSWORDS[name]),
            people), strict=True))
    server.keys = {name: info["api_key"] for name, info in added.items()}
    yield server
    server.stop()



@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, live, who: str) -> None:
    browser_log_in(page, live.base, who, PASSWORDS[who])


def nav(page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def api_publish(live, document: dict) -> dict:
    response = requests.post(f"{live.base}/api/v1/bulletins", json=document, timeout=30,
                             headers={"Authorization": f"Bearer {live.keys['analyst']}"})
    assert response.status_code == 201, response.text
    return response.json()


# --- the publisher's path ----------------------------------------------------------------

def test_publish_list_open_update_and_revoke(page, live):
    page.goto(f"{live.base}/console/login")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()  # the first stop is the skip link
    shot(page, "01-login")
    log_in(page, live, "analyst")
    shot(page, "02-overview-empty")

    title = "Intrusions at water utilities via remote access"
    nav(page, "Compose")
    page.get_by_label("Title").fill(title)
    page.get_by_label("Summary").fill("Operators report intrusions through exposed VPNs.")
    page.get_by_label("Kind").select_option("cyber")
    page.get_by_label("Severity").select_option("Severe")
    page.get_by_label("TLP:GREEN").check()
    page.get_by_label("Water and Wastewater Systems").check()
    page.get_by_label("Energy").check()
    page.get_by_label("Indicators, one per line").fill(
        "192.0.2.10\nevil.example.com # command and control\nhttps://evil.example.com/x")
    page.locator("#loc-0-name").fill("Sacramento")
    page.locator("#loc-0-lat").fill("38.58")
    page.locator("#loc-0-lon").fill("-121.49")
    page.get_by_role("button", name="Add another location").click()
    page.locator("#loc-1-name").fill("Delta area")
    page.locator("#loc-1-polygon").fill("38.0,-121.8; 38.3,-121.3; 37.8,-121.2")
    page.get_by_label("CVEs").fill("CVE-2024-3400")
    page.get_by_label("Mitigations").fill("Patch VPN gateways\nRequire MFA for remote access")
    page.get_by_role("button", name="Preview").click()

    preview = page.locator("#preview")
    expect(preview).to_contain_text("Unsigned preview, not published")
    types = page.locator("#preview-indicators tbody tr td:nth-child(2)").all_inner_texts()
    assert types == ["ipv4-addr", "domain-name", "url"]
    shot(page, "03-preview")

    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.locator(".flash-success")).to_contain_text("Published")
    report_url = page.url
    assert "/console/bulletins/report--" in report_url

    nav(page, "Bulletins")
    row = page.locator("table.list tbody tr", has_text=title)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Active")
    shot(page, "04-list")

    nav(page, "Overview")
    points = f"svg.map a.dot-link[href$='{report_url.split('/')[-1]}']"
    expect(page.locator(points)).to_have_count(2)
    shot(page, "05-overview")

    page.goto(f"{live.base}/console/bulletins")
    page.get_by_role("link", name=title).click()
    signatures = page.locator("#objects tbody tr td:nth-child(4)")
    expect(signatures.first).to_contain_text("OK")
    texts = signatures.all_inner_texts()
    assert len(texts) >= 7 and all("OK" in t and "FAILED" not in t for t in texts), texts
    shot(page, "06-bulletin")

    page.get_by_role("link", name="Update").click()
    expect(page.locator("#loc-0-name")).to_have_value("Sacramento")
    page.get_by_label("Severity").select_option("Extreme")
    page.get_by_role("button", name="Publish new version").click()
    expect(page.locator(".flash-success")).to_contain_text("Published version")
    expect(page.locator("#versions tbody tr")).to_have_count(2)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator(".flash-success")).to_contain_text("Revoked")
    expect(page.locator(".page-head .status-revoked")).to_have_text("Revoked")
    expect(page.locator("#versions tbody tr")).to_have_count(3)
    assert "FAILED" not in page.locator("#objects").inner_text()
    shot(page, "07-revoked")

    page.goto(f"{live.base}/console/bulletins")
    expect(page.locator("table.list tbody tr", has_text=title)).to_contain_text("Revoked")
    shot(page, "08-list-revoked")


def test_field_errors_are_shown_next_to_their_fields(page, live):
    log_in(page, live, "analyst")
    page.goto(f"{live.base}/console/bulletins/new")
    page.get_by_label("Indicators, one per line").fill("192.0.2.1\nnot an indicator")
    page.locator("#loc-0-name").fill("Nowhere")
    page.locator("#loc-0-lat").fill("123")
    page.locator("#loc-0-lon").fill("10")
    page.get_by_label("References (URLs)").fill("not a url")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#problems")).to_be_visible()
    expect(page.locator("#err-title")).to_contain_text("Missing data")
    expect(page.locator("#err-tlp")).to_contain_text("Missing data")
    expect(page.locator("#err-indicators")).to_contain_text("line 2")
    expect(page.locator("#err-locations-0-lat")).to_contain_text("latitude must be between")
    expect(page.locator("#err-references")).to_contain_text("Not a valid URL")
    expect(page.get_by_label("Title")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Indicators, one per line")).to_have_value(
        "192.0.2.1\nnot an indicator")  # what was typed survives the round trip
    shot(page, "09-field-errors")


# --- a reader ----------------------------------------------------------------------------

def test_reader_is_refused_compose_and_sees_no_amber(page, live):
    amber = api_publish(live, {"title": "Amber note for water", "kind": "physical",
                               "tlp": "amber", "sectors": ["water"]})
    api_publish(live, {"title": "Green note for water", "kind": "natural", "tlp": "green",
                       "sectors": ["water"], "severity": "Moderate",
                       "locations": [{"name": "Lake", "lat": 39.1, "lon": -120.0}]})
    log_in(page, live, "reader")
    expect(page.get_by_role("link", name="Compose")).to_have_count(0)
    response = page.goto(f"{live.base}/console/bulletins/new")
    assert response.status == 403
    shot(page, "10-reader-compose-refused")
    page.goto(f"{live.base}/console/bulletins")
    expect(page.get_by_role("link", name="Green note for water")).to_be_visible()
    expect(page.get_by_role("link", name="Amber note for water")).to_have_count(0)
    shot(page, "11-reader-list")
    assert page.goto(f"{live.base}/console/bulletins/{amber['id']}").status == 404
    page.goto(f"{live.base}/console/")
    assert "Amber note" not in page.content()
    shot(page, "12-reader-overview")


def test_a_disabled_principal_is_logged_out_on_its_next_click(page, live):
    log_in(page, live, "leaver")
    cli(live.env, "principals", "disable", "leaver")
    page.reload()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert "/console/login" in page.url


# --- CSRF ----------------------------------------------------------------------------------

def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_a_form_post_without_the_csrf_token_is_refused(live):
    report = api_publish(live, {"title": "CSRF target", "kind": "cyber", "tlp": "green",
                                "sectors": "all"})
    session = requests.Session()
    token = _token(session.get(f"{live.base}/console/login", timeout=30).text)
    credentials = {"name": "analyst", "password": PASSWORDS["analyst"]}
    refused = session.post(f"{live.base}/console/login", data=credentials, timeout=30,
                           allow_redirects=False)
    assert refused.status_code in (400, 403)
    ok = session.post(f"{live.base}/console/login", data={**credentials, "csrf_token": token},
                      timeout=30, allow_redirects=False)
    assert ok.status_code == 302
    revoke = f"{live.base}/console/bulletins/{report['id']}/revoke"
    for data in ({}, {"csrf_token": token}, {"csrf_token": "forged"}):  # the old token too:
        response = session.post(revoke, data=data, timeout=30)  # log-in rotated it
        assert response.status_code in (400, 403), data
    page = session.get(f"{live.base}/console/bulletins/{report['id']}", timeout=30)
    assert page.status_code == 200 and "status-revoked" not in page.text
    assert session.post(f"{live.base}/console/logout", timeout=30).status_code in (400, 403)
    cookie = ok.headers["Set-Cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


# --- feeds and subscriptions -----------------------------------------------------------------

def test_feed_run_now_returns_at_once_and_records_the_run(page, live):
    log_in(page, live, "analyst")
    nav(page, "Feeds")
    card = page.locator("#feeds section.feed[data-feed='local-csv']")
    expect(card.locator(".schedule")).to_have_text("daily")  # not "every 86400 s"
    card.get_by_role("button", name="Run now").click()
    expect(page.locator(".flash")).to_contain_text("running in the background")
    deadline = time.monotonic() + 30
    while "—" in card.locator(".last-run").inner_text() and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    expect(card.locator(".last-run")).not_to_have_text("—")
    expect(card).to_contain_text("127.0.0.1")
    shot(page, "13-feeds")


def test_subscriptions_create_pause_resume_delete(page, live):
    log_in(page, live, "reader")
    nav(page, "Subscriptions")
    page.get_by_label("Name").fill("Water hazards")
    page.get_by_role("group", name=re.compile("^Kinds")).get_by_label("Natural").check()
    page.get_by_label("Webhook URL").fill("ftp://example.org/hook")
    page.get_by_role("button", name="Create subscription").click()
    expect(page.locator("#err-webhook-url, #err-webhook-secret").first).to_be_visible()
    page.get_by_label("Webhook URL").fill("")
    page.get_by_role("button", name="Create subscription").click()
    card = page.locator("section.subscription", has_text="Water hazards")
    expect(card).to_contain_text("Active")
    card.get_by_role("button", name="Pause").click()
    expect(card).to_contain_text("Paused")
    shot(page, "14-subscriptions")
    card.get_by_role("button", name="Resume").click()
    expect(card).to_contain_text("Active")
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Delete").click()
    expect(page.locator("section.subscription")).to_have_count(0)
