"""Trust under attack: each attack a hostile partner played, replayed over real HTTP on
SQLite and PostgreSQL, with the outcome the service must give.

- one owner per STIX id: a planted copy of a hidden report or of a service indicator is
  refused, and never shows in any read path;
- bulletins belong to their organisation: another organisation's publisher cannot update
  or revoke them (404 when hidden, 403 when visible), and source_ids are per organisation,
  so a hidden bulletin's source_id is no oracle;
- audience is content: narrowing or widening a bulletin re-versions every object and takes
  effect on every read path;
- strict JSON in, and a body that is not an envelope is refused.
"""

from __future__ import annotations

import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .live import LiveServer, service_env

TAXII = "application/taxii+json;version=2.1"
ALL = "5d4d1a3c-6b0e-4d55-9a44-0c5f2d8e7a01"
SUBMISSIONS = "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a04"
CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"

PRINCIPALS = {
    "analyst": ("--org", "Ops", "--tier", "trusted", "--all-sectors", "--compartment", "LES",
                "--role", "publisher"),
    "colleague": ("--org", "Ops", "--tier", "trusted", "--all-sectors", "--role", "publisher"),
    "rival": ("--org", "Rival Inc", "--tier", "trusted", "--all-sectors", "--compartment",
              "LES", "--role", "publisher"),
    "partner": ("--org", "Water Co", "--tier", "partner", "--sector", "water"),
    "friend": ("--org", "Friends", "--tier", "trusted", "--all-sectors", "--compartment", "LES"),
    "energy": ("--org", "Grid Inc", "--tier", "member", "--sector", "energy"),
    "water": ("--org", "Water Co", "--tier", "member", "--sector", "water"),
    "admin": ("--org", "Operators", "--tier", "trusted", "--all-sectors", "--compartment",
              "LES", "--role", "admin"),
}


PASSWORD = "integrity tests: a long password"


class Hub:
    def __init__(self, server: LiveServer, keys: dict[str, str]):
        self.server, self.keys = server, keys

    def _headers(self, who: str, **extra) -> dict:
        return {"Authorization": f"Bearer {self.keys[who]}", **extra}

    def api(self, who: str, method: str, path: str, **kwargs) -> requests.Response:
        if method != "GET" and "json" not in kwargs and "data" not in kwargs:
            kwargs["json"] = {}  # the API takes changes as JSON only
        return requests.request(method, f"{self.server.base}/api/v1/{path}", timeout=30,
                                headers=self._headers(who), **kwargs)

    def taxii(self, who: str, path: str, **params) -> requests.Response:
        return requests.get(f"{self.server.api_root}{path}", params=params, timeout=30,
                            headers=self._headers(who, Accept=TAXII))

    def post_raw(self, who: str, data: bytes | str) -> requests.Response:
        return requests.post(f"{self.server.api_root}collections/{SUBMISSIONS}/objects/",
                             data=data, timeout=30,
                             headers=self._headers(who, Accept=TAXII, **{"Content-Type": TAXII}))

    def submit(self, who: str, objects: list[dict]) -> dict:
        response = self.post_raw(who, json.dumps({"objects": objects}))
        assert response.status_code == 202, response.text
        return response.json()

    def publish(self, who: str, document: dict, expect: int = 201) -> dict:
        response = self.api(who, "POST", "bulletins", json=document)
        assert response.status_code == expect, response.text
        return response.json()

    def object(self, who: str, object_id: str, **params) -> requests.Response:
        return self.taxii(who, f"collections/{ALL}/objects/{object_id}/", **params)

    def latest(self, who: str, object_id: str) -> list[dict]:
        response = self.object(who, object_id)
        assert response.status_code == 200, response.text
        return response.json().get("objects", [])

    def all_ids(self, who: str, endpoint: str = "objects", **params) -> list[str]:
        ids, token = [], None
        while True:
            query = {"limit": 1000, **params, **({"next": token} if token else {})}
            body = self.taxii(who, f"collections/{ALL}/{endpoint}/", **query).json()
            ids += [o["id"] for o in body.get("objects", [])]
            if not body.get("more"):
                return ids
            token = body["next"]

    def console(self, who: str) -> requests.Session:
        """A logged-in console session (the log-in form, with its CSRF token)."""
        session = requests.Session()
        page = session.get(f"{self.server.base}/console/login", timeout=30)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        response = session.post(f"{self.server.base}/console/login", timeout=30, data={
            "csrf_token": token, "name": who, "password": PASSWORD, "next": ""})
        assert response.status_code == 200 and "/console/login" not in response.url
        # A log-in rotates the token; every page after it carries the new one.
        session.csrf = re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)
        return session

    def bulletin_ids(self, who: str) -> set[str]:
        response = self.api(who, "GET", "bulletins", params={"limit": 1000})
        assert response.status_code == 200, response.text
        return {b["id"] for b in response.json()["bulletins"]}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hub(request, tmp_path_factory):
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres").new_database()
    server = LiveServer(service_env(tmp_path_factory.mktemp(f"integrity-{request.param}"), url))
    try:
        with ThreadPoolExecutor(len(PRINCIPALS)) as pool:
            added = dict(zip(PRINCIPALS, pool.map(
                lambda item: server.add_principal(item[0], *item[1], password=PASSWORD),
                PRINCIPALS.items()), strict=True))
        yield Hub(server, {name: a["api_key"] for name, a in added.items()})
    finally:
        server.stop()


