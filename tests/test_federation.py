"""Federation: three real hubs on loopback relay each other's signed objects.

A publishes at CLEAR, GREEN, AMBER and RED; B relays A's all-hazards collection, C relays
B's, and A relays C's to close a loop. Every feed pins its upstream's JWKS and verifies
every object against the pinned keys; a downstream consumer verifies A's objects at C
with what C serves and nothing else.
"""

from __future__ import annotations

import json
import re
import threading
import uuid

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .live import LiveServer, cli, service_env
from .pg import free_port

TAXII = "application/taxii+json;version=2.1"
ALL = "5d4d1a3c-6b0e-4d55-9a44-0c5f2d8e7a01"
PASSWORD = "federation: a long enough password"
TITLES = {"clear": "Flood gauge offline", "green": "Phishing wave at utilities",
          "amber": "Intrusion at a substation", "red": "Named suspect for the intrusion"}


def _config(title: str, feeds: list[dict]) -> str:
    lines = ["[taxii]", f'title = "{title}"', f'contact = "soc@{title.split()[-1].lower()}'
             '.example"', ""]
    for feed in feeds:
        lines.append("[[feeds]]")
        for key, value in feed.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def _feed(name: str, upstream_port: int, **extra) -> dict:
    base = f"http://127.0.0.1:{upstream_port}"
    return {"name": name, "kind": "taxii", "enabled": False, "sectors": "all",
            "url": f"{base}/taxii2/infoshare/collections/{ALL}/",
            "username": "downstream", "password": PASSWORD,
            "jwks": f"{base}/.well-known/jwks.json", **extra}


class Hub:
    def __init__(self, tmp_path, name: str, port: int, feeds: list[dict]):
        config = tmp_path / f"{name}.toml"
        config.write_text(_config(f"Hub {name}", feeds))
        self.env = service_env(tmp_path / name, INFOSHARE_CONFIG=str(config),
                               INFOSHARE_OUTBOUND_ALLOW_HOSTS="127.0.0.1")
        self.server = LiveServer(self.env, workers=1, port=port)
        self.keys: dict[str, str] = {}

    def principal(self, name: str, tier: str, *extra: str, password: str | None = None):
        added = self.server.add_principal(name, "--org", f"{name} org", "--tier", tier,
                                          "--all-sectors", *extra, password=password)
        self.keys[name] = added["api_key"]

    def run(self, feed: str) -> dict:
        return json.loads(cli(self.env, "feeds", "run", feed).stdout)

    def get(self, who: str, path: str, **params) -> requests.Response:
        return requests.get(f"{self.server.api_root}{path}", params=params, timeout=30,
                            headers={"Accept": TAXII,
                                     "Authorization": f"Bearer {self.keys[who]}"})

    def objects(self, who: str) -> dict[str, dict]:
        found, token = {}, None
        while True:
            body = self.get(who, f"collections/{ALL}/objects/", limit=200,
                            **({"next": token} if token else {})).json()
            found.update({o["id"]: o for o in body.get("objects", [])})
            if not body.get("more"):
                return found
            token = body["next"]

    def reports(self, who: str) -> set[str]:
        return {o["name"] for o in self.objects(who).values() if o["type"] == "report"}


