"""Every console page at 800, 1280 and 1920 px, for every role, in Debian's chromium.

One server and one browser for the module; one logged-in page per role, resized between
widths. Each page must fit its viewport (no horizontal scrolling of the page: wide tables
scroll inside their own box or reflow), keep its essential controls on screen, and pass
an axe-core audit with no serious or critical violation. axe-core comes from the npm
registry, pinned and checked against the registry's sha512 integrity; when it cannot be
fetched the audit fails, it never passes silently. Screenshots land in tests/artifacts/.

The module also replays what the issue found wrong: expired notices labelled active, a
revoked bulletin "valid until revoked", ingestion time shown as news, a wrong password
dropping ?next=, eight Tab stops per date-time field, an internal field name in the
webhook error, and 404s at / and /favicon.ico. And it walks the keyboard paths for
compose, publish, revoke and subscribe.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from .browser import ARTIFACTS, require_chromium
from .browser import log_in as browser_log_in
from .live import LiveServer, cli, service_env

AXE_CACHE = Path(__file__).parent / ".cache"
AXE_VERSION = "4.10.3"
AXE_INTEGRITY = ("sha512-Xm7bpRXnDSX2YE2YFfBk2FnF0ep6tmG7xPh8iHee8MIcrgq762Nkce856dYtJYLk"
                 "uIoYZvGfTs/PbZhideTcEg==")
WIDTHS = (800, 1280, 1920)
PASSWORDS = {"analyst": "analyst password 1", "reader": "reader password 1",
             "boss": "boss password 123"}

sync_api = require_chromium()
expect = sync_api.expect

FEEDS = """
[[feeds]]
name = "regional-csv-blocklist-with-a-long-name"
kind = "csv"
url = "http://127.0.0.1:9/a/very/long/path/to/the/regional/indicators-export.csv?format=csv"
interval = 86400
enabled = false
retries = 0
timeout_seconds = 2
"""
LONG_URL = "https://advisories.example.org/2020/" + "very-long-segment-" * 40 + "end"


# --- axe-core from the npm registry -------------------------------------------------------

def axe_source() -> str:
    """axe.min.js of the pinned axe-core, fetched once from the npm registry and checked
    against its published sha512 (the cached tarball is checked again on every run)."""
    tarball = AXE_CACHE / f"axe-core-{AXE_VERSION}.tgz"
    try:
        if not tarball.exists():
            meta = requests.get(f"https://registry.npmjs.org/axe-core/{AXE_VERSION}",
                                timeout=30)
            meta.raise_for_status()
            dist = meta.json()["dist"]
            if dist["integrity"] != AXE_INTEGRITY:
                pytest.fail(f"the registry's integrity for axe-core {AXE_VERSION} is "
                            f"{dist['integrity']}, not the pinned {AXE_INTEGRITY}")
            body = requests.get(dist["tarball"], timeout=60)
            body.raise_for_status()
            AXE_CACHE.mkdir(parents=True, exist_ok=True)
            tarball.write_bytes(body.content)
    except requests.RequestException as exc:
        pytest.fail(f"axe-core {AXE_VERSION} could not be fetched from the npm registry "
                    f"(the accessibility audit needs it): {exc}")
    data = tarball.read_bytes()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != AXE_INTEGRITY:
        tarball.unlink()
        pytest.fail(f"axe-core tarball has integrity {digest}, expected {AXE_INTEGRITY}")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.extractfile("package/axe.min.js").read().decode()


def axe_violations(page, axe: str) -> list[str]:
    """Serious and critical violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe)
    found = page.evaluate("async () => (await axe.run(document)).violations.map(v => "
                          "({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map("
                          "n => n.target.join(' ')).slice(0, 3)}))")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in found
            if v["impact"] in ("serious", "critical")]


# --- the server, the browser and one page per role ---------------------------------------

def api(live, path: str, document: dict, status: int = 201) -> dict:
    response = requests.post(f"{live.base}/api/v1/{path}", json=document, timeout=30,
                             headers={"Authorization": f"Bearer {live.keys['analyst']}"})
    assert response.status_code == status, response.text
    return response.json()


