"""One valid STIX 2.1 object of every kind the service accepts from partners: each SDO and
SRO, each SCO, marking definitions (TLP, statement, extension-based), language content,
an extension definition, and a custom object; for the differential validation test."""

from __future__ import annotations

T0 = "2024-01-31T12:00:00.000Z"
T1 = "2024-02-01T08:30:00.000Z"
ID = "{}--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
REF = {t: f"{t}--{u}" for t, u in [
    ("identity", "b5c1a0f3-2a0e-4f4e-9e3b-6f0f5d9b9a11"),
    ("indicator", "1d6a8a2e-5c1b-4d7e-8f3a-2b9c0d1e2f30"),
    ("malware", "6b616fc1-1505-48e3-8b2c-0d19337bff38"),
    ("ipv4-addr", "ff26c055-6336-5bc5-b98d-13d6226742dd"),
    ("observed-data", "b67d30ff-02ac-498a-92f9-32f845f448cf"),
    ("file", "9a1b3c5d-7e9f-4a2b-8c4d-6e8f0a1b2c3d"),
]}
TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
EXTENSION = "extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e"


def _sdo(kind: str, **props) -> dict:
    return {"type": kind, "spec_version": "2.1", "id": ID.format(kind), "created": T0,
            "modified": T1, **props}


def _sco(kind: str, **props) -> dict:
    return {"type": kind, "spec_version": "2.1", "id": ID.format(kind), **props}


REFS = [REF["malware"], REF["indicator"]]

_OBJECTS = [
    _sdo("attack-pattern", name="Spearphishing", kill_chain_phases=[
        {"kill_chain_name": "mitre-attack", "phase_name": "initial-access"}],
        external_references=[{"source_name": "capec", "external_id": "CAPEC-163"}]),
    _sdo("campaign", name="Water winter", first_seen="2024-01-01T00:00:00Z",
         objective="disrupt"),
    _sdo("course-of-action", name="Block the addresses", description="At the perimeter."),
    _sdo("grouping", context="suspicious-activity", object_refs=REFS),
    _sdo("identity", name="Water Co", identity_class="organization",
         sectors=["utilities"], created_by_ref=REF["identity"]),
    _sdo("incident", name="Pump outage"),
    _sdo("indicator", name="Scanner", pattern="[ipv4-addr:value = '198.51.100.1']",
         pattern_type="stix", valid_from="2024-01-31T12:00:00Z",
         indicator_types=["malicious-activity"], labels=["infoshare"],
         object_marking_refs=[TLP_GREEN]),
    _sdo("infrastructure", name="C2 server", infrastructure_types=["command-and-control"]),
    _sdo("intrusion-set", name="Volt", aliases=["V"], resource_level="government"),
    _sdo("location", region="northern-america", country="US"),
    _sdo("malware", name="Wiper", is_family=True, malware_types=["wiper"]),
    _sdo("malware-analysis", product="sandbox", result="malicious",
         sample_ref=REF["file"]),
    _sdo("note", content="Seen at two sites.", object_refs=REFS, authors=["analyst"]),
    _sdo("observed-data", first_observed="2024-01-30T00:00:00Z",
         last_observed="2024-01-31T00:00:00Z", number_observed=3,
         object_refs=[REF["ipv4-addr"]]),
    _sdo("opinion", opinion="agree", object_refs=REFS),
    _sdo("report", name="Weekly", published="2024-02-01T00:00:00Z", object_refs=REFS,
         report_types=["threat-report"]),
    _sdo("threat-actor", name="Sandy", threat_actor_types=["nation-state"],
         sophistication="expert"),
    _sdo("tool", name="nmap", tool_types=["network-capture"]),
    _sdo("vulnerability", name="CVE-2024-12345", external_references=[
        {"source_name": "cve", "external_id": "CVE-2024-12345"}]),
    _sdo("relationship", relationship_type="indicates", source_ref=REF["indicator"],
         target_ref=REF["malware"]),
    _sdo("sighting", sighting_of_ref=REF["indicator"], count=2,
         observed_data_refs=[REF["observed-data"]], where_sighted_refs=[REF["identity"]]),
    _sdo("x-acme-widget", name="custom object", x_acme_size=3),
    _sco("artifact", mime_type="application/zip", url="https://example.com/a.zip",
         hashes={"SHA-256": "a" * 64}),
    _sco("autonomous-system", number=64512, name="Example AS"),
    _sco("directory", path="/var/tmp"),
    _sco("domain-name", value="c2.example.com"),
    _sco("email-addr", value="ops@example.com", display_name="Ops"),
    _sco("email-message", is_multipart=False, subject="Invoice", body="Hello",
         date="2024-01-31T00:00:00Z"),
    _sco("file", name="dropper.exe", hashes={"MD5": "0" * 32}, size=1024),
    _sco("ipv4-addr", value="198.51.100.7"),
    _sco("ipv6-addr", value="2001:db8::1"),
    _sco("mac-addr", value="00:00:5e:00:53:af"),
    _sco("mutex", name="Global\\x"),
    _sco("network-traffic", protocols=["tcp"], src_ref=REF["ipv4-addr"], src_port=443,
         start="2024-01-31T00:00:00Z"),
    {**_sco("process", pid=4242, command_line="a.exe"),
     "id": "process--f52a906a-0dfc-40bd-92f1-e7778ead38a9"},
    _sco("software", name="SCADA HMI", vendor="Acme", version="1.2"),
    _sco("url", value="https://example.com/login"),
    _sco("user-account", user_id="1001", account_login="op"),
    _sco("windows-registry-key", key="HKEY_LOCAL_MACHINE\\Software\\x"),
    _sco("x509-certificate", serial_number="01:02", issuer="CN=Example"),
    _sco("x-acme-sensor", x_acme_reading=7),
    {"type": "marking-definition", "spec_version": "2.1", "id": TLP_GREEN,
     "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "name": "TLP:GREEN",
     "definition": {"tlp": "green"}},
    {"type": "marking-definition", "spec_version": "2.1",
     "id": "marking-definition--4a7c1d2e-6f1b-4c3d-9e8f-0a1b2c3d4e5f", "created": T0,
     "definition_type": "statement", "definition": {"statement": "Copyright Water Co"}},
    {"type": "marking-definition", "spec_version": "2.1",
     "id": "marking-definition--5b8d2e3f-7a2c-4d4e-8f9a-1b2c3d4e5f60", "created": T0,
     "name": "LES", "extensions": {EXTENSION: {"extension_type": "property-extension",
                                               "compartment": "LES"}}},
    _sdo("language-content", object_ref=REF["indicator"], object_modified=T0,
         contents={"de": {"name": "Scanner (de)"}, "fr": {"description": "Balayeur"}}),
    _sdo("extension-definition", created_by_ref=REF["identity"], name="Compartments",
         schema="https://example.com/schema.json", version="1.0",
         extension_types=["property-extension"]),
]


def _name(obj: dict) -> str:
    if obj["type"] == "marking-definition":
        return "marking-definition/" + obj.get("definition_type", "extension")
    return obj["type"]


EXAMPLES: dict[str, dict] = {_name(o): o for o in _OBJECTS}
