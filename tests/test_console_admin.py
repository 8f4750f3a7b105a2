"""The console's admin area, against a live server, as its owner and as a hostile partner.

Only role admin sees it: to anyone else (anonymous, reader, publisher) every admin URL,
GET or POST, answers exactly what a URL that does not exist answers. Its changes are the
CLI's (store/accounts.py): the same rules, the same audit actions; bad input is a 422 that
names the field and writes nothing; an API key is shown once, at creation; no password or
key hash ever reaches a page; an admin cannot lock itself out from the console.
"""

from __future__ import annotations

import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .browser import ARTIFACTS, require_chromium
from .live import LiveServer, cli, service_env

PASSWORDS = {"boss": "boss password 123", "reader": "reader password 1",
             "analyst": "analyst password 1", "target": "target password 1"}

sync_api = require_chromium()
expect = sync_api.expect


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("console-admin")
    server = LiveServer(service_env(data_dir))
    people = {
        "boss": ["--org", "Operators", "--tier", "trusted", "--all-sectors", "--role",
                 "admin"],
        "reader": ["--org", "Water Co", "--tier", "partner", "--sector", "water"],
        "analyst": ["--org", "Ops", "--tier", "trusted", "--all-sectors", "--role",
                    "publisher"],
        "target": ["--org", "Grid Co", "--tier", "partner", "--sector", "energy"],
    }
    with ThreadPoolExecutor(len(people)) as pool:
        added = dict(zip(people, pool.map(
            lambda name: server.add_principal(name, *people[name], password=PASSWORDS[name]),
            people), strict=True))
    server.added = added
    server.db = data_dir / "infoshare.db"
    yield server
    server.stop()