def seed(live) -> dict:
    """Bulletins that exercise time and width: current ones, an expired one from 2020
    imported last, a revoked one, one with a very long reference URL."""
    for n in range(10):
        api(live, "bulletins", {
            "title": f"Current notice {n}: pressure drops reported across the regional "
                     "distribution network after maintenance",
            "kind": ("cyber", "natural", "physical")[n % 3], "tlp": "green",
            "sectors": ["water", "energy"] if n % 2 else "all",
            "severity": ("Severe", "Moderate", "Minor", "Extreme")[n % 4],
            "locations": [{"name": f"Site {n}", "lat": 38 + n / 10, "lon": -121 - n / 10}]})
    revoked = api(live, "bulletins", {"title": "Withdrawn notice", "kind": "cyber",
                                      "tlp": "green", "sectors": "all"})
    api(live, f"bulletins/{revoked['id']}/revoke", {}, status=200)
    long = api(live, "bulletins", {"title": "Notice with a long reference", "kind": "cyber",
                                   "tlp": "green", "sectors": "all",
                                   "references": [LONG_URL],
                                   "indicators": [{"value": "https://evil.example.com/" +
                                                   "x" * 200}]})
    expired = api(live, "bulletins", {
        "title": "Pump station advisory from 2020", "kind": "cyber", "tlp": "green",
        "sectors": ["water"], "severity": "Severe",
        "valid_from": "2020-03-01T00:00:00Z", "valid_until": "2020-04-01T00:00:00Z"})
    return {"revoked": revoked["id"], "long": long["id"], "expired": expired["id"]}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("console-pages")
    (data_dir / "feeds.toml").write_text(FEEDS)
    server = LiveServer(service_env(data_dir, INFOSHARE_CONFIG=str(data_dir / "feeds.toml"),
                                    INFOSHARE_OUTBOUND_ALLOW_HOSTS="127.0.0.1"))
    people = {
        "analyst": ["--org", "Ops", "--tier", "trusted", "--all-sectors", "--role",
                    "publisher"],
        "reader": ["--org", "Water Co", "--tier", "partner", "--sector", "water"],
        "boss": ["--org", "Operators", "--tier", "trusted", "--all-sectors", "--role",
                 "admin"],
    }
    with ThreadPoolExecutor(len(people) + 1) as pool:
        run = pool.submit(cli, server.env, "feeds", "run",
                          "regional-csv-blocklist-with-a-long-name", check=False)
        added = dict(zip(people, pool.map(
            lambda name: server.add_principal(name, *people[name], password=PASSWORDS[name]),
            people), strict=True))
        run.result()
    server.keys = {name: info["api_key"] for name, info in added.items()}
    server.principal_ids = {name: info["id"] for name, info in added.items()}
    server.ids = seed(server)
    yield server
    server.stop()



def new_page(browser, width: int = 1280):
    # axe is injected as a script the console's CSP would refuse; the pages are unchanged.
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    context.set_default_timeout(15_000)
    return context.new_page()


def log_in(page, live, who: str, next_path: str = "") -> None:
    browser_log_in(page, live.base, who, PASSWORDS[who], next_path)


@pytest.fixture(scope="module")
def pages(browser, live):
    """One logged-in page per role (and an anonymous one), kept for the module."""
    found = {"anonymous": new_page(browser)}
    for who in ("analyst", "reader", "boss"):
        found[who] = new_page(browser)
        log_in(found[who], live, who)
    yield found
    for page in found.values():
        page.context.close()


@pytest.fixture(scope="module")
def axe():
    return axe_source()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# --- every page at every width ------------------------------------------------------------

def console_pages(live) -> list[tuple[str, str, str, list[str]]]:
    """(name, role, path, selectors that must be on screen) for every console page."""
    ids = live.ids
    return [
        ("landing", "anonymous", "/", ["a[href='/console/']"]),
        ("login", "anonymous", "/console/login", ["button[type=submit]"]),
        ("not-found", "anonymous", "/console/no-such-page", ["h1"]),
        ("overview", "analyst", "/console/", [".matrix tbody tr:last-child td:last-child",
                                              ".latest li:first-child .title"]),
        ("bulletins", "analyst", "/console/bulletins",
         ["table.list tbody tr:first-child .status", "table.list tbody tr:first-child a"]),
        ("bulletin-expired", "analyst", f"/console/bulletins/{ids['expired']}",
         [".page-head .status", ".actions .button.danger"]),
        ("bulletin-revoked", "analyst", f"/console/bulletins/{ids['revoked']}",
         [".page-head .status"]),
        ("bulletin-long", "analyst", f"/console/bulletins/{ids['long']}",
         ["h1", "#objects tbody tr:last-child .sig", "#versions tbody tr:first-child .sig"]),
        ("compose", "analyst", "/console/bulletins/new", ["button[value=publish]"]),
        ("update", "analyst", f"/console/bulletins/{ids['long']}/edit",
         ["button[value=publish]"]),
        ("reader-compose-refused", "reader", "/console/bulletins/new", ["h1"]),
        ("feeds", "analyst", "/console/feeds", ["#feeds .error-text",
                                                "#feeds button[type=submit]"]),
        ("subscriptions", "reader", "/console/subscriptions",
         ["button.primary[type=submit]"]),
        ("reader-overview", "reader", "/console/", ["h1"]),
        ("reader-bulletins", "reader", "/console/bulletins", ["table.list .status"]),
        ("admin-principals", "boss", "/console/admin/principals",
         ["#principals tbody tr:first-child td:last-child .status"]),
        ("admin-principal", "boss", f"/console/admin/principals/{live.principal_ids['reader']}",
         ["h1", "button.primary[type=submit]"]),
        ("admin-audit", "boss", "/console/admin/audit", ["table.audit tbody tr:first-child td"]),
    ]


