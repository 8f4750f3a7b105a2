"""Subscriptions, personal collections and webhook delivery, end to end: a real server, a
real receiver on loopback that fails, hangs and recovers, and a restart in the middle."""

from __future__ import annotations

import json
import time

import pytest
import requests

from .live import LiveServer, cli, service_env
from .receiver import Receiver

TAXII = "application/taxii+json;version=2.1"
SECRET = "a-webhook-secret-of-some-length"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("subscriptions")
    return service_env(data_dir, "", INFOSHARE_WEBHOOKS_ALLOW_HTTP_HOSTS="127.0.0.1",
                       INFOSHARE_WEBHOOKS_RETRY_BASE_SECONDS="0.3",
                       INFOSHARE_WEBHOOKS_TIMEOUT_SECONDS="1.0",
                       INFOSHARE_WEBHOOKS_MAX_ATTEMPTS="4")


@pytest.fixture(scope="module")
def live(env):
    server = LiveServer(env, workers=2)
    server.keys = {}
    for name, args in {
        "analyst": ["--org", "Ops", "--tier", "trusted", "--all-sectors", "--role", "publisher"],
        "water": ["--org", "Water Co", "--tier", "member", "--sector", "water"],
        "energy": ["--org", "Grid Co", "--tier", "partner", "--sector", "energy"],
    }.items():
        server.keys[name] = server.add_principal(name, *args, password=PASSWORD)["api_key"]
    yield server
    server.stop()