@pytest.fixture(scope="module")
def hubs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("federation")
    ports = {name: free_port() for name in "ABC"}
    started = []
    try:
        a = Hub(tmp, "A", ports["A"], [_feed("from-c", ports["C"])])
        started.append(a)
        b = Hub(tmp, "B", ports["B"], [_feed("from-a", ports["A"], relay_to=["b-red"])])
        started.append(b)
        c = Hub(tmp, "C", ports["C"], [_feed("from-b", ports["B"]),
                                       _feed("from-a-direct", ports["A"])])
        started.append(c)
        a.principal("publisher", "trusted", "--role", "publisher")
        for hub, tiers in ((a, {}), (b, {"b-partner": "partner", "b-member": "member",
                                         "b-red": "trusted"}),
                           (c, {"c-member": "member", "c-trusted": "trusted"})):
            hub.principal("downstream", "trusted", password=PASSWORD)
            for name, tier in tiers.items():
                hub.principal(name, tier)
        published = {}
        for tlp, title in TITLES.items():
            response = requests.post(
                f"{a.server.base}/api/v1/bulletins", timeout=30,
                headers={"Authorization": f"Bearer {a.keys['publisher']}"},
                json={"title": title, "kind": "cyber", "tlp": tlp, "sectors": "all",
                      "indicators": [{"value": f"198.51.100.{len(published) + 1}"}],
                      "source_id": f"fed-{uuid.uuid4()}",
                      **({"recipients": ["downstream"]} if tlp == "red" else {})})
            assert response.status_code == 201, response.text
            published[tlp] = response.json()
        runs = {"B": b.run("from-a"), "C": c.run("from-b"), "A": a.run("from-c")}
        yield a, b, c, published, runs
    finally:
        for hub in started:
            hub.server.stop()


def test_each_tier_downstream_reads_what_tlp_allows(hubs):
    a, b, c, _, runs = hubs
    assert runs["B"]["rejected"] == 0 and runs["C"]["rejected"] == 0, runs
    assert b.reports("b-partner") == {TITLES["clear"], TITLES["green"]}
    # relay_max_tlp defaults to green: A's AMBER stays at B, for nobody.
    assert b.reports("b-member") == {TITLES["clear"], TITLES["green"]}
    # RED is relayed only to the principals B's feed names in relay_to.
    assert b.reports("b-red") == {TITLES["clear"], TITLES["green"], TITLES["red"]}
    # ... and never a second hop, whoever asks at C.
    assert c.reports("c-member") == {TITLES["clear"], TITLES["green"]}
    assert c.reports("c-trusted") == {TITLES["clear"], TITLES["green"]}
    assert runs["B"]["withheld"] >= 2  # the AMBER report and indicator


def test_relayed_objects_are_stored_byte_for_byte(hubs):
    a, _, c, published, _ = hubs
    report = published["green"]["id"]
    at_a = a.get("publisher", f"collections/{ALL}/objects/{report}/")
    at_c = c.get("c-member", f"collections/{ALL}/objects/{report}/")
    assert at_a.status_code == at_c.status_code == 200
    assert at_a.content == at_c.content


def test_a_consumer_of_c_verifies_a_objects_with_only_what_c_serves(hubs, tmp_path):
    a, _, c, published, _ = hubs
    peers = requests.get(f"{c.server.base}/.well-known/infoshare-peers.json", timeout=10)
    assert peers.status_code == 200
    names = {p["name"] for p in peers.json()["peers"]}
    assert {"Hub A", "Hub B"} <= names
    result = cli(c.env, "verify", f"{c.server.api_root}collections/{ALL}/objects/",
                 "--api-key", c.keys["c-member"], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[2]: line for line in result.stdout.splitlines() if line.strip()}
    report = published["green"]["id"]
    assert lines[report].startswith("OK") and "relayed from Hub A" in lines[report]
    assert "relayed" in result.stderr


def test_the_loop_stores_nothing_twice(hubs):
    a, b, c, published, runs = hubs
    # A met its own objects coming back through C: echoes, none stored, none refused.
    assert runs["A"]["echoes"] >= 8 and runs["A"]["rejected"] == 0, runs["A"]
    # What A did store from C is the other hubs' own: their identities, which their
    # extension definitions name as producer.
    hubs_seen = {o["name"] for o in a.objects("publisher").values()
                 if o["type"] == "identity" and o.get("identity_class") == "organization"}
    assert hubs_seen == {"Hub A", "Hub B", "Hub C"}
    assert runs["A"]["created"] == 2, runs["A"]
    again = c.run("from-b")
    assert again["created"] == again["updated"] == again["rejected"] == 0, again
    ids = [o for o in c.objects("c-member") if o.startswith("report--")]
    assert len(ids) == len(set(ids)) == 2
    # A's objects by a second path (C straight from A): each is a copy of what came
    # through B, byte for byte, so nothing is stored twice.
    direct = c.run("from-a-direct")
    assert direct["created"] == direct["updated"] == direct["rejected"] == 0, direct
    assert direct["unchanged"] >= 6, direct