# Where an element is cut off: outside the viewport, outside a box that scrolls or clips
# it, or squeezed to a sliver (a title one character wide).
_CLIPPED = """el => {
  const r = el.getBoundingClientRect();
  if (r.width < 24 || r.height === 0) return `squeezed to ${r.width}x${r.height} px`;
  if (r.left < 0 || r.right > window.innerWidth + 0.5) return `outside the viewport`;
  for (let a = el.parentElement; a; a = a.parentElement) {
    const o = getComputedStyle(a).overflowX;
    if (o === 'visible') continue;
    const b = a.getBoundingClientRect();
    if (r.left < b.left - 0.5 || r.right > b.right + 0.5)
      return `hidden inside ${a.tagName}.${a.className}`;
  }
  return null;
}"""


def layout_problems(page, essentials: list[str]) -> list[str]:
    problems = []
    width = page.evaluate("() => window.innerWidth")
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    if scroll > width:
        problems.append(f"document is {scroll} px wide in a {width} px viewport")
    for selector in essentials:
        found = page.locator(selector)
        if not found.count():
            problems.append(f"{selector} is missing")
            continue
        clipped = found.first.evaluate(_CLIPPED)
        if clipped:
            problems.append(f"{selector}: {clipped}")
    return problems


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_and_passes_axe(pages, live, axe, width):
    problems: dict[str, list[str]] = {}
    for name, role, path, essentials in console_pages(live):
        page = pages[role]
        page.set_viewport_size({"width": width, "height": 900})
        response = page.goto(live.base + path)
        expected = {"not-found": 404, "reader-compose-refused": 403}.get(name, 200)
        assert response.status == expected, (name, response.status)
        found = layout_problems(page, essentials) + axe_violations(page, axe)
        if found:
            problems[name] = found
        shot(page, f"page-{width}-{name}")
    assert not problems, "\n".join(f"{name}: {p}" for name, found in problems.items()
                                    for p in found)


# --- time told truthfully ----------------------------------------------------------------

def test_expired_and_revoked_are_told_as_such(pages, live):
    page = pages["analyst"]
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live.base}/console/bulletins")
    expired = page.locator("table.list tbody tr", has_text="Pump station advisory")
    expect(expired.locator(".status")).to_have_text(re.compile("expired", re.I))
    withdrawn = page.locator("table.list tbody tr", has_text="Withdrawn notice")
    expect(withdrawn.locator(".status")).to_have_text(re.compile("revoked", re.I))
    page.goto(f"{live.base}/console/bulletins/{live.ids['expired']}")
    expect(page.locator(".page-head .status")).to_have_text(re.compile("expired", re.I))
    page.goto(f"{live.base}/console/bulletins/{live.ids['revoked']}")
    expect(page.locator(".page-head .status")).to_have_text(re.compile("revoked", re.I))
    assert "until revoked" not in page.locator("dl.facts").inner_text()


def test_lists_show_sort_and_filter_by_the_source_time(pages, live):
    page = pages["analyst"]
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live.base}/console/bulletins")
    titles = page.locator("table.list tbody tr td:first-child a").all_inner_texts()
    # Imported last, but it happened in 2020: it sorts after everything from today.
    assert titles[-1] == "Pump station advisory from 2020", titles
    row = page.locator("table.list tbody tr", has_text="Pump station advisory")
    expect(row.locator("td.event-time")).to_contain_text("2020-03-01")
    page.get_by_label("From (UTC)").fill("2020-01-01")
    page.get_by_label("To (UTC)").fill("2020-12-31")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    expect(page.locator("table.list tbody tr")).to_contain_text("Pump station advisory")


# --- small things that were wrong ----------------------------------------------------------

