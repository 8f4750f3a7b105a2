"""Bounded work per request, played over HTTP on one live server (SQLite):

- TAXII pages are capped in bytes (`taxii.max_page_bytes`) as well as by `limit`, and an
  object larger than the cap is served alone;
- bulletin lists have maximum lengths, refused with 400 naming the field;
- relationships are never a cross product of a bulletin's lists;
- match lists have a maximum length (400);
- subscriptions per principal are capped (`subscriptions.max_per_principal`).
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from infoshare.schemas import LIST_LIMITS

from .live import LiveServer, service_env

TAXII = "application/taxii+json;version=2.1"
ALL = "5d4d1a3c-6b0e-4d55-9a44-0c5f2d8e7a01"
SUBMISSIONS = "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a04"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
PAGE_BYTES = 300_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(service_env(tmp_path_factory.mktemp("limits"),
                                  INFOSHARE_TAXII_MAX_PAGE_BYTES=str(PAGE_BYTES),
                                  INFOSHARE_SUBSCRIPTIONS_MAX_PER_PRINCIPAL="3"), workers=1)
    live.keys = {
        "publisher": live.add_principal("publisher", "--org", "Ops", "--tier", "trusted",
                                        "--all-sectors", "--role", "publisher")["api_key"],
        "partner": live.add_principal("partner", "--org", "Water Co", "--tier", "partner",
                                      "--sector", "water")["api_key"],
    }
    yield live
    live.stop()


def headers(server, who: str, **extra) -> dict:
    return {"Authorization": f"Bearer {server.keys[who]}", "Accept": TAXII, **extra}


def note(size: int) -> dict:
    return {"type": "note", "spec_version": "2.1", "id": f"note--{uuid.uuid4()}",
            "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
            "content": "x" * size, "object_refs": [f"indicator--{uuid.uuid4()}"],
            "object_marking_refs": [GREEN]}


def test_pages_are_capped_in_bytes_and_a_large_object_comes_alone(server):
    notes = [note(60_000) for _ in range(12)] + [note(400_000)] + [note(60_000)]
    for start in range(0, len(notes), 4):
        response = requests.post(
            f"{server.api_root}collections/{SUBMISSIONS}/objects/", timeout=60,
            data=json.dumps({"objects": notes[start:start + 4]}),
            headers=headers(server, "partner", **{"Content-Type": TAXII}))
        assert response.json()["success_count"] == len(notes[start:start + 4])
    seen, token, sizes = [], None, []
    while True:
        params = {"match[type]": "note", **({"next": token} if token else {})}
        response = requests.get(f"{server.api_root}collections/{ALL}/objects/",
                                params=params, headers=headers(server, "partner"), timeout=60)
        assert response.status_code == 200
        body = response.json()
        sizes.append((len(response.content), len(body["objects"])))
        seen += [o["id"] for o in body["objects"]]
        assert len(response.content) <= PAGE_BYTES or len(body["objects"]) == 1, sizes
        if not body.get("more"):
            break
        token = body["next"]
    assert seen == [n["id"] for n in notes]
    assert (max(s for s, _ in sizes) > PAGE_BYTES) and len(sizes) >= 4, sizes


def test_bulletin_lists_have_maximum_lengths(server):
    too_many = LIST_LIMITS["indicators"] + 1
    response = requests.post(f"{server.base}/api/v1/bulletins", timeout=60, json={
        "title": "many", "kind": "cyber", "tlp": "green", "sectors": ["water"],
        "indicators": [{"value": f"10.0.{n // 256}.{n % 256}"} for n in range(too_many)]},
        headers={"Authorization": f"Bearer {server.keys['publisher']}"})
    assert response.status_code == 400
    assert "indicators" in response.json()["fields"]
    assert str(LIST_LIMITS["indicators"]) in json.dumps(response.json()["fields"])


def test_relationships_are_not_a_cross_product(server):
    document = {
        "title": "bounded", "kind": "cyber", "tlp": "green", "sectors": ["water"],
        "vulnerabilities": [f"CVE-2024-{1000 + n}" for n in range(20)],
        "mitigations": [f"Mitigation {n}" for n in range(20)],
        "threat_actors": [f"Actor {n}" for n in range(10)],
        "indicators": [{"value": f"192.0.2.{n}"} for n in range(20)]}
    response = requests.post(f"{server.base}/api/v1/bulletins", json=document, timeout=60,
                             headers={"Authorization": f"Bearer {server.keys['publisher']}"})
    assert response.status_code == 201, response.text
    objects = response.json()["objects"]
    relationships = [i for i in objects if i.startswith("relationship--")]
    lists = sum(len(document[k]) for k in ("vulnerabilities", "mitigations", "threat_actors",
                                           "indicators"))
    assert len(relationships) <= lists, len(relationships)


def test_match_lists_have_a_maximum_length(server):
    ids = ",".join(f"indicator--{uuid.uuid4()}" for _ in range(101))
    response = requests.get(f"{server.api_root}collections/{ALL}/objects/", timeout=30,
                            params={"match[id]": ids}, headers=headers(server, "partner"))
    assert response.status_code == 400
    assert "100" in response.json()["description"]


def test_subscriptions_per_principal_are_capped(server):
    url = f"{server.base}/api/v1/subscriptions"
    auth = {"Authorization": f"Bearer {server.keys['partner']}"}
    for n in range(3):
        created = requests.post(url, json={"name": f"s{n}"}, headers=auth, timeout=30)
        assert created.status_code == 201, created.text
    refused = requests.post(url, json={"name": "one too many"}, headers=auth, timeout=30)
    assert refused.status_code == 409
    assert "subscriptions.max_per_principal" in refused.text and "3" in refused.text
    listed = requests.get(url, headers=auth, timeout=30).json()
    assert len(listed["subscriptions"]) == 3