def api(live, method: str, path: str, who: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {live.keys[who]}"}
    if method != "GET" and "json" not in kwargs and "data" not in kwargs:
        kwargs["json"] = {}  # the API takes changes as JSON only
    return requests.request(method, f"{live.base}/api/v1/{path}", headers=headers, timeout=30,
                            **kwargs)


def bulletin(title: str, **fields) -> dict:
    return {"title": title, "kind": "cyber", "tlp": "green", "sectors": ["water"],
            "severity": "Severe", "indicators": [{"value": "203.0.113.9"}], **fields}


def publish(live, document: dict) -> dict:
    response = api(live, "POST", "bulletins", "analyst", json=document)
    assert response.status_code in (200, 201), response.text
    return response.json()


def personal_ids(live, who: str, collection_id: str) -> set[str]:
    response = requests.get(f"{live.api_root}collections/{collection_id}/objects/",
                            headers={"Accept": TAXII,
                                     "Authorization": f"Bearer {live.keys[who]}"},
                            timeout=30)
    assert response.status_code == 200, response.text
    return {o["id"] for o in response.json().get("objects", [])
            if o["type"] not in ("marking-definition", "extension-definition", "identity")}


def test_subscription_crud_and_validation(live):
    created = api(live, "POST", "subscriptions", "water", json={"name": "all water"})
    assert created.status_code == 201
    body = created.json()
    assert body["id"] and body["collection_id"] and body["max_tlp"] == "red"
    ident = body["id"]
    assert any(s["id"] == ident for s in api(live, "GET", "subscriptions", "water")
               .json()["subscriptions"])
    assert api(live, "GET", f"subscriptions/{ident}", "energy").status_code == 404
    paused = api(live, "PATCH", f"subscriptions/{ident}", "water", json={"paused": True})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert api(live, "DELETE", f"subscriptions/{ident}", "energy").status_code == 404
    assert api(live, "DELETE", f"subscriptions/{ident}", "water").status_code == 204
    assert api(live, "GET", f"subscriptions/{ident}", "water").status_code == 404


@pytest.mark.parametrize("document,field", [
    ({}, "name"),
    ({"name": "x", "sectors": ["mars"]}, "sectors"),
    ({"name": "x", "min_severity": "Huge"}, "min_severity"),
    ({"name": "x", "max_tlp": "purple"}, "max_tlp"),
    ({"name": "x", "webhook_url": "https://example.com/h"}, "webhook_secret"),
    ({"name": "x", "webhook_url": "http://example.com/h", "webhook_secret": SECRET},
     "webhook_url"),
    ({"name": "x", "webhook_url": "https://[::1]/h", "webhook_secret": SECRET},
     "webhook_url"),
    ({"name": "x", "webhook_url": "https://10.1.2.3/h", "webhook_secret": SECRET},
     "webhook_url"),
    ({"name": "x", "webhook_url": "https://169.254.169.254/latest", "webhook_secret": SECRET},
     "webhook_url"),
])
def test_invalid_subscriptions_name_the_field(live, document, field):
    response = api(live, "POST", "subscriptions", "water", json=document)
    assert response.status_code == 400
    assert field in response.json()["fields"], response.json()


def test_personal_collection_holds_exactly_the_matches(live):
    sub = api(live, "POST", "subscriptions", "water", json={
        "name": "severe water indicators", "sectors": ["water"], "types": ["indicator"],
        "kinds": ["cyber"], "min_severity": "Severe", "labels": ["ransomware"],
        "max_tlp": "amber"}).json()
    match = publish(live, bulletin("match", labels=["ransomware"]))
    publish(live, bulletin("wrong label", labels=["phishing"]))
    publish(live, bulletin("too mild", severity="Moderate", labels=["ransomware"]))
    publish(live, bulletin("wrong sector", sectors=["energy"], labels=["ransomware"]))
    publish(live, bulletin("wrong kind", kind="natural", labels=["ransomware"]))
    publish(live, bulletin("too red", tlp="red", recipients=["water"], labels=["ransomware"]))
    indicators = {i for i in match["objects"] if i.startswith("indicator--")}
    assert personal_ids(live, "water", sub["collection_id"]) == indicators
    listed = requests.get(f"{live.api_root}collections/", timeout=10, headers={
        "Accept": TAXII, "Authorization": f"Bearer {live.keys['water']}"}).json()
    assert sub["collection_id"] in {c["id"] for c in listed["collections"]}
    other = requests.get(f"{live.api_root}collections/{sub['collection_id']}/objects/",
                         timeout=10, headers={"Accept": TAXII,
                                              "Authorization": f"Bearer {live.keys['energy']}"})
    assert other.status_code == 404


def test_subscription_never_widens_what_the_owner_may_see(live):
    sub = api(live, "POST", "subscriptions", "energy", json={"name": "everything"}).json()
    amber = publish(live, bulletin("amber energy", tlp="amber", sectors=["energy"]))
    green = publish(live, bulletin("green energy", sectors=["energy"]))
    seen = personal_ids(live, "energy", sub["collection_id"])
    assert set(green["objects"]) <= seen
    assert not set(amber["objects"]) & seen  # a partner reads GREEN at most


def test_webhook_retries_through_failures_and_timeouts_exactly_once(live):
    receiver = Receiver(script=[500, "hang", 503])
    try:
        sub = api(live, "POST", "subscriptions", "water", json={
            "name": "hook", "sectors": ["water"], "webhook_url": receiver.url,
            "webhook_secret": SECRET}).json()
        published = publish(live, bulletin("pushed"))
        receiver.wait_for(lambda r: r.accepted(), timeout=40)
        time.sleep(1.5)  # time for any duplicate to show up
        accepted = receiver.accepted()
        assert len(accepted) == 1
        attempts = [r for r in receiver.requests if r.delivery_id == accepted[0].delivery_id]
        assert len(attempts) == 4  # 500, timeout, 503, then 200
        assert len({r.body for r in attempts}) == 1  # every retry sends the same bytes
        assert accepted[0].signed_by(SECRET)
        ids = [o["id"] for o in accepted[0].objects]
        assert sorted(ids) == sorted(published["objects"])
        assert len(ids) == len(set(ids))
        state = api(live, "GET", f"subscriptions/{sub['id']}", "water").json()["deliveries"]
        assert state[0]["state"] == "delivered" and state[0]["attempts"] == 4
    finally:
        receiver.stop()
        api(live, "DELETE", f"subscriptions/{sub['id']}", "water")


def test_dead_letter_and_replay(live, env):
    receiver = Receiver(script=[500] * 4)
    try:
        sub = api(live, "POST", "subscriptions", "water", json={
            "name": "dead", "sectors": ["water"], "webhook_url": receiver.url,
            "webhook_secret": SECRET}).json()
        publish(live, bulletin("will die"))
        receiver.wait_for(lambda r: len(r.requests) >= 4, timeout=40)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            dead = [json.loads(line) for line in
                    cli(env, "deliveries", "list", "--state", "dead").stdout.splitlines()]
            if dead:
                break
            time.sleep(0.3)
        assert dead and dead[0]["attempts"] == 4
        assert json.loads(cli(env, "deliveries", "retry").stdout)["queued"] >= 1
        receiver.wait_for(lambda r: r.accepted(), timeout=20)
        assert receiver.accepted()[0].delivery_id == dead[0]["id"]
        actions = [json.loads(line)["action"] for line in cli(env, "audit").stdout.splitlines()]
        assert {"publish", "subscribe", "delivery-dead", "delivery-delivered"} <= set(actions)
    finally:
        receiver.stop()
        api(live, "DELETE", f"subscriptions/{sub['id']}", "water")


def test_only_the_owner_reaches_a_subscription_not_even_an_admin(live, env):
    """Its webhook receives what the owner may see: nobody else may read or redirect it."""
    admin = live.add_principal("ops-admin", "--org", "Ops", "--tier", "public",
                               "--sector", "energy", "--role", "admin")["api_key"]
    sub = api(live, "POST", "subscriptions", "water", json={"name": "mine"}).json()
    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"paused": True}}),
                           ("DELETE", {"json": {}})):
        response = requests.request(method, f"{live.base}/api/v1/subscriptions/{sub['id']}",
                                    headers={"Authorization": f"Bearer {admin}"}, timeout=10,
                                    **kwargs)
        assert response.status_code == 404, method


def test_nothing_is_lost_across_a_service_restart(env, live):
    receiver = Receiver(script=[503] * 100)
    restarted = None
    try:
        sub = api(live, "POST", "subscriptions", "water", json={
            "name": "restart", "sectors": ["water"], "webhook_url": receiver.url,
            "webhook_secret": SECRET}).json()
        published = publish(live, bulletin("across restart"))
        receiver.wait_for(lambda r: r.requests, timeout=20)
        live.stop()  # the delivery is still pending: the receiver has only failed so far
        assert not receiver.accepted()
        receiver.script.clear()
        restarted = LiveServer(env, workers=1)
        receiver.wait_for(lambda r: r.accepted(), timeout=40)
        ids = {o["id"] for o in receiver.accepted()[0].objects}
        assert ids == set(published["objects"])
    finally:
        receiver.stop()
        if restarted:
            restarted.keys = live.keys
            api(restarted, "DELETE", f"subscriptions/{sub['id']}", "water")
            restarted.stop()