def test_a_wrong_password_keeps_next(browser, live):
    page = new_page(browser)
    target = f"/console/bulletins/{live.ids['long']}"
    page.goto(f"{live.base}/console/login?next={target}")
    page.get_by_label("Principal name").fill("analyst")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_be_visible()
    assert page.url.endswith(f"/console/login?next={target}"), page.url  # a reload keeps it
    page.get_by_label("Password").fill(PASSWORDS["analyst"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Notice with a long reference")).to_be_visible()
    assert page.url.endswith(target)
    page.context.close()


def test_root_and_favicon_answer(live):
    root = requests.get(live.base + "/", timeout=30)
    assert root.status_code == 200
    for link in ("/console/", "/taxii2/", "/.well-known/jwks.json"):
        assert f'href="{link}"' in root.text, link
    icon = requests.get(live.base + "/favicon.ico", timeout=30)
    assert icon.status_code == 200 and icon.headers["Content-Type"].startswith("image/")


def test_date_filters_are_one_tab_stop_each(pages, live):
    page = pages["analyst"]
    page.goto(f"{live.base}/console/bulletins")
    page.locator("#f-from").focus()
    page.keyboard.press("Tab")
    expect(page.locator("#f-to")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#f-since")).to_be_focused()


def test_a_date_time_field_is_one_tab_stop(pages, live, axe):
    page = pages["analyst"]
    page.goto(f"{live.base}/console/bulletins/new")
    page.locator("#f-valid_from").focus()
    page.keyboard.press("Tab")
    expect(page.locator("#f-valid_until")).to_be_focused()
    page.keyboard.type("2020-01-01 10:00")
    page.get_by_role("button", name="Preview").click()  # no title: the form shows errors
    expect(page.locator("#problems")).to_be_visible()
    expect(page.locator("#f-valid_until")).to_have_value("2020-01-01 10:00")
    assert not axe_violations(page, axe)  # the form with its errors
    shot(page, "compose-errors")


def test_webhook_errors_name_what_the_form_shows(pages, live, axe):
    page = pages["reader"]
    page.goto(f"{live.base}/console/subscriptions")
    page.get_by_label("Name").fill("Hook without secret")
    page.get_by_label("Webhook URL").fill("https://hooks.example.org/in")
    page.get_by_role("button", name="Create subscription").click()
    expect(page.locator("#problems")).to_be_visible()
    text = page.locator("#problems").inner_text() + page.locator(
        ".field-errors").all_inner_texts().__str__()
    assert "webhook_" not in text, text
    assert not axe_violations(page, axe)  # the page with its errors, too


# --- keyboard paths ----------------------------------------------------------------------

def tab_to(page, selector: str, limit: int = 120) -> None:
    """Press Tab until the element matching `selector` has focus: it is reachable by
    keyboard, in document order."""
    target = page.locator(selector)
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{selector} not reached with Tab")


def test_keyboard_compose_publish_and_revoke(pages, live, axe):
    page = pages["analyst"]
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live.base}/console/bulletins/new")
    tab_to(page, "#f-title")
    page.keyboard.type("Typed without a mouse")
    tab_to(page, "#f-kind")
    page.keyboard.press("ArrowDown")  # the first kind
    tab_to(page, "input[name=tlp][value=clear]")
    page.keyboard.press("ArrowRight")  # radio group: arrows choose, clear -> green
    tab_to(page, "input[name=all_sectors]")
    page.keyboard.press("Space")
    tab_to(page, "button[value=preview]")
    page.keyboard.press("Enter")
    expect(page.locator("#preview")).to_be_focused()
    assert not axe_violations(page, axe)  # the page with its preview
    shot(page, "keyboard-preview")
    tab_to(page, "button[value=publish]")
    page.keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_contain_text("Published")
    expect(page.locator("h1")).to_have_text("Typed without a mouse")
    expect(page.locator(".page-head .tlp")).to_have_text("TLP:GREEN")
    page.once("dialog", lambda dialog: dialog.accept())
    tab_to(page, ".actions .button.danger")
    page.keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_contain_text("Revoked")


def test_keyboard_subscribe(pages, live):
    page = pages["reader"]
    page.goto(f"{live.base}/console/subscriptions")
    tab_to(page, "#f-name")
    page.keyboard.type("Keyboard subscription")
    tab_to(page, "input[name=kinds][value=natural]")
    page.keyboard.press("Space")
    tab_to(page, "button.primary[type=submit]")
    page.keyboard.press("Enter")
    card = page.locator("section.subscription", has_text="Keyboard subscription")
    expect(card).to_contain_text("natural")