def bulletin(**overrides) -> dict:
    tag = uuid.uuid4().hex[:10]
    return {"title": f"Integrity {tag}", "summary": "A secret summary.", "kind": "cyber",
            "tlp": "green", "sectors": ["water"], "source_id": f"case-{tag}",
            "indicators": [{"value": f"{tag}.example.net"}], **overrides}


def hidden_bulletin(hub: Hub) -> dict:
    return hub.publish("analyst", bulletin(tlp="red", compartments=["LES"],
                                           recipients=["analyst"]))


def planted(object_id: str, object_type: str = "report", **extra) -> dict:
    base = {"type": object_type, "spec_version": "2.1", "id": object_id,
            "created": "2020-01-01T00:00:00.000Z", "modified": "2099-01-01T00:00:00.000Z",
            "object_marking_refs": [CLEAR]}
    if object_type == "report":
        base |= {"name": "planted", "published": "2020-01-01T00:00:00.000Z",
                 "object_refs": [f"note--{uuid.uuid4()}"]}
    if object_type == "indicator":
        base |= {"pattern": "[ipv4-addr:value = '203.0.113.9']", "pattern_type": "stix",
                 "valid_from": "2020-01-01T00:00:00Z"}
    return base | extra


# --- 1, 2: a planted report neither reveals nor hands over a hidden bulletin ----------------

def test_planted_report_id_is_refused_and_reveals_nothing(hub):
    secret = hidden_bulletin(hub)
    status = hub.submit("partner", [planted(secret["id"])])
    assert status["failure_count"] == 1 and status["success_count"] == 0
    message = status["failures"][0]["message"]
    # The same words whether or not the submitter could see the owner's object.
    visible = hub.publish("analyst", bulletin(tlp="clear"))
    status2 = hub.submit("partner", [planted(visible["id"])])
    assert status2["failures"][0]["message"] == message
    assert "another" in message
    for who in ("partner", "energy", "rival", "friend"):
        assert hub.api(who, "GET", f"bulletins/{secret['id']}").status_code == 404, who
        assert secret["id"] not in hub.bulletin_ids(who), who
        assert hub.object(who, secret["id"]).status_code == 404, who
        assert secret["id"] not in hub.all_ids(who), who
    assert hub.api("analyst", "GET", f"bulletins/{secret['id']}").status_code == 200


