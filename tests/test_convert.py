"""Bulletin JSON -> Notice (schemas.load_bulletin) -> STIX 2.1 (stix.convert), no server.

Every object the converter makes is run through stix2-validator: the converter builds plain
dicts, so the validator is what keeps them STIX.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import replace

import pytest
from marshmallow import ValidationError
from stix2validator import ValidationOptions, validate_instance

from infoshare import schemas, sectors
from infoshare.stix import convert, definitions, markings
from infoshare.stix.ids import LEGACY, IdSpace
from infoshare.tiers import TLP2_MARKING_IDS

COMPARTMENTS = {"LES": "LAW ENFORCEMENT SENSITIVE", "PCII": "PROTECTED CII"}
HAZARD = definitions.HAZARD_EXTENSION_ID
IDS = IdSpace(uuid.UUID("0f6a2b4c-1d3e-4f50-8a9b-7c6d5e4f3a21"))  # an installation's
OPTIONS = ValidationOptions(version="2.1")
NOW = "2025-03-01T12:00:00.000Z"

MD5 = "D41D8CD98F00B204E9800998ECF8427E"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512 = ("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
          "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
RAW_PATTERN = "[network-traffic:dst_port = 445 AND network-traffic:protocols[*] = 'tcp']"

CYBER = {
    "title": "Ransomware campaign against water utilities",
    "summary": "Operators report intrusions through exposed remote access.",
    "kind": "cyber", "tlp": "green", "sectors": ["water", "energy"],
    "severity": "Severe", "urgency": "Immediate", "certainty": "Observed",
    "valid_from": "2025-03-01T00:00:00Z", "valid_until": "2025-06-01T00:00:00Z",
    "indicators": [
        {"value": "192.0.2.10", "description": "C2 server"},
        {"type": "ipv6-addr", "value": "2001:db8::10"},
        {"value": "evil.example.com"},
        {"value": "https://evil.example.com/payload?id=1'2"},
        {"value": "phish@evil.example.com"},
        {"type": "file:md5", "value": MD5},
        {"type": "file:sha1", "value": SHA1},
        {"value": SHA256},
        {"type": "file:sha512", "value": SHA512},
        {"type": "stix", "value": RAW_PATTERN},
    ],
    "vulnerabilities": ["CVE-2024-12345", "CVE-2023-4966"],
    "mitigations": ["Disable exposed RDP\nand require MFA", "Patch Citrix NetScaler"],
    "threat_actors": ["Example Spider"],
    "references": ["https://www.cisa.gov/example"],
    "labels": ["ransomware"],
    "source_id": "BUL-2025-001",
}

NATURAL = {
    "title": "Red flag warning", "summary": "High winds and low humidity.",
    "kind": "natural", "tlp": "clear", "sectors": ["energy", "water", "dams"],
    "severity": "Extreme", "urgency": "Expected", "certainty": "Likely", "category": "Fire",
    "valid_from": "2025-03-01T00:00:00Z", "valid_until": "2025-03-03T00:00:00Z",
    "locations": [
        # A pentagon whose fifth vertex lies on an edge: the area centroid is (34.2, -118.2),
        # the mean of the vertices is not.
        {"name": "Fire weather zone 288",
         "polygon": [[34.0, -118.4], [34.4, -118.4], [34.4, -118.0], [34.0, -118.0],
                     [34.0, -118.2]],
         "geocodes": {"SAME": "006037", "UGC": "CAZ288"}},
        {"name": "Pumping station 4", "lat": 34.05, "lon": -118.25, "country": "US",
         "administrative_area": "US-CA"},
    ],
    "source_id": "urn:oid:2.49.0.1.840.0.example",
}

AMBER_STRICT = {
    "title": "Targeting of a named utility", "kind": "physical", "tlp": "amber+strict",
    "sectors": ["water"], "recipients": ["Water Co", "Other Water"],
    "indicators": [{"value": "198.51.100.7"}], "source_id": "as-1",
}

RED = {
    "title": "Insider threat", "kind": "physical", "tlp": "red", "sectors": ["nuclear"],
    "recipients": ["alice", "bob"], "threat_actors": ["Insider"], "source_id": "red-1",
}

ALL_SECTORS = {
    "title": "Solar storm", "kind": "natural", "tlp": "green", "sectors": "all",
    "category": "Met", "locations": [{"name": "United States", "country": "US"}],
    "source_id": "all-1",
}

LES = {
    "title": "Threat to facilities", "kind": "physical", "tlp": "amber",
    "sectors": ["government-facilities", "emergency-services"], "compartments": ["LES", "PCII"],
    "indicators": [{"value": "203.0.113.9"}], "threat_actors": ["Group A"],
    "vulnerabilities": ["CVE-2022-0001"], "mitigations": ["Lock the gates"],
    "source_id": "les-1",
}

BULLETINS = {"cyber": CYBER, "natural": NATURAL, "amber-strict": AMBER_STRICT, "red": RED,
             "all-sectors": ALL_SECTORS, "compartments": LES}


def load(document: dict, source: str = "bulletin"):
    return schemas.load_bulletin(copy.deepcopy(document), COMPARTMENTS, source=source)


def stix(document: dict, now: str = NOW, created: dict | None = None) -> list[dict]:
    return convert.convert(load(document), convert.Stamp(now, created or {}), IDS)


def by_type(objects: list[dict], object_type: str) -> list[dict]:
    return [o for o in objects if o["type"] == object_type]


def assert_valid(obj: dict) -> None:
    result = validate_instance(obj, OPTIONS)
    assert result.is_valid, [str(e) for e in result.errors]


# --- every object is valid STIX ------------------------------------------------------------

@pytest.mark.parametrize("name", BULLETINS)
def test_every_object_passes_stix2_validator(name):
    objects = stix(BULLETINS[name])
    assert objects
    for obj in objects:
        assert_valid(obj)


def test_service_definitions_pass_stix2_validator():
    own, unsigned = definitions.service_objects("infoshare", COMPARTMENTS, IDS)
    oasis = [o for o in unsigned if o["type"] == "marking-definition"]
    assert len(oasis) == 5 and len(unsigned) == 5 + 4  # signature, hazard, sector, kev
    assert len(own) == 1 + len(sectors.CODES) + len(COMPARTMENTS)
    assert all(definitions.is_unsigned_definition(o) for o in unsigned)
    for obj in [*own, *unsigned]:
        assert_valid(obj)
    assert {o["id"] for o in oasis} == set(TLP2_MARKING_IDS.values())
    assert all(markings.is_oasis_tlp(o) for o in oasis)
    sector_ids = {o["id"] for o in own if o.get("identity_class") == "class"}
    assert sector_ids == {IDS.sector_identity_id(c) for c in sectors.CODES}


# --- structure ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BULLETINS)
def test_report_first_and_refs_cover_everything(name):
    document = BULLETINS[name]
    objects = stix(document)
    report = objects[0]
    assert report["type"] == "report"
    assert report["id"] == convert.report_id(load(document), IDS)
    codes = sectors.CODES if document["sectors"] == "all" else document["sectors"]
    expected = {o["id"] for o in objects[1:]} | {
        IDS.sector_identity_id(c) for c in codes}
    assert set(report["object_refs"]) == expected
    assert report["name"] == document["title"]
    assert report["published"] == NOW
    assert {"source_name": "bulletin", "external_id": document["source_id"]} in report[
        "external_references"]


@pytest.mark.parametrize("name", BULLETINS)
def test_markings_and_producer_on_every_object(name):
    document = BULLETINS[name]
    objects = stix(document)
    expected = [TLP2_MARKING_IDS[document["tlp"]]] + [
        markings.compartment_marking_id(c, IDS) for c in sorted(document.get("compartments", []))]
    for obj in objects:
        assert obj["object_marking_refs"] == expected, obj["id"]
        assert obj["created_by_ref"] == IDS.identity_id()
        assert (obj["created"], obj["modified"]) == (NOW, NOW)
        assert "revoked" not in obj


def test_compartment_marking_ids_match_the_definitions():
    own, _ = definitions.service_objects("infoshare", COMPARTMENTS, IDS)
    defined = {o["name"]: o["id"] for o in own if o["type"] == "marking-definition"}
    assert defined == {c: markings.compartment_marking_id(c, IDS) for c in COMPARTMENTS}
    report = stix(LES)[0]
    assert set(defined.values()) <= set(report["object_marking_refs"])
    assert markings.compartments_of(report, list(COMPARTMENTS), IDS) == {"LES", "PCII"}


def test_cyber_indicators_patterns():
    objects = stix(CYBER)
    patterns = [o["pattern"] for o in by_type(objects, "indicator")]
    assert patterns == [
        "[ipv4-addr:value = '192.0.2.10']",
        "[ipv6-addr:value = '2001:db8::10']",
        "[domain-name:value = 'evil.example.com']",
        "[url:value = 'https://evil.example.com/payload?id=1\\'2']",
        "[email-addr:value = 'phish@evil.example.com']",
        f"[file:hashes.'MD5' = '{MD5.lower()}']",
        f"[file:hashes.'SHA-1' = '{SHA1}']",
        f"[file:hashes.'SHA-256' = '{SHA256}']",
        f"[file:hashes.'SHA-512' = '{SHA512}']",
        RAW_PATTERN,
    ]
    for indicator in by_type(objects, "indicator"):
        assert indicator["pattern_type"] == "stix"
        assert indicator["valid_from"] == "2025-03-01T00:00:00.000Z"
        assert indicator["valid_until"] == "2025-06-01T00:00:00.000Z"
        assert indicator["indicator_types"] == ["malicious-activity"]
    assert by_type(objects, "indicator")[0]["description"] == "C2 server"


def test_vulnerabilities_have_cve_references():
    vulnerabilities = by_type(stix(CYBER), "vulnerability")
    assert [v["name"] for v in vulnerabilities] == CYBER["vulnerabilities"]
    for vulnerability in vulnerabilities:
        assert vulnerability["external_references"] == [
            {"source_name": "cve", "external_id": vulnerability["name"]}]


def test_relationships():
    objects = stix(CYBER)
    ids = {o["id"]: o for o in objects}
    triples = {(ids[r["source_ref"]]["type"] if r["source_ref"] in ids else r["source_ref"],
                r["relationship_type"],
                ids[r["target_ref"]]["type"] if r["target_ref"] in ids else r["target_ref"])
               for r in by_type(objects, "relationship")}
    assert triples == {
        ("threat-actor", "targets", IDS.sector_identity_id("water")),
        ("threat-actor", "targets", IDS.sector_identity_id("energy")),
        ("threat-actor", "targets", "vulnerability"),
        ("indicator", "indicates", "threat-actor"),
    }
    # One actor: it targets 2 sectors and 2 CVEs, 10 indicators indicate it. Two CVEs:
    # which mitigation answers which is not said, so none "mitigates" either.
    assert len(by_type(objects, "relationship")) == 4 + 10
    assert by_type(objects, "course-of-action")[0]["name"] == "Disable exposed RDP"


def test_relationships_are_never_a_cross_product():
    many = CYBER | {"threat_actors": ["A", "B"], "vulnerabilities": ["CVE-2024-0001"]}
    objects = stix(many)
    kinds = {r["relationship_type"] for r in by_type(objects, "relationship")}
    assert kinds == {"mitigates"}  # two actors: no indicates/targets; one CVE: mitigates
    assert len(by_type(objects, "relationship")) == len(CYBER["mitigations"])


def test_polygon_location_gets_centroid_and_hazard_extension():
    objects = stix(NATURAL)
    zone, station = by_type(objects, "location")
    assert zone["latitude"] == pytest.approx(34.2, abs=1e-6)
    assert zone["longitude"] == pytest.approx(-118.2, abs=1e-6)
    area = zone["extensions"][HAZARD]["areas"][0]
    assert zone["extensions"][HAZARD]["extension_type"] == "property-extension"
    assert area["name"] == "Fire weather zone 288"
    assert area["polygon"] == NATURAL["locations"][0]["polygon"]
    assert sorted((g["name"], g["value"]) for g in area["geocodes"]) == [
        ("SAME", "006037"), ("UGC", "CAZ288")]
    # A plain point keeps its coordinates and gets no hazard extension.
    assert (station["latitude"], station["longitude"]) == (34.05, -118.25)
    assert (station["country"], station["administrative_area"]) == ("US", "US-CA")
    assert "extensions" not in station


def test_report_hazard_extension():
    report = stix(NATURAL)[0]
    hazard = report["extensions"][HAZARD]
    assert hazard["extension_type"] == "property-extension"
    assert (hazard["kind"], hazard["category"], hazard["severity"], hazard["urgency"],
            hazard["certainty"]) == ("natural", "Fire", "Extreme", "Expected", "Likely")
    assert (hazard["effective"], hazard["expires"]) == (
        "2025-03-01T00:00:00.000Z", "2025-03-03T00:00:00.000Z")
    assert [a["name"] for a in hazard["areas"]] == ["Fire weather zone 288"]
    assert "natural" in report["labels"]


def test_centroid_of_simple_shapes():
    assert convert.centroid(((0, 0), (0, 3), (3, 0))) == pytest.approx((1, 1))
    closed = ((10, 20), (10, 22), (12, 22), (12, 20), (10, 20))
    assert convert.centroid(closed) == pytest.approx((11, 21))
    # Degenerate (no area): the mean of the vertices.
    assert convert.centroid(((0, 0), (1, 1), (2, 2))) == pytest.approx((1, 1))


def test_sector_identities_in_report_for_all_sectors():
    report = stix(ALL_SECTORS)[0]
    sector_refs = [r for r in report["object_refs"] if r.startswith("identity--")]
    assert sector_refs == [IDS.sector_identity_id(c) for c in sectors.CODES]


# --- ids and versions ---------------------------------------------------------------------

@pytest.mark.parametrize("name", BULLETINS)
def test_ids_are_deterministic(name):
    document = BULLETINS[name]
    first = [o["id"] for o in stix(document)]
    again = [o["id"] for o in stix(document, now="2025-04-01T00:00:00.000Z")]
    assert first == again
    assert len(set(first)) == len(first)
    other = [o["id"] for o in stix(document | {"source_id": document["source_id"] + "-b"})]
    assert not set(first) & set(other)
    feed = convert.convert(load(document, source="nws"), convert.Stamp(NOW, {}), IDS)
    assert not set(first) & {o["id"] for o in feed}


def test_update_keeps_created_and_moves_modified():
    first = stix(CYBER)
    created = {o["id"]: o["created"] for o in first}
    later = "2025-03-02T00:00:00.000Z"
    second = stix(CYBER | {"summary": "Updated."}, now=later, created=created)
    assert [o["id"] for o in second] == [o["id"] for o in first]
    for obj in second:
        assert (obj["created"], obj["modified"]) == (NOW, later)
    assert second[0]["description"] == "Updated."


def test_update_keeps_first_publication():
    document = {k: v for k, v in CYBER.items() if k != "valid_from"}
    first = stix(document)
    created = {o["id"]: o["created"] for o in first}
    second = stix(document, now="2025-03-02T00:00:00.000Z", created=created)
    assert second[0]["published"] == NOW
    assert {o["valid_from"] for o in by_type(second, "indicator")} == {NOW}
    assert first[0]["id"] == convert.report_id(load(document), IDS)


def test_revoked_notice_revokes_every_object():
    notice = replace(load(CYBER), revoked=True)
    objects = convert.convert(notice, convert.Stamp(NOW, {}), IDS)
    assert objects and all(o["revoked"] is True for o in objects)
    for obj in objects:
        assert_valid(obj)


def test_conversion_needs_a_source_id():
    notice = load({k: v for k, v in RED.items() if k != "source_id"})
    with pytest.raises(ValueError, match="source_id"):
        convert.convert(notice, convert.Stamp(NOW, {}), IDS)


def test_repeated_entries_make_one_object_each():
    document = CYBER | {"indicators": [{"value": "192.0.2.1"}, {"value": "192.0.2.1"}],
                        "mitigations": ["Patch", "Patch"]}
    ids = [o["id"] for o in stix(document)]
    assert len(ids) == len(set(ids))
    assert len(stix(document)[0]["object_refs"]) == len(set(stix(document)[0]["object_refs"]))


def test_valid_until_without_valid_from_never_makes_invalid_indicators():
    document = {"title": "Old IOC", "kind": "cyber", "tlp": "green", "sectors": ["water"],
                "valid_until": "2025-01-01T00:00:00Z", "indicators": [{"value": "192.0.2.1"}],
                "source_id": "old-1"}
    try:
        objects = stix(document, now=NOW)
    except ValidationError as exc:  # rejecting the bulletin is a fine answer too
        assert "valid_until" in exc.messages
        return
    for obj in objects:
        assert_valid(obj)


# --- schema errors -------------------------------------------------------------------------

BASE = {"title": "T", "kind": "cyber", "tlp": "green", "sectors": ["water"]}


def errors(document: object) -> dict:
    with pytest.raises(ValidationError) as info:
        schemas.load_bulletin(document, COMPARTMENTS)
    return info.value.messages


@pytest.mark.parametrize(("document", "path"), [
    ({k: v for k, v in BASE.items() if k != "title"}, ("title",)),
    (BASE | {"title": ""}, ("title",)),
    (BASE | {"tlp": "white"}, ("tlp",)),
    (BASE | {"kind": "alien"}, ("kind",)),
    (BASE | {"sectors": ["water", "moon-base"]}, ("sectors",)),
    (BASE | {"sectors": []}, ("sectors",)),
    (BASE | {"tlp": "amber+strict"}, ("recipients",)),
    (BASE | {"tlp": "red"}, ("recipients",)),
    (BASE | {"vulnerabilities": ["CVE-2024-1"]}, ("vulnerabilities", 0)),
    (BASE | {"indicators": [{"value": "192.0.2.1"}, {"type": "ipv4-addr", "value": "999.1.1.1"}]},
     ("indicators", 1, "value")),
    (BASE | {"indicators": [{"value": "192.0.2.1"}, {"type": "file:sha256", "value": "abc"}]},
     ("indicators", 1, "value")),
    (BASE | {"indicators": [{"type": "stix", "value": "[ipv4-addr:value = "}]},
     ("indicators", 0, "value")),
    (BASE | {"valid_from": "2025-02-01T00:00:00Z", "valid_until": "2025-01-01T00:00:00Z"},
     ("valid_until",)),
    (BASE | {"valid_from": "yesterday"}, ("valid_from",)),
    (BASE | {"locations": [{"name": "x", "lat": 91, "lon": 0}]}, ("locations", 0, "lat")),
    (BASE | {"locations": [{"name": "x", "lat": 0, "lon": 181}]}, ("locations", 0, "lon")),
    (BASE | {"locations": [{"name": "x", "polygon": [[0, 0], [1, 1]]}]},
     ("locations", 0, "polygon")),
    (BASE | {"compartments": ["LES", "TOPSECRET"]}, ("compartments",)),
    (BASE | {"references": ["ftp://example.com/x"]}, ("references", 0)),
], ids=["missing-title", "empty-title", "bad-tlp", "bad-kind", "unknown-sector",
        "no-sectors", "amber-strict-no-recipients", "red-no-recipients", "bad-cve",
        "bad-indicator-1", "short-hash", "bad-stix-pattern", "until-before-from",
        "bad-timestamp", "bad-latitude", "bad-longitude", "two-vertex-polygon",
        "unknown-compartment", "ftp-reference"])
def test_schema_errors_name_the_field(document, path):
    messages = errors(document)
    node = messages
    for key in path:
        assert key in node, messages
        node = node[key]
    assert node and all(isinstance(m, str) and m for m in node), messages


def test_schema_error_messages_say_what_is_wrong():
    assert "moon-base" in errors(BASE | {"sectors": ["moon-base"]})["sectors"][0]
    assert "TOPSECRET" in errors(BASE | {"compartments": ["TOPSECRET"]})["compartments"][0]
    assert errors([BASE]) == {"_schema": ["a bulletin is a JSON object"]}


def test_round_trip_through_dump_notice():
    for document in BULLETINS.values():
        notice = load(document)
        again = schemas.load_bulletin(schemas.dump_notice(notice), COMPARTMENTS)
        assert again == notice


# --- ids: per installation, per organisation, legacy kept -----------------------------------

def test_ids_are_per_installation_and_per_organisation():
    other = IdSpace(uuid.uuid4())
    mine = stix(CYBER)
    theirs = convert.convert(load(CYBER), convert.Stamp(NOW, {}), other)
    assert not {o["id"] for o in mine} & {o["id"] for o in theirs}
    assert IDS.identity_id() != other.identity_id()
    assert theirs[0]["created_by_ref"] == other.identity_id()
    rival = convert.convert(replace(load(CYBER), org="Rival Inc"), convert.Stamp(NOW, {}), IDS)
    assert rival[0]["id"] != mine[0]["id"]
    assert rival[0]["id"] == convert.report_id(replace(load(CYBER), org="Rival Inc"), IDS)


def test_legacy_notices_keep_their_public_ids():
    """Notices from before the secret namespace keep the ids they were published with (the
    old formula: UUIDv5 of source, source_id, role, key in the legacy namespace)."""
    notice = replace(load(CYBER), org="Ops")
    objects = convert.convert(notice, convert.Stamp(NOW, {}), IDS, LEGACY)
    expected = uuid.uuid5(LEGACY.namespace, f"bulletin|{CYBER['source_id']}|report|report")
    assert objects[0]["id"] == f"report--{expected}"
    assert objects[0]["created_by_ref"] == IDS.identity_id()  # but today's identity
