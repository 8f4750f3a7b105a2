"""Credentials an operator can manage, sessions that end, and guessing that is throttled,
against a live server (2 workers, each with its own key cache) driven over HTTP and the
real `infoshare` command.

Throttling counts by client address, so the guessing attacker here speaks from
127.0.0.2 (any 127/8 address reaches the loopback server) while the victim stays on
127.0.0.1.
"""

from __future__ import annotations

import base64
import http.client
import json
import re

import pytest
import requests

from .live import LiveServer, cli, service_env

TAXII = "application/taxii+json;version=2.1"
PASSWORD = "a first password, long enough"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(service_env(tmp_path_factory.mktemp("credentials")), workers=2)
    yield live
    live.stop()


def add(server, name: str, password: str = PASSWORD) -> dict:
    return server.add_principal(name, "--org", "Ops", "--tier", "partner", "--sector",
                                "water", password=password)


def taxii_status(server, auth: str, source: str = "127.0.0.1") -> tuple[int, dict]:
    """A TAXII discovery request from `source` with this Authorization header."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                            source_address=(source, 0))
    try:
        connection.request("GET", "/taxii2/", headers={"Accept": TAXII, "Authorization": auth})
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def console_login(server, name: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{server.base}/console/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = session.post(f"{server.base}/console/login", timeout=30, data={
        "csrf_token": token, "name": name, "password": password, "next": "/console/bulletins"})
    assert response.status_code == 200, response.text[:300]
    session.csrf = re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)
    return session


def opens_console(server, cookies) -> bool:
    response = requests.get(f"{server.base}/console/bulletins", cookies=cookies, timeout=30,
                            allow_redirects=False)
    return response.status_code == 200


def test_key_lifecycle_revocation_is_immediate_in_every_worker(server):
    first = add(server, "keyholder")["api_key"]
    second = json.loads(cli(server.env, "principals", "new-key", "keyholder").stdout)
    assert second["api_key"].startswith("isk_") and second["key_id"]
    for _ in range(6):  # both workers verify and cache both keys
        assert taxii_status(server, f"Bearer {first}")[0] == 200
        assert taxii_status(server, f"Token {second['api_key']}")[0] == 200
    keys = [json.loads(line) for line in
            cli(server.env, "principals", "keys", "keyholder").stdout.splitlines()]
    assert {k["key_id"] for k in keys} >= {second["key_id"]} and len(keys) == 2
    assert all(k["last_used"] and not k["revoked"] for k in keys)
    first_id = next(k["key_id"] for k in keys if k["key_id"] != second["key_id"])
    cli(server.env, "principals", "revoke-key", "keyholder", first_id)
    for _ in range(6):
        assert taxii_status(server, f"Bearer {first}")[0] == 401
        assert taxii_status(server, f"Bearer {second['api_key']}")[0] == 200
    again = cli(server.env, "principals", "revoke-key", "keyholder", first_id, check=False)
    assert again.returncode != 0 and "no live key" in again.stderr
    audit = cli(server.env, "audit").stdout
    assert "key-add" in audit and "key-revoke" in audit


def test_log_out_ends_the_session_for_every_copy_of_the_cookie(server):
    add(server, "leaver")
    session = console_login(server, "leaver", PASSWORD)
    copied = session.cookies.copy()
    assert opens_console(server, copied)
    session.post(f"{server.base}/console/logout", data={"csrf_token": session.csrf},
                 timeout=30)
    assert not opens_console(server, copied)


@pytest.mark.parametrize("change", ["set-password", "disable", "revoke-key"])
def test_credential_changes_end_console_sessions(server, change):
    name = f"changer-{change}"
    added = add(server, name)
    session = console_login(server, name, PASSWORD)
    assert opens_console(server, session.cookies)
    if change == "set-password":
        cli(server.env, "principals", "set-password", name, "--password-stdin",
            input="a second password, also long\n")
        assert taxii_status(server, basic(name, PASSWORD))[0] == 401
        assert taxii_status(server, basic(name, "a second password, also long"))[0] == 200
    elif change == "disable":
        cli(server.env, "principals", "disable", name)
    else:
        key_id = added["api_key"].split("_")[1]
        cli(server.env, "principals", "revoke-key", name, key_id)
    assert not opens_console(server, session.cookies)


def test_set_password_refuses_short_or_missing_passwords(server):
    add(server, "short")
    for given in ("\n", "short\n"):
        result = cli(server.env, "principals", "set-password", "short", "--password-stdin",
                     input=given, check=False)
        assert result.returncode != 0 and "Traceback" not in result.stderr


def test_guessing_is_throttled_per_name_then_per_client(server):
    victim = add(server, "victim")["api_key"]
    attacker = "127.0.0.2"
    statuses = [taxii_status(server, basic("victim", f"guess {n}"), attacker)[0]
                for n in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429], statuses
    status, headers = taxii_status(server, basic("victim", "guess 13"), attacker)
    assert status == 429 and 0 < int(headers["retry-after"]) <= 60
    # The name is held for a minute at most, for passwords only: the victim's key works,
    # and the console log-in says so with 429 too.
    assert taxii_status(server, f"Bearer {victim}")[0] == 200
    api = requests.get(f"{server.base}/api/v1/bulletins", auth=("victim", PASSWORD),
                       timeout=30)
    assert api.status_code == 429 and api.headers["Retry-After"]
    page = requests.get(f"{server.base}/console/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    login = requests.post(f"{server.base}/console/login", cookies=page.cookies, timeout=30,
                          data={"csrf_token": token, "name": "victim", "password": PASSWORD})
    assert login.status_code == 429 and "Try again" in login.text
    # The attacker's address: 10 failures so far; 10 more on other names block it whole.
    for n in range(10):
        assert taxii_status(server, basic(f"nobody-{n}", "x"), attacker)[0] == 401
    # Now nothing new is even hashed for that address, right or wrong; a credential it
    # proved before stays remembered, and the victim's own address is not held.
    assert taxii_status(server, basic("leaver", PASSWORD), attacker)[0] == 429
    assert taxii_status(server, f"Bearer {victim}")[0] == 200


def test_guesses_racing_in_together_are_counted_before_they_are_hashed(tmp_path):
    """40 wrong passwords for one name at once, from one client: at most the name's
    limit are hashed (each is counted before its hash), the rest are Throttled."""
    from concurrent.futures import ThreadPoolExecutor

    from infoshare.authn import NAME_RULE, Authenticator, Throttled
    from infoshare.store import migrate
    from infoshare.store.engine import connect_engine
    from infoshare.tiers import Tiers

    engine = connect_engine(f"sqlite:///{tmp_path / 'race.db'}")
    migrate.upgrade(engine)
    authenticator = Authenticator(engine, Tiers({"partner": "green"}), 60, log2_n=12,
                                  hashes_at_once=4)

    def guess(n: int) -> str:
        try:
            authenticator.check_password("victim", f"guess {n}", "127.0.0.9")
        except Throttled:
            return "throttled"
        return "hashed"

    with ThreadPoolExecutor(40) as pool:
        outcomes = list(pool.map(guess, range(40)))
    engine.dispose()
    assert outcomes.count("hashed") <= NAME_RULE.limit, outcomes.count("hashed")
    assert outcomes.count("throttled") >= 40 - NAME_RULE.limit