def test_guessing_report_ids_from_source_ids_finds_nothing(hub):
    """Report ids are no longer a public function of the source_id."""
    import uuid as uuid_module

    secret = hidden_bulletin(hub)
    legacy = uuid_module.UUID("3c1ed0a8-7f0e-4b5e-9d2a-6b8f4e2c1a90")
    source_id = hub.api("analyst", "GET", f"bulletins/{secret['id']}").json()["source_id"]
    guesses = {f"report--{uuid_module.uuid5(legacy, '|'.join(parts))}" for parts in (
        ("bulletin", source_id, "report", "report"),
        ("bulletin", "Ops", source_id, "report", "report"))}
    assert secret["id"] not in guesses


def test_other_organisations_cannot_rewrite_or_revoke_a_hidden_bulletin(hub):
    secret = hidden_bulletin(hub)
    hub.submit("partner", [planted(secret["id"])])
    assert hub.api("rival", "POST", f"bulletins/{secret['id']}/revoke").status_code == 404
    detail = hub.api("analyst", "GET", f"bulletins/{secret['id']}").json()
    assert detail["revoked"] is False
    # Re-using its source_id from another organisation makes the rival's own bulletin.
    own = hub.publish("rival", bulletin(source_id=detail["source_id"], title="rewrite"))
    assert own["id"] != secret["id"]
    after = hub.api("analyst", "GET", f"bulletins/{secret['id']}").json()
    assert after["version"] == detail["version"] and after["title"] == detail["title"]


def test_the_console_shows_nothing_of_a_hidden_bulletin_after_a_plant(hub):
    secret = hidden_bulletin(hub)
    hub.submit("partner", [planted(secret["id"])])
    base = f"{hub.server.base}/console"
    for who in ("partner", "rival"):
        console = hub.console(who)
        assert console.get(f"{base}/bulletins/{secret['id']}", timeout=30).status_code == 404
        for page in ("/bulletins", "/"):
            response = console.get(base + page, timeout=30)
            assert response.status_code == 200 and secret["id"] not in response.text, page
        revoke = console.post(f"{base}/bulletins/{secret['id']}/revoke", timeout=30,
                              data={"csrf_token": console.csrf})
        assert revoke.status_code in (403, 404), who


def test_the_console_refuses_another_organisations_update_and_revoke(hub):
    published = hub.publish("analyst", bulletin(tlp="green", sectors="all"))
    console = hub.console("rival")
    base = f"{hub.server.base}/console/bulletins/{published['id']}"
    page = console.get(base, timeout=30)
    assert page.status_code == 200 and "Revoke" not in page.text
    assert console.get(f"{base}/edit", timeout=30).status_code == 403
    revoke = console.post(f"{base}/revoke", timeout=30, data={"csrf_token": console.csrf})
    assert revoke.status_code == 403
    assert hub.api("analyst", "GET", f"bulletins/{published['id']}").json()["revoked"] is False
    mine = hub.console("colleague")  # the same organisation: may update
    assert mine.get(f"{base}/edit", timeout=30).status_code == 200


# --- 3: one latest version per id --------------------------------------------------------

def test_a_service_indicator_cannot_be_shadowed(hub):
    published = hub.publish("analyst", bulletin(tlp="clear", sectors="all"))
    indicator_id = next(i for i in published["objects"] if i.startswith("indicator--"))
    status = hub.submit("partner", [planted(indicator_id, "indicator", revoked=True)])
    assert status["failure_count"] == 1
    for who in ("partner", "energy", "analyst"):
        latest = hub.latest(who, indicator_id)
        assert len(latest) == 1 and not latest[0].get("revoked"), who
        versions = hub.taxii(who, f"collections/{ALL}/objects/{indicator_id}/versions/").json()
        assert versions["versions"] == [latest[0]["modified"]], who
        manifest = [i for i in hub.all_ids(who, "manifest", **{"match[id]": indicator_id})]
        assert manifest == [indicator_id], who
    everything = hub.all_ids("analyst")
    assert len(everything) == len(set(everything))