def test_a_changed_byte_is_refused_and_named(hubs, tmp_path):
    """An upstream that serves A's signed object with one property changed."""
    a, b, *_ = hubs
    report = a.get("publisher", f"collections/{ALL}/objects/").json()["objects"]
    original = next(o for o in report if o["type"] == "indicator")
    tampered = original | {"name": original["name"] + "x"}
    fixture = _Upstream({"objects": [tampered]})
    try:
        config = tmp_path / "tampered.toml"
        config.write_text(_config("Hub B", [{
            "name": "tampered", "kind": "taxii", "enabled": False, "sectors": "all",
            "url": f"{fixture.base}/collections/{_Upstream.ID}/",
            "jwks": f"{a.server.base}/.well-known/jwks.json"}]))
        env = {**b.env, "INFOSHARE_CONFIG": str(config)}
        run = json.loads(cli(env, "feeds", "run", "tampered").stdout)
        assert run["rejected"] == 1 and run["created"] == 0, json.dumps(run)
        status = [json.loads(line) for line in cli(env, "feeds", "status").stdout.splitlines()]
        [errors] = [s["errors"] for s in status if s["name"] == "tampered"]
        assert errors[0]["item"] == original["id"]
        assert "signature bad" in errors[0]["message"]
    finally:
        fixture.stop()


def test_pin_refreshes_deliberately_and_says_what_changed(hubs):
    a, b, *_ = hubs
    rotated = json.loads(cli(a.env, "keys", "rotate").stdout)
    pinned = json.loads(cli(b.env, "feeds", "pin", "from-a").stdout)
    # Besides A's new key, A now vouches for the keys it pinned from C since B first
    # pinned it (the loop); nothing was retired: A's old key stays in its JWKS.
    assert rotated["active"] in pinned["added"] and pinned["retired"] == []
    again = json.loads(cli(b.env, "feeds", "pin", "from-a").stdout)
    assert again["added"] == again["retired"] == []


class _Upstream:
    """A loopback TAXII 2.1 collection serving a fixed envelope."""

    ID = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"

    def __init__(self, envelope: dict):
        self.envelope = envelope
        port = free_port()
        self.server = make_server("127.0.0.1", port, self._app, threaded=True)
        self.base = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _app(self, environ, start_response):
        request = Request(environ)
        if request.path == f"/collections/{self.ID}/":
            body = {"id": self.ID, "title": "tampered", "can_read": True, "can_write": False}
        elif request.path == f"/collections/{self.ID}/objects/":
            body = self.envelope
        else:
            return Response("not found", status=404)(environ, start_response)
        return Response(json.dumps(body), content_type=TAXII)(environ, start_response)

    def stop(self) -> None:
        self.server.shutdown()


def test_provenance_is_recorded_and_shown(hubs):
    """B's feed status and console name the hub its objects came from and the key."""
    _, b, *_ = hubs
    status = {s["name"]: s for s in map(json.loads, cli(b.env, "feeds", "status")
                                        .stdout.splitlines())}
    relay = status["from-a"]["relay"]
    [hub] = [h for h in relay["hubs"] if h["name"] == "Hub A"]
    assert hub["objects"] >= 6 and hub["hops"] == 0 and hub["kids"]
    assert relay["pinned_keys"] >= 1 and relay["pinned_at"]
    b.principal("b-operator", "trusted", "--role", "publisher", password=PASSWORD)
    session = requests.Session()
    login = session.get(f"{b.server.base}/console/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    assert session.post(f"{b.server.base}/console/login", timeout=30, data={
        "name": "b-operator", "password": PASSWORD, "csrf_token": token}).ok
    page = session.get(f"{b.server.base}/console/feeds", timeout=30)
    assert page.status_code == 200 and "Hub A" in page.text and hub["kids"][0] in page.text
