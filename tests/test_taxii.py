"""The TAXII 2.1 server, end to end: a real server process on loopback, on SQLite and on
PostgreSQL, driven by taxii2-client and by raw HTTP for every error case."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from taxii2client.common import TokenAuth
from taxii2client.v21 import Collection, Server, as_pages

from infoshare.tiers import TLP2_MARKING_IDS

from .live import LiveServer, service_env

TAXII = "application/taxii+json;version=2.1"
ALL = "5d4d1a3c-6b0e-4d55-9a44-0c5f2d8e7a01"
SUBMISSIONS = "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a04"
PASSWORD = "correct horse battery staple"


def indicator(value: str, *, tlp: str | None = "green", modified: str | None = None,
              object_id: str | None = None) -> dict:
    created = "2025-01-01T00:00:00.000Z"
    obj = {
        "type": "indicator", "spec_version": "2.1",
        "id": object_id or f"indicator--{uuid.uuid4()}",
        "created": created, "modified": modified or created,
        "pattern": f"[ipv4-addr:value = '{value}']", "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00Z",
    }
    if tlp:
        obj["object_marking_refs"] = [TLP2_MARKING_IDS[tlp]]
    return obj


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"taxii-{request.param}")
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres").new_database()
    env = service_env(data_dir, url, INFOSHARE_TAXII_MAX_CONTENT_LENGTH="65536",
                      INFOSHARE_TAXII_MAX_PAGE_SIZE="50")
    server = LiveServer(env, workers=2)
    server.keys = {}
    for name, args in {
        "admin": ["--org", "Ops", "--tier", "trusted", "--all-sectors", "--role", "admin",
                  "--role", "publisher"],
        "water": ["--org", "Water Co", "--tier", "partner", "--sector", "water"],
        "water2": ["--org", "Other Water", "--tier", "partner", "--sector", "water"],
        "public": ["--org", "Anyone", "--tier", "public", "--sector", "energy"],
        "member": ["--org", "Member Org", "--tier", "member", "--all-sectors"],
    }.items():
        server.keys[name] = server.add_principal(name, *args, password=PASSWORD)["api_key"]
    yield server
    server.stop()


def http(live, method: str, path: str, who: str = "admin", **kwargs) -> requests.Response:
    headers = {"Accept": TAXII, **kwargs.pop("headers", {})}
    if who:
        headers.setdefault("Authorization", f"Bearer {live.keys[who]}")
    url = path if path.startswith("http") else live.api_root + path
    return requests.request(method, url, headers=headers, timeout=30, **kwargs)


def post(live, objects: list, who: str = "admin", collection: str = SUBMISSIONS) -> dict:
    response = http(live, "POST", f"collections/{collection}/objects/", who,
                    headers={"Content-Type": TAXII}, data=json.dumps({"objects": objects}))
    assert response.status_code == 202, response.text
    return response.json()


def ids_of(live, who: str, path: str) -> list[str]:
    response = http(live, "GET", path, who)
    assert response.status_code == 200, response.text
    return [o["id"] for o in response.json().get("objects", [])]


# --- taxii2-client ----------------------------------------------------------------------

def test_discovery_api_root_and_collections_with_taxii2_client(live):
    server = Server(live.taxii, user="admin", password=PASSWORD)
    assert server.title == "infoshare"
    root = server.default
    assert root.url == live.api_root
    assert root.versions == [TAXII]
    assert root.max_content_length == 65536
    aliases = {c._raw["alias"] for c in root.collections}  # noqa: SLF001
    assert {"all-hazards", "indicators", "vulnerabilities", "submissions"} <= aliases
    assert "sector-water" in aliases and len(aliases) == 4 + 16


def test_collections_listed_only_when_readable(live):
    listed = http(live, "GET", "collections/", "public").json()["collections"]
    sectors = {c["alias"] for c in listed if c["alias"].startswith("sector-")}
    assert sectors == {"sector-energy"}
    water = next(c for c in http(live, "GET", "collections/").json()["collections"]
                 if c["alias"] == "sector-water")
    assert http(live, "GET", f"collections/{water['id']}/", "public").status_code == 404
    assert http(live, "GET", f"collections/{water['id']}/objects/", "public").status_code == 404


def test_add_objects_and_status_through_taxii2_client(live):
    collection = Collection(f"{live.api_root}collections/{SUBMISSIONS}/", user="water",
                            password=PASSWORD)
    assert collection.can_write
    good = [indicator(f"192.0.2.{i}") for i in range(3)]
    bad = indicator("192.0.2.99") | {"pattern": "[ipv4-addr:value = "}
    status = collection.add_objects({"objects": [*good, bad]})
    assert status.status == "complete"
    assert (status.total_count, status.success_count, status.failure_count) == (4, 3, 1)
    assert status.failures[0]["id"] == bad["id"]
    assert "pattern" in status.failures[0]["message"].lower()
    again = http(live, "GET", f"status/{status.id}/", "water").json()
    assert again["success_count"] == 3 and {s["id"] for s in again["successes"]} == {
        o["id"] for o in good}
    assert http(live, "GET", f"status/{status.id}/", "water2").status_code == 404


def test_as_pages_over_objects_and_manifest_sees_everything_once(live):
    """The collection's objects come once each; the marking definition they reference
    comes with every page that needs it (each page stands alone), within the limit."""
    posted = [indicator(f"198.51.100.{i}") for i in range(7)]
    post(live, posted, "water")
    collection = Collection(f"{live.api_root}collections/{SUBMISSIONS}/", user="water",
                            password=PASSWORD)
    seen, pages = [], 0
    for envelope in as_pages(collection.get_objects, per_request=3):
        objects = envelope.get("objects", [])
        assert len(objects) <= 3
        markings = {o["id"] for o in objects if o["type"] == "marking-definition"}
        assert markings == {r for o in objects for r in o.get("object_marking_refs", [])}
        seen += [o["id"] for o in objects if o["type"] != "marking-definition"]
        pages += 1
    assert len(seen) == len(set(seen)) and {o["id"] for o in posted} <= set(seen)
    assert pages >= 3
    manifest_ids = []
    for page in as_pages(collection.get_manifest, per_request=4):
        manifest_ids += [m["id"] for m in page.get("objects", [])]
        for record in page.get("objects", []):
            assert record["media_type"] == "application/stix+json;version=2.1"
            assert record["date_added"].endswith("Z") and len(record["date_added"]) == 27
    assert manifest_ids == seen


# --- pagination, cursors and headers ------------------------------------------------------

def test_pages_never_exceed_limit_and_more_goes_with_next(live):
    post(live, [indicator(f"203.0.113.{i}") for i in range(60)], "admin")
    response = http(live, "GET", f"collections/{ALL}/objects/")
    body = response.json()
    assert len(body["objects"]) == 50  # server maximum, set to 50 for this server
    assert body["more"] is True and body["next"]
    big = http(live, "GET", f"collections/{ALL}/objects/?limit=100000").json()
    assert len(big["objects"]) == 50
    last = http(live, "GET", f"collections/{ALL}/objects/?limit=1&added_after="
                + response.headers["X-TAXII-Date-Added-Last"]).json()
    assert len(last["objects"]) == 1
    tail = http(live, "GET", f"collections/{ALL}/objects/?added_after=2999-01-01T00:00:00Z")
    assert tail.status_code == 200 and tail.json() == {}
    assert tail.headers["X-TAXII-Date-Added-First"] == "2999-01-01T00:00:00.000000Z"


def test_date_added_headers_match_first_and_last_objects(live):
    response = http(live, "GET", f"collections/{ALL}/manifest/?limit=5")
    records = response.json()["objects"]
    assert response.headers["X-TAXII-Date-Added-First"] == records[0]["date_added"]
    assert response.headers["X-TAXII-Date-Added-Last"] == records[-1]["date_added"]
    assert [r["date_added"] for r in records] == sorted(r["date_added"] for r in records)


def test_next_cursor_is_bound_to_query_and_principal(live):
    first = http(live, "GET", f"collections/{ALL}/objects/?limit=2").json()
    token = first["next"]
    ok = http(live, "GET", f"collections/{ALL}/objects/?limit=2&next={token}")
    assert ok.status_code == 200 and ok.json()["objects"][-1]["id"] != first["objects"][-1]["id"]
    # A different page size is the same query.
    assert http(live, "GET", f"collections/{ALL}/objects/?limit=3&next={token}").ok
    for bad in (f"limit=2&next={token}&match[type]=indicator",
                f"limit=2&next={token[:-2]}xx", "limit=2&next=0.AAAA", "next=garbage"):
        response = http(live, "GET", f"collections/{ALL}/objects/?{bad}")
        assert response.status_code == 400, bad
        assert response.headers["Content-Type"] == TAXII
    other = http(live, "GET", f"collections/{ALL}/objects/?limit=2&next={token}", "member")
    assert other.status_code == 400


def test_next_alone_continues_the_bound_query_as_opencti_pages(live):
    """OpenCTI's taxii2 connector sends added_after and match[type] on the first request
    only, then `next` alone: every matching object comes once, nothing else, through
    taxii2-client (the library the connector uses), in Token mode as OpenCTI offers it."""
    marker = indicator("203.0.113.250")
    post(live, [marker], "admin")
    after = http(live, "GET", f"collections/{ALL}/manifest/", params={
        "match[id]": marker["id"]}).json()["objects"][0]["date_added"]
    posted = [indicator(f"203.0.113.{i}") for i in range(9)]
    post(live, posted, "admin")
    decoy = {"type": "note", "spec_version": "2.1", "id": f"note--{uuid.uuid4()}",
             "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
             "content": "not an indicator", "object_refs": [posted[0]["id"]]}
    post(live, [decoy], "admin")
    expected = {m["id"] for m in http(live, "GET", f"collections/{ALL}/manifest/", params={
        "added_after": after, "match[type]": "indicator", "limit": 50}).json()["objects"]}
    assert {o["id"] for o in posted} <= expected
    collection = Collection(f"{live.api_root}collections/{ALL}/",
                            auth=TokenAuth(live.keys["admin"]))
    envelope = collection.get_objects(added_after=after, type="indicator", limit=2)
    seen = [o["id"] for o in envelope["objects"]]
    while envelope.get("more"):
        envelope = collection.get_objects(next=envelope["next"], limit=2)  # filters dropped
        seen += [o["id"] for o in envelope.get("objects", [])]
    assert len(seen) == len(set(seen)) and set(seen) == expected
    # A filter that differs from the bound one is still refused.
    first = http(live, "GET", f"collections/{ALL}/objects/", params={
        "added_after": after, "match[type]": "indicator", "limit": 2}).json()
    changed = http(live, "GET", f"collections/{ALL}/objects/", params={
        "next": first["next"], "match[type]": "note"})
    assert changed.status_code == 400 and "match[type]" in changed.json()["description"]


def test_walking_pages_with_next_covers_the_collection_exactly(live):
    manifest, token = [], None
    while True:
        query = f"limit=7&next={token}" if token else "limit=7"
        body = http(live, "GET", f"collections/{ALL}/manifest/?{query}").json()
        manifest += [m["id"] for m in body.get("objects", [])]
        if not body.get("more"):
            assert "next" not in body
            break
        token = body["next"]
    assert len(manifest) == len(set(manifest)) > 60


# --- filters --------------------------------------------------------------------------------

def test_match_filters(live):
    base = indicator("192.0.2.200")
    newer = base | {"modified": "2025-06-01T00:00:00.000Z"}
    newest = base | {"modified": "2025-09-01T00:00:00.000Z"}
    other = indicator("192.0.2.201")
    post(live, [base, newer, newest, other], "admin")
    path = f"collections/{ALL}/objects/"

    def versions(query: str) -> list[str]:
        body = http(live, "GET", f"{path}?match[id]={base['id']}&{query}").json()
        return sorted(o["modified"] for o in body.get("objects", []))

    assert versions("") == ["2025-09-01T00:00:00.000Z"]
    assert versions("match[version]=first") == ["2025-01-01T00:00:00.000Z"]
    assert len(versions("match[version]=all")) == 3
    assert versions("match[version]=first,last") == [
        "2025-01-01T00:00:00.000Z", "2025-09-01T00:00:00.000Z"]
    assert versions("match[version]=2025-06-01T00:00:00Z") == ["2025-06-01T00:00:00.000Z"]
    both = ids_of(live, "admin", f"{path}?match[id]={base['id']},{other['id']}")
    assert sorted(both) == sorted([base["id"], other["id"]])
    assert ids_of(live, "admin", f"{path}?match[id]={base['id']}&match[type]=malware") == []
    assert ids_of(live, "admin", f"{path}?match[spec_version]=2.0") == []
    assert ids_of(live, "admin", f"{path}?match[id]={base['id']}&match[type]=malware,indicator"
                  ) == [base["id"]]


def test_object_and_versions_endpoints(live):
    base = indicator("192.0.2.210")
    post(live, [base, base | {"modified": "2025-03-01T00:00:00.000Z"}], "admin")
    one = http(live, "GET", f"collections/{ALL}/objects/{base['id']}/")
    assert one.status_code == 200
    assert [o["modified"] for o in one.json()["objects"]] == ["2025-03-01T00:00:00.000Z"]
    assert "X-TAXII-Date-Added-Last" in one.headers
    response = http(live, "GET", f"collections/{ALL}/objects/{base['id']}/versions/")
    assert response.status_code == 200
    assert response.json()["versions"] == ["2025-01-01T00:00:00.000Z", "2025-03-01T00:00:00.000Z"]
    assert response.headers["X-TAXII-Date-Added-First"] <= response.headers[
        "X-TAXII-Date-Added-Last"]
    missing = f"indicator--{uuid.uuid4()}"
    assert http(live, "GET", f"collections/{ALL}/objects/{missing}/").status_code == 404
    assert http(live, "GET", f"collections/{ALL}/objects/{missing}/versions/").status_code == 404


def test_duplicate_version_is_not_a_failure(live):
    obj = indicator("192.0.2.220")
    assert post(live, [obj], "admin")["success_count"] == 1
    again = post(live, [obj], "admin")
    assert (again["success_count"], again["failure_count"]) == (1, 0)
    body = http(live, "GET", f"collections/{ALL}/objects/{obj['id']}/versions/").json()
    assert body["versions"] == [obj["modified"]]


def test_stored_bytes_are_served_unchanged(live):
    obj = indicator("192.0.2.230") | {"description": "caf\u00e9 \u2603", "confidence": 85}
    post(live, [obj], "admin")
    served = http(live, "GET", f"collections/{ALL}/objects/{obj['id']}/").json()["objects"][0]
    assert served == obj


# --- access ---------------------------------------------------------------------------------

def test_tlp_tier_and_default_marking(live):
    amber = indicator("192.0.2.240", tlp="amber")
    green = indicator("192.0.2.241", tlp="green")
    unmarked = indicator("192.0.2.242", tlp=None)  # takes the collection default: AMBER
    post(live, [amber, green, unmarked], "admin")
    path = f"collections/{ALL}/objects/?match[id]={amber['id']},{green['id']},{unmarked['id']}"
    assert sorted(ids_of(live, "member", path)) == sorted([amber["id"], green["id"],
                                                           unmarked["id"]])
    # admin posted to all sectors; a partner reads up to GREEN only.
    assert ids_of(live, "water", path) == [green["id"]]
    assert http(live, "GET", f"collections/{ALL}/objects/{amber['id']}/",
                "water").status_code == 404
    assert ids_of(live, "public", path) == []


def test_submissions_route_by_submitter_sectors_and_red_names_submitter(live):
    mine = indicator("192.0.2.250", tlp="green")
    post(live, [mine], "water")
    path = f"collections/{ALL}/objects/?match[id]={mine['id']}"
    assert ids_of(live, "water", path) == [mine["id"]]
    assert ids_of(live, "water2", path) == [mine["id"]]  # same sector
    assert ids_of(live, "public", path) == []  # energy only
    red = indicator("192.0.2.251", tlp="red")
    post(live, [red], "admin")
    path = f"collections/{ALL}/objects/?match[id]={red['id']}"
    assert ids_of(live, "admin", path) == [red["id"]]  # trusted and named
    assert ids_of(live, "member", path) == []  # all sectors, but AMBER at most


# --- errors ---------------------------------------------------------------------------------

def test_authentication_required(live):
    response = http(live, "GET", "collections/", who="")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == TAXII
    assert any("Basic" in v for v in response.headers.get_all("WWW-Authenticate")) if hasattr(
        response.headers, "get_all") else "Basic" in response.headers["WWW-Authenticate"]
    assert response.json()["http_status"] == "401"
    wrong = http(live, "GET", "collections/", headers={"Authorization": "Bearer isk_x_y"})
    assert wrong.status_code == 401
    basic = requests.get(live.api_root + "collections/", auth=("water", PASSWORD),
                         headers={"Accept": TAXII}, timeout=10)
    assert basic.status_code == 200
    bad = requests.get(live.api_root + "collections/", auth=("water", "nope"),
                       headers={"Accept": TAXII}, timeout=10)
    assert bad.status_code == 401


@pytest.mark.parametrize("accept,status", [
    ("application/taxii+json;version=2.1", 200),
    ("application/taxii+json", 200),
    ("*/*", 200),
    ("application/*", 200),
    ("text/html;q=0.9, application/taxii+json;version=2.1;q=0.5", 200),
    ("application/taxii+json;q=0", 406),
    ("text/html", 406),
    ("application/taxii+json;version=2.0", 406),
])
def test_content_negotiation(live, accept, status):
    response = http(live, "GET", "", headers={"Accept": accept})
    assert response.status_code == status
    assert response.headers["Content-Type"] == TAXII


@pytest.mark.parametrize("query", [
    "limit=abc", "limit=0", "limit=-5", "added_after=yesterday",
    "added_after=2025-13-01T00:00:00Z", "match[type]=indicator&match[type]=malware",
    "match[version]=all,last", "match[version]=soon", "match[foo]=bar", "next=%%%",
])
def test_malformed_parameters_are_400(live, query):
    response = http(live, "GET", f"collections/{ALL}/objects/?{query}")
    assert response.status_code == 400, query
    assert response.headers["Content-Type"] == TAXII
    assert response.json()["description"]


def test_post_errors(live):
    path = f"collections/{SUBMISSIONS}/objects/"
    body = json.dumps({"objects": [indicator("192.0.2.1")]})
    wrong_type = http(live, "POST", path, headers={"Content-Type": "application/json"},
                      data=body)
    assert wrong_type.status_code == 415 and wrong_type.headers["Content-Type"] == TAXII
    huge = json.dumps({"objects": [indicator("192.0.2.2") | {"description": "x" * 70000}]})
    too_big = http(live, "POST", path, headers={"Content-Type": TAXII}, data=huge)
    assert too_big.status_code == 413 and too_big.headers["Content-Type"] == TAXII
    broken = http(live, "POST", path, headers={"Content-Type": TAXII}, data="{not json")
    assert broken.status_code == 400
    not_envelope = http(live, "POST", path, headers={"Content-Type": TAXII}, data="[1, 2]")
    assert not_envelope.status_code == 422
    deep = http(live, "POST", path, headers={"Content-Type": TAXII},
                data="[" * 30_000 + "]" * 30_000)
    assert deep.status_code == 400
    read_only = http(live, "POST", f"collections/{ALL}/objects/",
                     headers={"Content-Type": TAXII}, data=body)
    assert read_only.status_code == 403
    public = http(live, "POST", path, "public", headers={"Content-Type": TAXII}, data=body)
    assert public.status_code == 403
    unknown = http(live, "POST", f"collections/{uuid.uuid4()}/objects/",
                   headers={"Content-Type": TAXII}, data=body)
    assert unknown.status_code == 404


def test_unknown_routes_and_methods_answer_in_taxii(live):
    assert http(live, "GET", f"http://127.0.0.1:{live.port}/taxii2/other/").status_code == 404
    response = http(live, "DELETE", f"collections/{ALL}/objects/")
    assert response.status_code == 405
    assert response.headers["Content-Type"] == TAXII


def test_delete_follows_the_permission_table(live):
    mine = indicator("192.0.2.100", tlp="green")
    theirs = indicator("192.0.2.101", tlp="green")
    post(live, [mine], "water")
    post(live, [theirs], "water2")
    path = f"collections/{SUBMISSIONS}/objects/"
    # readable, not writable: 403
    assert http(live, "DELETE", f"collections/{ALL}/objects/{mine['id']}/",
                "water").status_code == 403
    assert http(live, "DELETE", f"{path}{mine['id']}/", "public").status_code == 403
    # writable, but another principal's object: 403
    assert http(live, "DELETE", f"{path}{theirs['id']}/", "water").status_code == 403
    assert http(live, "DELETE", f"{path}{mine['id']}/", "water").status_code == 200
    assert http(live, "GET", f"{path}{mine['id']}/", "water").status_code == 404
    assert http(live, "DELETE", f"{path}{mine['id']}/", "water").status_code == 404
    assert http(live, "DELETE", f"{path}{theirs['id']}/", "admin").status_code == 200


def test_a_delete_of_an_id_being_written_that_the_deleter_cannot_see_is_404_at_once(live):
    """On PostgreSQL a writer claims the ids it writes until it commits. A DELETE claims
    an id only once it sees versions of it: waiting for the writer of an id the deleter
    may not see would tell it that a hidden object is being written right now."""
    url = live.env.get("INFOSHARE_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("claims are PostgreSQL's (SQLite has one writer at a time)")
    from infoshare.store import claims
    from infoshare.store.engine import connect_engine

    being_written = f"indicator--{uuid.uuid4()}"
    engine = connect_engine(url)
    try:
        with engine.connect() as writer, writer.begin():
            claims.claim(writer, [being_written])
            started = time.monotonic()
            response = http(live, "DELETE", f"collections/{SUBMISSIONS}/objects/"
                            f"{being_written}/", "water")
            took = time.monotonic() - started
    finally:
        engine.dispose()
    assert response.status_code == 404
    assert took < 2


def test_healthz(live):
    response = requests.get(live.base + "/healthz", timeout=5)
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_nobody_adds_versions_to_someone_elses_object(live):
    """An id belongs to whoever stored it first: a second partner re-using it is refused
    (whether or not it can see the first one's object), a copy of a stored version is a
    duplicate, and the owner goes on adding versions."""
    mine = indicator("192.0.2.150")
    post(live, [mine], "water")
    hijack = mine | {"modified": "2030-01-01T00:00:00.000Z", "pattern":
                     "[ipv4-addr:value = '198.51.100.66']"}
    status = post(live, [hijack], "water2")
    assert status["failure_count"] == 1 and "another publisher" in \
        status["failures"][0]["message"]
    again = post(live, [mine], "water2")  # a copy of water's version
    assert again["success_count"] == 1 and again["successes"][0]["message"]
    served = http(live, "GET", f"collections/{ALL}/objects/{mine['id']}/versions/", "water")
    assert served.json()["versions"] == [mine["modified"]]
    own = post(live, [mine | {"modified": "2026-01-01T00:00:00.000Z"}], "water")
    assert own["success_count"] == 1
    latest = http(live, "GET", f"collections/{ALL}/objects/{mine['id']}/", "water").json()
    assert [o["modified"] for o in latest["objects"]] == ["2026-01-01T00:00:00.000Z"]


def test_the_services_definitions_cannot_be_republished(live):
    fake = {"type": "marking-definition", "spec_version": "2.1",
            "id": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
            "created": "2030-01-01T00:00:00.000Z", "name": "TLP:FAKE",
            "definition_type": "statement", "definition": {"statement": "mine now"}}
    status = post(live, [fake], "water")
    assert status["failure_count"] == 1
    assert "service's own definitions" in status["failures"][0]["message"]