def test_a_byte_for_byte_copy_is_a_duplicate_not_a_failure(hub):
    published = hub.publish("analyst", bulletin(tlp="clear", sectors="all"))
    indicator = hub.latest("partner", published["objects"][1])[0]
    status = hub.submit("partner", [indicator])
    assert status["success_count"] == 1 and status["failure_count"] == 0, status
    assert len(hub.latest("energy", indicator["id"])) == 1
    changed = indicator | {"description": "edited"}
    assert hub.submit("partner", [changed])["failure_count"] == 1


def test_partners_own_their_ids_too(hub):
    mine = planted(f"indicator--{uuid.uuid4()}", "indicator",
                   modified="2025-01-01T00:00:00.000Z")
    assert hub.submit("partner", [mine])["success_count"] == 1
    hijack = mine | {"modified": "2030-01-01T00:00:00.000Z"}
    assert hub.submit("water", [hijack])["failure_count"] == 1
    newer = mine | {"modified": "2026-01-01T00:00:00.000Z"}
    status = hub.submit("partner", [newer])
    assert status["success_count"] == 1
    latest = hub.latest("water", mine["id"])
    assert [o["modified"] for o in latest] == ["2026-01-01T00:00:00.000Z"]


# --- 4: update and revoke belong to the owning organisation -------------------------------

def test_another_organisations_publisher_cannot_update_or_revoke(hub):
    doc = bulletin(tlp="green", sectors="all")
    published = hub.publish("analyst", doc)
    # The rival can read it: 403, and nothing changes.
    assert hub.api("rival", "GET", f"bulletins/{published['id']}").status_code == 200
    response = hub.api("rival", "POST", f"bulletins/{published['id']}/revoke")
    assert response.status_code == 403, response.text
    rival_copy = hub.publish("rival", doc | {"title": "rival's version"})
    assert rival_copy["id"] != published["id"]
    assert hub.api("analyst", "GET", f"bulletins/{published['id']}").json()["title"] == \
        doc["title"]
    # A publisher of the same organisation may update it; an admin may revoke it.
    update = hub.publish("colleague", doc | {"title": "colleague's update"}, expect=200)
    assert update["id"] == published["id"]
    assert hub.api("admin", "POST", f"bulletins/{published['id']}/revoke").status_code == 200
    assert hub.api("analyst", "GET", f"bulletins/{published['id']}").json()["revoked"] is True


# --- 5: no existence oracle through source_id ----------------------------------------------

def test_a_hidden_bulletins_source_id_is_no_oracle(hub):
    secret = hidden_bulletin(hub)
    source_id = hub.api("analyst", "GET", f"bulletins/{secret['id']}").json()["source_id"]
    never = f"never-used-{uuid.uuid4()}"
    taken = hub.api("rival", "POST", "bulletins", json=bulletin(source_id=source_id))
    fresh = hub.api("rival", "POST", "bulletins", json=bulletin(source_id=never))
    assert taken.status_code == fresh.status_code == 201


# --- 6: audience is content ----------------------------------------------------------------

def test_narrowing_sectors_takes_effect_on_every_object(hub):
    doc = bulletin(tlp="green", sectors=["water", "energy"])
    published = hub.publish("analyst", doc)
    assert set(published["objects"]) <= set(hub.all_ids("energy"))
    narrowed = hub.publish("analyst", doc | {"sectors": ["water"]}, expect=200)
    assert narrowed["stored"] == len(published["objects"]), narrowed
    shown = set(hub.all_ids("energy"))
    assert not set(published["objects"]) & shown
    for object_id in published["objects"]:
        assert hub.object("energy", object_id).status_code == 404, object_id
        versions = hub.taxii("energy", f"collections/{ALL}/objects/{object_id}/versions/")
        assert versions.status_code == 404, object_id
    assert published["id"] not in hub.bulletin_ids("energy")
    assert set(published["objects"]) <= set(hub.all_ids("water"))