@pytest.fixture(scope="module")
def boss(browser, live):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{live.base}/console/login")
    page.get_by_label("Principal name").fill("boss")
    page.get_by_label("Password").fill(PASSWORDS["boss"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Admin")).to_be_visible()
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def session_for(live, who: str | None) -> tuple[requests.Session, str]:
    """A plain HTTP client logged in as `who` (None: anonymous), and its CSRF token."""
    session = requests.Session()
    token = token_of(session.get(f"{live.base}/console/login", timeout=30).text)
    if who:
        answer = session.post(f"{live.base}/console/login", timeout=30, data={
            "name": who, "password": PASSWORDS[who], "csrf_token": token})
        assert answer.status_code == 200 and f">{who}" in answer.text
        token = token_of(answer.text)
    return session, token


def taxii_status(live, key: str) -> int:
    return requests.get(live.taxii, timeout=30, headers={
        "Authorization": f"Bearer {key}",
        "Accept": "application/taxii+json;version=2.1"}).status_code


# Reads straight from the server's SQLite file: quicker than an `infoshare` process each.

def query(live, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(live.db) as db:
        return list(db.execute(sql, args))


def audit_entries(live, action: str | None = None) -> list[dict]:
    rows = query(live, "SELECT actor, action, target, details FROM audit ORDER BY pk")
    return [{"actor": a, "action": b, "target": t, "details": json.loads(d)}
            for a, b, t, d in rows if action is None or b == action]


def principal_count(live) -> int:
    return query(live, "SELECT count(*) FROM principals")[0][0]


def listed(live) -> dict[str, dict]:
    rows = query(live, "SELECT name, tier, roles, disabled FROM principals")
    return {n: {"tier": t, "roles": json.loads(r), "disabled": bool(d)}
            for n, t, r, d in rows}


# --- nobody else may tell the area exists ----------------------------------------------

def test_admin_urls_look_like_unknown_urls_to_everyone_else(live):
    target_id = live.added["target"]["id"]
    admin_paths = ["/console/admin/principals", "/console/admin/audit",
                   f"/console/admin/principals/{target_id}",
                   f"/console/admin/principals/{target_id}/disable"]
    posts = ["/console/admin/principals", f"/console/admin/principals/{target_id}/disable",
             f"/console/admin/principals/{target_id}/keys",
             f"/console/admin/principals/{target_id}/password"]
    before = principal_count(live)
    for who in (None, "reader", "analyst"):
        session, token = session_for(live, who)
        unknown = session.get(f"{live.base}/console/admin/no-such-page", timeout=30)
        assert unknown.status_code == 404
        for path in admin_paths:
            answer = session.get(live.base + path, timeout=30)
            assert (answer.status_code, answer.text) == (404, unknown.text), (who, path)
            assert {k: v for k, v in answer.headers.items() if k.lower() != "date"} == \
                {k: v for k, v in unknown.headers.items() if k.lower() != "date"}, (who, path)
        unknown_post = session.post(f"{live.base}/console/no-such-page", timeout=30,
                                    data={"csrf_token": token})
        assert unknown_post.status_code == 404
        for path in posts:
            answer = session.post(live.base + path, timeout=30, data={
                "csrf_token": token, "name": "intruder", "org": "X", "tier": "trusted",
                "roles": "admin", "password": "a long enough password"})
            assert (answer.status_code, answer.text) == (404, unknown_post.text), (who, path)
        for method in ("OPTIONS", "PUT", "DELETE", "HEAD"):
            unknown_other = session.request(method, f"{live.base}/console/no-such-page",
                                            timeout=30)
            for path in admin_paths:
                answer = session.request(method, live.base + path, timeout=30)
                assert (answer.status_code, answer.text, answer.headers.get("Allow")) == (
                    unknown_other.status_code, unknown_other.text,
                    unknown_other.headers.get("Allow")), (who, method, path)
        assert 'href="/console/admin' not in session.get(f"{live.base}/console/",
                                                          timeout=30).text
    assert principal_count(live) == before
    assert not [e for e in audit_entries(live, "principal-disable") if e["target"] == "target"]
    assert taxii_status(live, live.added["target"]["api_key"]) == 200


def test_admin_forms_keep_csrf_protection(live):
    session, _ = session_for(live, "boss")
    answer = session.post(f"{live.base}/console/admin/principals", timeout=30, data={
        "name": "forged", "org": "X", "tier": "trusted"})
    assert answer.status_code == 400
    assert "forged" not in listed(live)


# --- bad input: 4xx naming the field, nothing written -----------------------------------

@pytest.mark.parametrize(("fields", "label"), [
    ({"name": "", "org": "X", "tier": "trusted"}, "Name"),
    ({"name": "n1", "org": "", "tier": "trusted"}, "Organisation"),
    ({"name": "n2", "org": "X", "tier": "godlike"}, "Tier"),
    ({"name": "n3", "org": "X", "tier": "trusted", "roles": "superuser"}, "Roles"),
    ({"name": "n4", "org": "X", "tier": "trusted", "sectors": "moon"}, "Sectors"),
    ({"name": "n5", "org": "X", "tier": "trusted", "compartments": "NOPE"}, "Compartments"),
    ({"name": "reader", "org": "X", "tier": "trusted"}, "Name"),
    ({"name": "operator", "org": "X", "tier": "trusted"}, "Name"),  # the CLI's audit actor
    ({"name": "n6" * 150, "org": "X", "tier": "trusted"}, "Name"),
])
def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(live, fields, label):
    session, token = session_for(live, "boss")
    before = principal_count(live), len(audit_entries(live, "principal-add"))
    answer = session.post(f"{live.base}/console/admin/principals", timeout=30,
                          data={**fields, "csrf_token": token})
    assert answer.status_code == 422, answer.text[:500]
    assert re.search(rf'<a href="#f-[a-z_]+">{label}</a>', answer.text), answer.text[-3000:]
    assert (principal_count(live), len(audit_entries(live, "principal-add"))) == before


def test_a_short_password_is_refused_by_name(live):
    session, token = session_for(live, "boss")
    target_id = live.added["target"]["id"]
    answer = session.post(f"{live.base}/console/admin/principals/{target_id}/password",
                          timeout=30, data={"csrf_token": token, "password": "short"})
    assert answer.status_code == 422 and "New password</a>: a password needs at least 12" \
        in answer.text
    assert not [e for e in audit_entries(live, "principal-set-password")
                if e["target"] == "target"]


# --- the admin's paths ------------------------------------------------------------------

def test_add_a_principal_key_shown_once_audited_like_the_cli(boss, live):
    boss.get_by_role("link", name="Admin").click()
    expect(boss.get_by_role("heading", name="Principals")).to_be_visible()
    boss.get_by_label("Name").fill("newcomer")
    boss.get_by_label("Organisation").fill("River Authority")
    boss.get_by_label("Tier").select_option("partner")
    boss.get_by_label("publisher").check()
    boss.get_by_label("Dams").check()
    boss.get_by_role("button", name="Add principal").click()
    key = boss.locator("#api-key").inner_text()
    assert key.startswith("is_") or "_" in key
    shot(boss, "01-added")
    assert taxii_status(live, key) == 200
    boss.reload()  # a GET of the same principal: the key is gone for good
    expect(boss.locator("#api-key")).to_have_count(0)
    assert key not in boss.content()
    cli(live.env, "principals", "add", "cli-made", "--org", "X", "--tier", "partner")
    entries = {e["target"]: e for e in audit_entries(live, "principal-add")}
    console, operator = entries["newcomer"], entries["cli-made"]
    assert (console["actor"], operator["actor"]) == ("boss", "operator")
    assert console["details"].keys() == operator["details"].keys()
    assert console["details"]["roles"] == ["publisher", "reader"]  # reader is pre-checked
    shown = {json.loads(line)["name"]: json.loads(line) for line in
             cli(live.env, "principals", "list").stdout.splitlines()}
    assert shown["newcomer"]["sectors"] == ["dams"] and shown["newcomer"]["tier"] == "partner"


def test_clearance_disable_password_and_keys(boss, live):
    target = live.added["target"]
    boss.goto(f"{live.base}/console/admin/principals/{target['id']}")
    boss.get_by_label("Tier").select_option("trusted")
    boss.get_by_role("group", name="Roles").get_by_label("publisher").check()
    boss.get_by_role("button", name="Save clearance").click()
    expect(boss.locator(".flash-success")).to_contain_text("tier")
    assert listed(live)["target"]["tier"] == "trusted"
    assert listed(live)["target"]["roles"] == ["publisher", "reader"]

    boss.once("dialog", lambda dialog: dialog.accept())
    boss.get_by_role("button", name="Disable target").click()
    expect(boss.locator(".flash-success")).to_contain_text("disabled")
    assert taxii_status(live, target["api_key"]) == 401
    boss.get_by_role("button", name="Enable target").click()
    assert taxii_status(live, target["api_key"]) == 200

    boss.get_by_label("New password").fill("a brand new password")
    boss.get_by_role("button", name="Set password").click()
    expect(boss.locator(".flash-success")).to_contain_text("new password")
    session = requests.Session()
    token = token_of(session.get(f"{live.base}/console/login", timeout=30).text)
    assert session.post(f"{live.base}/console/login", timeout=30, allow_redirects=False, data={
        "name": "target", "password": "a brand new password", "csrf_token": token}
    ).status_code == 302

    boss.get_by_role("button", name="Create API key").click()
    second = boss.locator("#api-key").inner_text()
    assert taxii_status(live, second) == 200
    key_id = second.split("_")[1]
    boss.goto(f"{live.base}/console/admin/principals/{target['id']}")
    boss.once("dialog", lambda dialog: dialog.accept())
    boss.get_by_role("button", name=f"Revoke key {key_id}").click()
    expect(boss.locator(".flash-success")).to_contain_text(key_id)
    assert taxii_status(live, second) == 401
    assert taxii_status(live, target["api_key"]) == 200  # its other key goes on
    shot(boss, "02-principal")
    actions = [e["action"] for e in audit_entries(live)
               if e["target"] == "target" and e["actor"] == "boss"]
    assert {"principal-update", "principal-disable", "principal-enable",
            "principal-set-password", "key-add", "key-revoke"} <= set(actions)


def test_the_cli_update_and_enable_write_what_the_console_writes(live):
    """`principals update` / `enable` are the console's Save clearance / Enable: the same
    function, the same audit action and details; only the actor differs."""
    cli(live.env, "principals", "update", "analyst", "--tier", "partner", "--sector",
        "water", "--role", "publisher")
    cli(live.env, "principals", "disable", "analyst")
    cli(live.env, "principals", "enable", "analyst")
    assert listed(live)["analyst"] == {"tier": "partner", "roles": ["publisher"],
                                       "disabled": False}
    mine = [e for e in audit_entries(live) if e["target"] == "analyst"]
    update = next(e for e in mine if e["action"] == "principal-update")
    assert update["actor"] == "operator" and set(update["details"]["changed"]) == {
        "tier", "all_sectors", "sector_mask"}
    by_console = next(e for e in audit_entries(live, "principal-update")
                      if e["actor"] == "boss")
    assert update["details"].keys() == by_console["details"].keys()
    assert [e["action"] for e in mine][-2:] == ["principal-disable", "principal-enable"]
    refused = cli(live.env, "principals", "update", "analyst", "--tier", "godlike",
                  check=False)
    assert refused.returncode != 0 and "unknown tier" in refused.stderr


def test_an_admin_cannot_lock_itself_out(boss, live):
    me = live.added["boss"]["id"]
    boss.goto(f"{live.base}/console/admin/principals/{me}")
    expect(boss.get_by_role("button", name="Disable boss")).to_have_count(0)
    boss.get_by_role("group", name="Roles").get_by_label("admin").uncheck()
    boss.get_by_role("button", name="Save clearance").click()
    expect(boss.locator("#err-roles")).to_contain_text("your own admin role")
    session, token = session_for(live, "boss")
    answer = session.post(f"{live.base}/console/admin/principals/{me}/disable", timeout=30,
                          data={"csrf_token": token})
    assert answer.status_code == 200 and "cannot disable yourself" in answer.text
    me_now = listed(live)["boss"]
    assert me_now["disabled"] is False and "admin" in me_now["roles"]


def test_the_audit_log_filters(boss, live):
    boss.goto(f"{live.base}/console/admin/audit")
    boss.get_by_label("Action").select_option("key-revoke")
    boss.get_by_label("Actor").fill("boss")
    boss.get_by_role("button", name="Filter").click()
    rows = boss.locator("table.audit tbody tr")
    expect(rows.first).to_be_visible()
    assert all("key-revoke" in t and "boss" in t for t in rows.all_inner_texts())
    shot(boss, "03-audit")
    boss.goto(f"{live.base}/console/admin/audit?from=2000-01-01&to=2000-12-31")
    expect(boss.locator("table.audit")).to_have_count(0)


def test_no_password_or_key_hash_reaches_a_page(live):
    with sqlite3.connect(live.db) as db:
        hashes = [h for (h,) in db.execute("SELECT password_hash FROM principals "
                                           "UNION ALL SELECT secret_hash FROM api_keys") if h]
    assert hashes
    session, _ = session_for(live, "boss")
    paths = ["/console/admin/principals", "/console/admin/audit"] + [
        f"/console/admin/principals/{info['id']}" for info in live.added.values()]
    for path in paths:
        text = session.get(live.base + path, timeout=30).text
        assert "scrypt$" not in text, path
        assert not [h for h in hashes if h.split("$")[-1] in text], path
