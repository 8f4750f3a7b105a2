"""MISP's own converter (misp-stix, from the registry) reading infoshare collection pages.

A MISP user bundles one TAXII page and runs `stix_2_to_misp`: each report becomes an event.
misp-stix applies every object of the bundle that no other object references to every
event, so a page must carry only the definitions its objects reference; and the hazard
facts must reach MISP through standard STIX (a note, location properties, labels).
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests

from .live import LiveServer, service_env

TAXII = "application/taxii+json;version=2.1"
ALL = "5d4d1a3c-6b0e-4d55-9a44-0c5f2d8e7a01"
DEFINITION = re.compile(r"^(marking-definition|extension-definition|identity)--")
# OASIS's TLP 2.0 markings name OASIS's own extension definition, which nobody serves.
TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(service_env(tmp_path_factory.mktemp("misp")), workers=1)
    server.keys = {
        "publisher": server.add_principal(
            "misp-publisher", "--org", "Ops", "--tier", "trusted", "--all-sectors",
            "--compartment", "LES", "--role", "publisher")["api_key"],
        "water": server.add_principal(
            "misp-water", "--org", "Water Co", "--tier", "member", "--sector", "water"
        )["api_key"]}
    yield server
    server.stop()


def publish(live, document: dict) -> dict:
    response = requests.post(f"{live.base}/api/v1/bulletins", json=document, timeout=30,
                             headers={"Authorization": f"Bearer {live.keys['publisher']}"})
    assert response.status_code == 201, response.text
    return response.json()


def page(live, who: str, **params) -> dict:
    response = requests.get(f"{live.api_root}collections/{ALL}/objects/", params=params,
                            timeout=30, headers={"Accept": TAXII,
                                                 "Authorization": f"Bearer {live.keys[who]}"})
    assert response.status_code == 200, response.text
    return response.json()


def to_misp(objects: list[dict], tmp_path) -> dict[str, dict]:
    """Events by title, as misp-stix makes them from a bundle of these objects."""
    from misp_stix_converter import stix_2_to_misp

    path = tmp_path / f"page-{uuid.uuid4()}.json"
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                "objects": objects}))
    result = stix_2_to_misp(path)
    assert result["success"] == 1, result
    events = [json.loads(out.read_text()) for out in result["results"]]
    return {event["info"]: event for event in events}


def tags(event: dict) -> set[str]:
    return {tag["name"] for tag in event.get("Tag", [])}


def sector_cluster(event: dict) -> set[str]:
    return {cluster["value"] for galaxy in event.get("Galaxy", [])
            if galaxy["name"] == "Sector" for cluster in galaxy["GalaxyCluster"]}


FLOOD = {
    "title": "Flash flood warning for Travis County",
    "summary": "Flash flooding is expected along low water crossings.",
    "kind": "natural", "tlp": "clear", "sectors": ["water", "energy"],
    "severity": "Severe", "urgency": "Immediate", "certainty": "Likely", "category": "Met",
    "valid_from": "2026-11-30T00:00:00Z", "valid_until": "2026-12-02T00:00:00Z",
    "locations": [{"name": "Travis County", "country": "US", "administrative_area": "TX",
                   "polygon": [[30.0, -97.0], [30.5, -97.0], [30.5, -97.5]],
                   "geocodes": {"SAME": "048453", "UGC": "TXC453"}}],
}
INTRUSION = {
    "title": "Remote access intrusions at water utilities",
    "kind": "cyber", "tlp": "green", "sectors": ["water"], "severity": "Moderate",
    "indicators": [{"value": "192.0.2.10"}], "vulnerabilities": ["CVE-2024-3400"],
}
CASE = {
    "title": "Case for law enforcement", "kind": "physical", "tlp": "amber",
    "sectors": ["energy"], "compartments": ["LES"],
}


@pytest.fixture(scope="module")
def published(live):
    return [publish(live, doc | {"source_id": f"misp-{uuid.uuid4()}"})
            for doc in (FLOOD, INTRUSION, CASE)]


def test_each_event_carries_only_its_own_markings_and_sectors(live, published, tmp_path):
    """Today every marking definition and sector identity rides in the page unreferenced,
    and misp-stix tags every event with all of them."""
    events = to_misp(page(live, "publisher", limit=500)["objects"], tmp_path)
    flood, intrusion, case = (events[d["title"]] for d in (FLOOD, INTRUSION, CASE))
    assert {t for t in tags(flood) if t.startswith(("tlp:", "statement:"))} == {"tlp:clear"}
    assert {t for t in tags(intrusion) if t.startswith(("tlp:", "statement:"))} == {
        "tlp:green"}
    assert {t for t in tags(case) if t.startswith(("tlp:", "statement:"))} == {
        "tlp:amber", "statement:LAW ENFORCEMENT SENSITIVE: handle under the "
        "law-enforcement-sensitive compartment."}
    assert sector_cluster(flood) == {"Water and Wastewater Systems Sector", "Energy Sector"}
    assert sector_cluster(intrusion) == {"Water and Wastewater Systems Sector"}
    assert sector_cluster(case) == {"Energy Sector"}


def test_hazard_facts_reach_misp_through_standard_stix(live, published, tmp_path):
    events = to_misp(page(live, "water", limit=500)["objects"], tmp_path)
    flood = events[FLOOD["title"]]
    assert {"cap:category=\"Met\"", "cap:severity=\"Severe\"", "cap:urgency=\"Immediate\"",
            "cap:certainty=\"Likely\""} <= tags(flood)
    [note] = flood["Note"]
    text = note["note"]
    for fact in ("Severity: Severe", "Urgency: Immediate", "Certainty: Likely",
                 "Category: Met", "Effective: 2026-11-30T00:00:00.000Z",
                 "Expires: 2026-12-02T00:00:00.000Z", "Travis County", "SAME 048453",
                 "UGC TXC453", "30.0 -97.0, 30.5 -97.0, 30.5 -97.5"):
        assert fact in text, (fact, text)
    [place] = [o for o in flood["Object"] if o["name"] == "geolocation"]
    values = {a["object_relation"]: a["value"] for a in place["Attribute"]}
    assert values["countrycode"] == "US" and round(float(values["latitude"]), 1) == 30.3
    # The water member is not cleared for the LES case: no event, no tag of it anywhere.
    assert CASE["title"] not in events
    assert not any(t.startswith("statement:") for e in events.values() for t in tags(e))


def test_every_page_is_a_self_contained_bundle(live, published):
    """Each page carries exactly the definitions its own objects reference, within the
    page's limit; asked for by type, definitions are listed like any object."""
    token, pages = None, 0
    while True:
        envelope = page(live, "publisher", limit=9, **({"next": token} if token else {}))
        objects = envelope.get("objects", [])
        assert len(objects) <= 9
        ids = {o["id"] for o in objects}
        referenced = set()
        for obj in objects:
            referenced |= {r for r in re.findall(r'"((?:marking-definition|identity|'
                                                 r'extension-definition)--[0-9a-f-]{36})"',
                                                 json.dumps(obj))
                           if r not in (obj["id"], TLP2_EXTENSION)}
        definitions = {i for i in ids if DEFINITION.match(i)}
        assert definitions <= referenced, f"unreferenced in a page: {definitions - referenced}"
        assert referenced <= ids, f"referenced but missing: {referenced - ids}"
        pages += 1
        if not envelope.get("more"):
            break
        token = envelope["next"]
    assert pages >= 2
    markings = page(live, "publisher", **{"match[type]": "marking-definition"})["objects"]
    assert {"TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:RED"} <= {
        m.get("name") for m in markings}