def test_removing_a_red_recipient_takes_effect(hub):
    doc = bulletin(tlp="red", recipients=["analyst", "friend"], sectors="all")
    published = hub.publish("analyst", doc)
    assert set(published["objects"]) <= set(hub.all_ids("friend"))
    removed = hub.publish("analyst", doc | {"recipients": ["analyst"]}, expect=200)
    assert removed["stored"] == len(published["objects"]), removed
    assert not set(published["objects"]) & set(hub.all_ids("friend"))
    assert hub.api("friend", "GET", f"bulletins/{published['id']}").status_code == 404
    for object_id in published["objects"]:
        assert hub.object("friend", object_id).status_code == 404


def test_raising_green_to_red_answers_404_like_a_missing_object(hub):
    doc = bulletin(tlp="green", sectors=["water"])
    published = hub.publish("analyst", doc)
    hub.publish("analyst", doc | {"tlp": "red", "recipients": ["analyst"]}, expect=200)
    missing = hub.object("water", f"report--{uuid.uuid4()}")
    for object_id in published["objects"]:
        response = hub.object("water", object_id)
        assert response.status_code == missing.status_code == 404, response.text
    # Widening again shows the latest version only, never the RED one in between.
    hub.publish("analyst", doc | {"tlp": "green", "title": "widened"}, expect=200)
    report = hub.latest("water", published["id"])
    assert report[0]["name"] == "widened"
    versions = hub.taxii("water", f"collections/{ALL}/objects/{published['id']}/versions/")
    assert len(versions.json()["versions"]) == 2  # the first GREEN and the last GREEN


# --- 7, 8: strict JSON, envelopes only ------------------------------------------------------

@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400",
                                     "9007199254740993", '"\\ud800"'])
def test_non_standard_json_is_refused_and_never_served(hub, literal):
    object_id = f"indicator--{uuid.uuid4()}"
    body = json.dumps({"objects": [planted(object_id, "indicator", x_value="PLACEHOLDER")]})
    response = hub.post_raw("partner", body.replace('"PLACEHOLDER"', literal))
    assert response.status_code in (400, 422) or (
        response.status_code == 202 and response.json()["failure_count"] == 1), response.text
    if response.status_code != 202:
        assert response.headers["Content-Type"] == TAXII
        assert response.json()["description"]
    assert hub.object("partner", object_id).status_code == 404
    requests.get(f"{hub.server.api_root}collections/{ALL}/objects/", timeout=30,
                 headers={"Authorization": f"Bearer {hub.keys['partner']}",
                          "Accept": TAXII}).json()  # strict parsers read every page


def test_bulletin_api_refuses_non_standard_json(hub):
    response = requests.post(
        f"{hub.server.base}/api/v1/bulletins", timeout=30,
        data=json.dumps(bulletin()).replace('"cyber"', '"cyber", "severity_x": NaN'),
        headers={"Authorization": f"Bearer {hub.keys['analyst']}",
                 "Content-Type": "application/json"})
    assert response.status_code == 400, response.text


def test_a_bare_object_is_not_an_envelope(hub):
    bare = planted(f"indicator--{uuid.uuid4()}", "indicator")
    for body in (bare, {}, {"objects": "x"}, {"type": "bundle", "id": "bundle--x"}):
        response = hub.post_raw("partner", json.dumps(body))
        assert response.status_code == 422, (body, response.text)
        assert "objects" in response.json()["description"]


# --- found by an attacker's review of the first fix ---------------------------------------

SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")  # STIX 2.1 SCO ids


def ipv4(value: str, marking: str) -> dict:
    contributing = json.dumps({"value": value}, separators=(",", ":"))
    return {"type": "ipv4-addr", "spec_version": "2.1",
            "id": f"ipv4-addr--{uuid.uuid5(SCO_NAMESPACE, contributing)}", "value": value,
            "object_marking_refs": [marking]}


def test_a_hidden_objects_content_cannot_be_confirmed_by_resubmitting_it(hub):
    red = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
    secret = ipv4(f"198.51.{uuid.uuid4().int % 200}.{uuid.uuid4().int % 250}", red)
    assert hub.submit("friend", [secret])["success_count"] == 1
    assert hub.object("energy", secret["id"]).status_code == 404
    same = hub.submit("energy", [secret])
    other = hub.submit("energy", [secret | {"object_marking_refs": [CLEAR]}])
    assert same["failure_count"] == other["failure_count"] == 1, (same, other)
    assert same["failures"][0]["message"] == other["failures"][0]["message"]


def test_an_id_with_a_trailing_newline_is_not_an_id(hub):
    published = hub.publish("analyst", bulletin(tlp="clear", sectors="all"))
    indicator_id = published["objects"][1]
    status = hub.submit("partner", [planted(indicator_id + "\n", "indicator")])
    assert status["failure_count"] == 1 and status["success_count"] == 0
    everything = hub.all_ids("partner")
    assert all(i == i.strip() for i in everything)


def test_objects_dropped_while_narrowing_leave_with_the_old_audience(hub):
    doc = bulletin(tlp="green", sectors=["water", "energy"], threat_actors=["APT Secret"],
                   indicators=[{"value": "keep.example.net"},
                               {"value": f"{uuid.uuid4().hex[:8]}-c2.example.net"}])
    published = hub.publish("analyst", doc)
    assert set(published["objects"]) <= set(hub.all_ids("energy"))
    narrowed = hub.publish("analyst", doc | {"sectors": ["water"], "threat_actors": [],
                                             "indicators": doc["indicators"][:1]}, expect=200)
    dropped = set(published["objects"]) - set(narrowed["objects"])
    assert len(dropped) >= 3  # an indicator, the actor and relationships
    assert not set(published["objects"]) & set(hub.all_ids("energy"))
    for object_id in dropped:  # what the bulletin no longer says is revoked
        latest = hub.latest("water", object_id)
        assert len(latest) == 1 and latest[0]["revoked"] is True, object_id


def test_a_revoked_bulletin_cannot_be_brought_back(hub):
    doc = bulletin(tlp="clear", sectors="all")
    published = hub.publish("analyst", doc)
    assert hub.api("analyst", "POST", f"bulletins/{published['id']}/revoke").status_code == 200
    again = hub.api("colleague", "POST", "bulletins", json=doc | {"title": "back again"})
    assert again.status_code == 409, again.text
    assert hub.latest("energy", published["id"])[0]["revoked"] is True


def test_compartment_markings_are_the_installations_own(hub):
    """The LES marking a bulletin points at is the service's signed definition, with an id
    nobody could compute (and so plant) before the compartment was configured."""
    from infoshare.stix.ids import LEGACY_NAMESPACE

    published = hub.publish("analyst", bulletin(tlp="amber", compartments=["LES"],
                                                sectors="all"))
    report = hub.latest("analyst", published["id"])[0]
    legacy = f"marking-definition--{uuid.uuid5(LEGACY_NAMESPACE, 'compartment:LES')}"
    les = [m for m in report["object_marking_refs"] if m != "marking-definition--"
           "55d920b0-5e8b-4f79-9ee9-91f868d9b421"]
    assert les and legacy not in les
    definition = hub.latest("partner", les[0])[0]
    assert definition["name"] == "LES" and "extensions" in definition  # signed


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_bodies_that_are_not_utf8_are_refused(hub, encoding):
    body = json.dumps({"objects": [planted(f"indicator--{uuid.uuid4()}", "indicator",
                                           x_value="\\ud800")]}).replace("\\\\ud800", "\\ud800")
    response = hub.post_raw("partner", body.encode(encoding))
    assert response.status_code == 400, response.text
    api = requests.post(f"{hub.server.base}/api/v1/bulletins", timeout=30,
                        data=json.dumps(bulletin(title="\\ud800")).replace(
                            "\\\\ud800", "\\ud800").encode(encoding),
                        headers={"Authorization": f"Bearer {hub.keys['analyst']}",
                                 "Content-Type": "application/json"})
    assert api.status_code == 400, api.text
