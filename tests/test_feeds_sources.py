"""The kev, csv, rss, stix and taxii feed adapters, end to end through the real runner.

Sources are served by a real HTTP server on loopback that answers If-None-Match with 304;
the taxii feed reads a real infoshare server process. Each run goes through
feeds.runner.run_feed into a fresh data directory, and the tests look at the counts, the
feed status and the objects actually stored.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from feeds import runner
from infoshare.app import create_app
from infoshare.server import prepare
from infoshare.settings import load_settings
from infoshare.stix.definitions import KEV_EXTENSION_ID
from infoshare.store import feeds as feed_store
from infoshare.store import notices as notice_store
from infoshare.store.engine import read
from infoshare.store.schema import objects as objects_table
from infoshare.tiers import TLP2_MARKING_IDS

from .live import LiveServer, service_env

FIXTURES = Path(__file__).parent / "fixtures"
STIX = "application/stix+json;version=2.1"
TAXII = "application/taxii+json;version=2.1"
SUBMISSIONS = "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a04"
ZERO = {"fetched": 0, "created": 0, "updated": 0, "unchanged": 0, "rejected": 0, "skipped": 0}


def counts(**values: int) -> dict:
    return {**ZERO, **values}


class Source:
    """A loopback HTTP server for fixtures, with ETag / If-None-Match support."""

    def __init__(self):
        self.routes: dict[str, tuple[bytes, str, bool]] = {}
        self.statuses: list[int] = []
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, path: str, body: bytes | str, content_type: str, etag: bool = True) -> str:
        self.routes[path] = (body.encode() if isinstance(body, str) else body, content_type,
                             etag)
        return self.base + path

    def _app(self, environ, start_response):
        request = Request(environ)
        if request.path not in self.routes:
            response = Response("not found", status=404)
        else:
            body, content_type, with_etag = self.routes[request.path]
            tag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
            if with_etag and request.headers.get("If-None-Match") == tag:
                response = Response(status=304)
            else:
                response = Response(body, content_type=content_type)
            if with_etag:
                response.headers["ETag"] = tag
        self.statuses.append(response.status_code)
        return response(environ, start_response)


class Harness:
    """One data directory; each run builds settings for one feed and runs it in-process."""

    def __init__(self, data_dir: Path):
        self.environ = {"INFOSHARE_DATA_DIR": str(data_dir), "INFOSHARE_DATABASE_URL": "",
                        "INFOSHARE_OUTBOUND_ALLOW_HOSTS": "127.0.0.1"}
        self.services = None
        self.prepared = False
        self.engines = []

    def run(self, **feed) -> dict:
        feed.setdefault("name", feed["kind"])
        settings = load_settings(environ=self.environ, overlay={"feeds": [feed]})
        if not self.prepared:
            prepare(settings)
            self.prepared = True
        self.services = create_app(settings).extensions["infoshare"]  # a restart each run
        self.engines.append(self.services.engine)
        return runner.run_feed(self.services, settings.feeds[0])

    def status(self) -> dict:
        return runner.status(self.services)[0]

    def errors(self) -> dict[str, str]:
        return {e["item"]: e["message"] for e in self.status()["errors"]}

    def cursor(self, name: str) -> dict:
        with read(self.services.engine) as conn:
            return dict(feed_store.get(conn, name).cursor)

    def rows(self, **where) -> list:
        query = sa.select(objects_table.c.id, objects_table.c.type, objects_table.c.version,
                          objects_table.c.raw, objects_table.c.is_latest)
        for key, value in where.items():
            query = query.where(getattr(objects_table.c, key) == value)
        with read(self.services.engine) as conn:
            return list(conn.execute(query))

    def latest(self, object_type: str | None = None) -> dict[str, dict]:
        rows = self.rows(is_latest=True, **({"type": object_type} if object_type else {}))
        return {r.id: json.loads(r.raw) for r in rows}

    def notice_objects(self, name: str, source_id: str) -> list[dict]:
        with read(self.services.engine) as conn:
            row = notice_store.by_source(conn, f"feed:{name}", "", source_id)
        assert row is not None, f"no notice {source_id}"
        latest = self.latest()
        return [latest[i] for i in row.object_ids]

    def versions(self, object_id: str) -> int:
        return len(self.rows(id=object_id))

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()


@pytest.fixture(scope="module")
def loopback():
    server = Source()
    yield server
    server.server.shutdown()


@pytest.fixture
def source(loopback):
    loopback.routes.clear()
    loopback.statuses.clear()
    return loopback


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path / "data")
    yield h
    h.close()


def fixture(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()


# --- kev ------------------------------------------------------------------------------------

def test_kev_catalog_one_notice_per_entry_and_bad_entry_reported(source, harness):
    url = source.serve("/kev.json", fixture("kev", "catalog.json"), "application/json")
    assert harness.run(kind="kev", url=url) == counts(fetched=5, created=4, rejected=1)
    errors = harness.errors()
    assert list(errors) == ["not-a-cve"] and "cveID" in errors["not-a-cve"]
    assert harness.status()["last_error"] == "1 item(s) rejected"

    objs = harness.notice_objects("kev", "CVE-2023-4966")
    assert Counter(o["type"] for o in objs) == {"report": 1, "vulnerability": 1,
                                                "course-of-action": 1, "relationship": 1}
    by_type = {o["type"]: o for o in objs}
    report, vuln, action = by_type["report"], by_type["vulnerability"], by_type[
        "course-of-action"]
    relation = by_type["relationship"]
    assert (relation["relationship_type"], relation["source_ref"], relation["target_ref"]) == (
        "mitigates", action["id"], vuln["id"])
    assert vuln["name"] == "CVE-2023-4966"
    # The vulnerability itself carries the entry: its description, CWEs and the catalog's
    # facts; the report is dated when the catalog added it.
    assert vuln["description"].startswith("Citrix NetScaler ADC")
    assert {"source_name": "cwe", "external_id": "CWE-119"} in vuln["external_references"]
    kev = vuln["extensions"][KEV_EXTENSION_ID]
    assert (kev["vendor_project"], kev["date_added"], kev["due_date"],
            kev["known_ransomware_campaign_use"]) == ("Citrix", "2023-10-18", "2023-11-08",
                                                      "Known")
    assert kev["required_action"] == "Apply updates per vendor instructions."
    assert report["published"] == "2023-10-18T00:00:00.000Z"
    assert action["description"] == "Apply updates per vendor instructions. (due 2023-11-08)"
    assert report["name"].startswith("Citrix NetScaler ADC")
    assert {"kev", "known-ransomware-use", "cyber"} <= set(report["labels"])
    urls = [r.get("url") for r in report["external_references"]]
    assert "https://support.citrix.com/article/CTX579459" in urls
    assert not any(u and u.startswith("ftp") for u in urls)
    assert "NetScaler" in report["description"] and "CWE-119" in report["description"]
    hazard = next(iter(report["extensions"].values()))
    assert hazard["effective"] == "2023-10-18T00:00:00.000Z"
    assert all(o["object_marking_refs"] == [TLP2_MARKING_IDS["clear"]] for o in objs)
    other = {o["type"]: o for o in harness.notice_objects("kev", "CVE-2024-3400")}["report"]
    assert "known-ransomware-use" not in other["labels"]
    assert {"https://security.paloaltonetworks.com/CVE-2024-3400",
            "https://nvd.nist.gov/vuln/detail/CVE-2024-3400"} <= {
        r.get("url") for r in other["external_references"]}


def test_kev_rerun_is_304_then_unchanged_then_new_versions(source, harness):
    catalog = json.loads(fixture("kev", "catalog.json"))
    url = source.serve("/kev.json", json.dumps(catalog), "application/json")
    harness.run(kind="kev", url=url)
    stored = len(harness.rows())
    assert harness.run(kind="kev", url=url) == ZERO and source.statuses[-1] == 304
    source.serve("/kev.json", json.dumps(catalog), "application/json", etag=False)
    assert harness.run(kind="kev", url=url) == counts(fetched=5, unchanged=4, rejected=1)
    assert len(harness.rows()) == stored

    catalog["vulnerabilities"][0]["shortDescription"] += " Exploited since March."
    catalog["vulnerabilities"].append({
        "cveID": "CVE-2025-0282", "vendorProject": "Ivanti", "product": "Connect Secure",
        "vulnerabilityName": "Ivanti Connect Secure Stack-Based Buffer Overflow",
        "dateAdded": "2025-01-08", "shortDescription": "A stack-based buffer overflow.",
        "requiredAction": "Apply mitigations.", "dueDate": "2025-01-15",
        "knownRansomwareCampaignUse": "Unknown", "notes": "", "cwes": ["CWE-121"]})
    source.serve("/kev.json", json.dumps(catalog), "application/json")
    assert harness.run(kind="kev", url=url) == counts(fetched=6, created=1, updated=1,
                                                      unchanged=3, rejected=1)
    changed = {o["type"]: o for o in harness.notice_objects("kev", "CVE-2024-3400")}
    assert changed["report"]["description"].endswith("Exploited since March.\n\n"
                                                     "Affects: Palo Alto Networks PAN-OS.\n\n"
                                                     "Weaknesses: CWE-77.\n\n"
                                                     "Known ransomware campaign use: Unknown.")
    assert harness.versions(changed["report"]["id"]) == 2
    assert changed["vulnerability"]["description"].endswith("Exploited since March.")
    assert harness.versions(changed["vulnerability"]["id"]) == 2  # the entry changed


def test_kev_missing_fields_and_sectors_and_tlp(source, harness):
    good = {"cveID": "CVE-2024-0001", "vulnerabilityName": "Good entry",
            "dateAdded": "2024-02-01", "shortDescription": "Fine.", "unknownField": [1, 2]}
    catalog = {"catalogVersion": "x", "vulnerabilities": [
        {k: v for k, v in good.items() if k != "cveID"},
        {**good, "cveID": "CVE-2024-0002", "vulnerabilityName": ""},
        "not an object",
        {**good, "cveID": "CVE-2024-0003", "dateAdded": "yesterday"},
        {**good, "cveID": "CVE-2024-0004", "shortDescription": 42},
        good, good]}
    url = source.serve("/kev.json", json.dumps(catalog), "application/json")
    result = harness.run(kind="kev", url=url, tlp="green", sectors=["water", "energy"])
    assert result == counts(fetched=7, created=1, rejected=6)
    errors = harness.errors()
    assert "missing" in errors["vulnerabilities[0]"]
    assert "vulnerabilityName" in errors["CVE-2024-0002"]
    assert "JSON object" in errors["vulnerabilities[2]"]
    assert errors["CVE-2024-0003"].startswith("valid_from:")
    assert "shortDescription" in errors["CVE-2024-0004"]
    assert "twice" in errors["CVE-2024-0001"]
    report = next(o for o in harness.notice_objects("kev", "CVE-2024-0001")
                  if o["type"] == "report")
    assert report["object_marking_refs"] == [TLP2_MARKING_IDS["green"]]
    assert len([r for r in report["object_refs"] if r.startswith("identity--")]) == 2


@pytest.mark.parametrize(("body", "content_type", "options", "message"), [
    (b'{"vulnerabilities": [', "application/json", {}, "not valid JSON"),
    (b'{"catalogVersion": "1"}', "application/json", {}, "no `vulnerabilities` list"),
    (b'[]', "application/json", {}, "no `vulnerabilities` list"),
    (b'{"vulnerabilities": []}', "text/html", {}, "sent text/html"),
    (None, "application/json", {"max_bytes": 500}, "larger than the limit of 500"),
])
def test_kev_whole_fetch_failures(source, harness, body, content_type, options, message):
    body = fixture("kev", "catalog.json") if body is None else body
    url = source.serve("/kev.json", body, content_type)
    assert harness.run(kind="kev", url=url, **options) == ZERO
    status = harness.status()
    assert message in status["last_error"] and status["last_success"] is None
    assert harness.latest("report") == {}


# --- csv ------------------------------------------------------------------------------------

def indicators(harness) -> dict[str, dict]:
    return {o["name"]: o for o in harness.latest("indicator").values()}


def test_csv_list_is_one_notice_and_bad_lines_named(source, harness):
    url = source.serve("/list.csv", fixture("csv", "indicators.csv"), "text/csv; charset=utf-8")
    result = harness.run(kind="csv", url=url, title="Weekly C2 list")
    assert result == counts(fetched=7, created=1, rejected=2)
    errors = harness.errors()
    assert set(errors) == {"line 8", "line 9"}
    assert "not a valid ipv4-addr" in errors["line 8"]
    assert "cannot tell" in errors["line 9"]
    found = indicators(harness)
    assert set(found) == {"198.51.100.7", "bad.example.net",
                          "http://malicious.example.org/payload.bin",
                          "d41d8cd98f00b204e9800998ecf8427e", "2001:db8::5"}
    assert found["bad.example.net"]["pattern"] == "[domain-name:value = 'bad.example.net']"
    assert found["d41d8cd98f00b204e9800998ecf8427e"]["pattern"].startswith(
        "[file:hashes.'MD5'")
    assert found["198.51.100.7"]["description"] == (
        "Beacon endpoint (first seen 2025-01-10T00:00:00.000Z)")
    assert found["2001:db8::5"]["pattern"] == "[ipv6-addr:value = '2001:db8::5']"
    report = next(o for o in harness.notice_objects("csv", "csv") if o["type"] == "report")
    assert report["name"] == "Weekly C2 list"
    assert {i["id"] for i in found.values()} <= set(report["object_refs"])


def test_csv_rerun_unchanged_and_added_line_is_one_new_indicator(source, harness):
    body = fixture("csv", "indicators.csv")
    url = source.serve("/list.csv", body, "text/csv")
    harness.run(kind="csv", url=url)
    before = {i["id"]: i["modified"] for i in indicators(harness).values()}
    assert harness.run(kind="csv", url=url) == ZERO and source.statuses[-1] == 304
    source.serve("/list.csv", body, "text/csv", etag=False)
    assert harness.run(kind="csv", url=url) == counts(fetched=7, unchanged=1, rejected=2)

    source.serve("/list.csv", body + b"203.0.113.50,ipv4-addr,New scanner\n", "text/csv")
    assert harness.run(kind="csv", url=url) == counts(fetched=8, updated=1, rejected=2)
    after = {i["id"]: i["modified"] for i in indicators(harness).values()}
    assert set(after) - set(before) == {
        indicators(harness)["203.0.113.50"]["id"]}
    assert all(after[i] == before[i] for i in before)  # the old ones are not re-versioned
    assert all(harness.versions(i) == 1 for i in after)
    report = next(o for o in harness.notice_objects("csv", "csv") if o["type"] == "report")
    assert harness.versions(report["id"]) == 2 and set(after) <= set(report["object_refs"])


def test_csv_without_header_and_notice_kind_option(source, harness):
    url = source.serve("/plain.csv", fixture("csv", "no-header.csv"), "text/plain")
    result = harness.run(kind="csv", url=url, title="Hazard list", notice_kind="physical")
    assert result == counts(fetched=3, created=1)
    found = indicators(harness)
    assert found["192.0.2.10"]["indicator_types"] == ["unknown"]
    assert found["192.0.2.11"]["description"] == "Scanner"
    assert found["evil.example.com"]["pattern"] == "[domain-name:value = 'evil.example.com']"


@pytest.mark.parametrize(("body", "content_type", "options", "message"), [
    (b'value\n192.0.2.1\n"unterminated,x\n', "text/csv", {}, "malformed CSV at line"),
    (b"value\n\xff\xfe192.0.2.1\n", "text/csv", {}, "not UTF-8"),
    (b"value\n192.0.2.1\n", "application/json", {}, "sent application/json"),
    (None, "text/csv", {"max_bytes": 100}, "larger than the limit of 100"),
    (b"value\n192.0.2.1\n", "text/csv", {"notice_kind": "cyberish"},
     "feed options: kind"),
])
def test_csv_whole_fetch_failures(source, harness, body, content_type, options, message):
    body = fixture("csv", "indicators.csv") if body is None else body
    url = source.serve("/list.csv", body, content_type)
    assert harness.run(kind="csv", url=url, **options) == ZERO
    assert message in harness.status()["last_error"]
    assert harness.latest("indicator") == {}


def test_csv_missing_values_only_publishes_nothing(source, harness):
    url = source.serve("/list.csv", "value,type\n,ipv4-addr\n10.0.0.1,domain-name\n",
                       "text/csv")
    assert harness.run(kind="csv", url=url) == counts(fetched=2, rejected=2)
    assert harness.errors() == {"line 2": "value is empty",
                                "line 3": "value: '10.0.0.1' is not a valid domain-name"}
    assert harness.latest("report") == {}


# --- rss ------------------------------------------------------------------------------------

def test_rss_entries_become_notices(source, harness):
    url = source.serve("/feed.rss", fixture("rss", "advisories.xml"),
                       "application/rss+xml; charset=utf-8")
    assert harness.run(kind="rss", url=url) == counts(fetched=3, created=2, rejected=1)
    assert harness.errors() == {"entry 3": "the entry has neither an id nor a link"}
    objs = harness.notice_objects("rss", "adv-2025-001")
    report = next(o for o in objs if o["type"] == "report")
    assert report["name"] == "ADV-2025-001: Remote code execution in Gateway (CVE-2025-0001)"
    assert report["description"] == ("A flaw in the Gateway web interface allows remote code "
                                     "execution.\nRelated: cve-2024-99999 and CVE-2025-0001.")
    assert {o["name"] for o in objs if o["type"] == "vulnerability"} == {
        "CVE-2025-0001", "CVE-2024-99999"}
    assert {"source_name": "reference", "url": "https://advisories.example.com/adv-2025-001"
            } in report["external_references"]
    assert next(iter(report["extensions"].values()))["effective"] == "2025-01-14T10:00:00.000Z"
    assert report["published"] == "2025-01-14T10:00:00.000Z"  # pubDate, not ingestion
    plain = harness.notice_objects("rss", "adv-2025-002")
    assert [o["type"] for o in plain] == ["report"]


def test_atom_and_rerun_and_changed_entry(source, harness):
    url = source.serve("/feed.atom", fixture("rss", "atom.xml"), "application/atom+xml")
    assert harness.run(kind="rss", url=url) == counts(fetched=1, created=1)
    source_id = "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"
    objs = harness.notice_objects("rss", source_id)
    assert {o["name"] for o in objs if o["type"] == "vulnerability"} == {"CVE-2025-1111"}
    assert harness.run(kind="rss", url=url) == ZERO and source.statuses[-1] == 304
    body = fixture("rss", "atom.xml")
    source.serve("/feed.atom", body, "application/atom+xml", etag=False)
    assert harness.run(kind="rss", url=url) == counts(fetched=1, unchanged=1)
    source.serve("/feed.atom", body.replace(b"stop the PLC", b"stop the PLC remotely"),
                 "application/atom+xml")
    assert harness.run(kind="rss", url=url) == counts(fetched=1, updated=1)
    report = next(o for o in harness.notice_objects("rss", source_id) if o["type"] == "report")
    assert report["description"].endswith("stop the PLC remotely.")
    assert harness.versions(report["id"]) == 2


@pytest.mark.parametrize(("body", "content_type", "options", "message"), [
    ("xxe.xml", "application/rss+xml", {}, "refused"),
    ("billion-laughs.xml", "application/rss+xml", {}, "refused"),
    (b"<rss version='2.0'><channel><item><title>x</title>", "application/rss+xml", {},
     "not well-formed XML"),
    (b"<html><body>hello</body></html>", "text/xml", {}, "neither RSS nor Atom"),
    ("advisories.xml", "text/html", {}, "sent text/html"),
    ("advisories.xml", "application/rss+xml", {"max_bytes": 300}, "larger than the limit"),
])
def test_rss_whole_fetch_failures(source, harness, body, content_type, options, message):
    body = fixture("rss", body) if isinstance(body, str) else body
    url = source.serve("/feed.rss", body, content_type)
    assert harness.run(kind="rss", url=url, **options) == ZERO
    assert message in harness.status()["last_error"]
    assert harness.latest("report") == {}


# --- stix -----------------------------------------------------------------------------------

BAD_INDICATOR = "indicator--c5a0f5b1-8d4e-4c3b-9a7d-6e2f1b0c9d8e"


def test_stix_bundle_stored_as_received(source, harness):
    bundle = json.loads(fixture("stix", "bundle.json"))
    url = source.serve("/bundle.json", fixture("stix", "bundle.json"), STIX)
    assert harness.run(kind="stix", url=url) == counts(fetched=5, created=4, rejected=1)
    assert list(harness.errors()) == [BAD_INDICATOR]
    assert "pattern" in harness.errors()[BAD_INDICATOR].lower()
    stored = {r.id: r.raw for r in harness.rows()}
    for obj in bundle["objects"]:
        if obj["id"] != BAD_INDICATOR:
            assert json.loads(stored[obj["id"]]) == obj  # not edited, not signed
    assert BAD_INDICATOR not in stored


def test_stix_rerun_changed_and_local_path(source, harness, tmp_path):
    bundle = json.loads(fixture("stix", "bundle.json"))
    url = source.serve("/bundle.json", json.dumps(bundle), "application/json", etag=False)
    harness.run(kind="stix", url=url)
    assert harness.run(kind="stix", url=url) == counts(fetched=5, unchanged=4, rejected=1)
    malware = bundle["objects"][2]
    malware.update(modified="2025-01-03T00:00:00.000Z", description="Now with a loader.")
    source.serve("/bundle.json", json.dumps(bundle), "application/json", etag=False)
    assert harness.run(kind="stix", url=url) == counts(fetched=5, updated=1, unchanged=3,
                                                       rejected=1)
    assert harness.versions(malware["id"]) == 2
    assert harness.latest("malware")[malware["id"]]["description"] == "Now with a loader."

    path = tmp_path / "drop" / "bundle.json"
    path.parent.mkdir()
    bundle["objects"] = bundle["objects"][:2]
    path.write_text(json.dumps(bundle))
    # Another feed is another origin, but these are copies of stored versions (same id,
    # same version, same content): duplicates, not failures and not second copies.
    assert harness.run(kind="stix", name="dropped", url=str(path)) == counts(fetched=2,
                                                                             unchanged=2)
    assert harness.run(kind="stix", name="dropped", url=str(path)) == counts(fetched=2,
                                                                             unchanged=2)


@pytest.mark.parametrize(("body", "content_type", "options", "message"), [
    (b'{"type": "bundle", "objects": [', STIX, {}, "not valid JSON"),
    (b'{"type": "report", "id": "x"}', STIX, {}, "not a STIX bundle"),
    (b'{"type": "bundle", "objects": {}}', STIX, {}, "not a list"),
    (b'{"type": "bundle", "objects": []}', "text/plain", {}, "sent text/plain"),
    (None, STIX, {"max_bytes": 1000}, "larger than the limit of 1000"),
])
def test_stix_whole_fetch_failures(source, harness, body, content_type, options, message):
    body = fixture("stix", "bundle.json") if body is None else body
    url = source.serve("/bundle.json", body, content_type)
    assert harness.run(kind="stix", url=url, **options) == ZERO
    assert message in harness.status()["last_error"]


def test_stix_missing_local_file(harness, tmp_path):
    assert harness.run(kind="stix", url=str(tmp_path / "none.json")) == ZERO
    assert "cannot read" in harness.status()["last_error"]


# --- taxii ----------------------------------------------------------------------------------

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    server = LiveServer(service_env(tmp_path_factory.mktemp("upstream")), workers=1)
    server.key = server.add_principal("feeder", "--org", "Upstream Ops", "--tier", "trusted",
                                      "--all-sectors", "--role", "publisher",
                                      password=PASSWORD)["api_key"]
    yield server
    server.stop()


def upstream_indicator(value: str) -> dict:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
            "pattern": f"[ipv4-addr:value = '{value}']", "pattern_type": "stix",
            "valid_from": "2025-01-01T00:00:00Z",
            "object_marking_refs": [TLP2_MARKING_IDS["green"]]}


def post_upstream(upstream, objs: list[dict]) -> None:
    response = requests.post(
        f"{upstream.api_root}collections/{SUBMISSIONS}/objects/", data=json.dumps(
            {"objects": objs}), timeout=30, headers={
            "Authorization": f"Bearer {upstream.key}", "Accept": TAXII, "Content-Type": TAXII})
    assert response.status_code == 202 and response.json()["success_count"] == len(objs)


def upstream_ids(upstream) -> list[str]:
    response = requests.get(f"{upstream.api_root}collections/{SUBMISSIONS}/manifest/",
                            headers={"Authorization": f"Bearer {upstream.key}",
                                     "Accept": TAXII}, timeout=30)
    body = response.json()
    assert not body.get("more")
    return [m["id"] for m in body.get("objects", [])]


def test_taxii_feed_resumes_and_never_fetches_twice(upstream, harness):
    first = [upstream_indicator(f"192.0.2.{i}") for i in range(3)]
    post_upstream(upstream, first)
    total = len(upstream_ids(upstream))
    feed = {"kind": "taxii", "name": "upstream", "api_key": upstream.key, "page_size": 2,
            "url": f"{upstream.api_root}collections/{SUBMISSIONS}/"}
    # Each page also carries the marking definition its indicators reference (pages stand
    # alone): fetched counts it once per page, and after the first it is unchanged.
    result = harness.run(**feed)
    assert result["fetched"] >= total >= 3 and result["rejected"] == 0, harness.errors()
    assert result["created"] + result["updated"] + result["unchanged"] == result["fetched"]
    assert result["created"] + result["updated"] == total
    stored = harness.latest("indicator")
    assert all(o == stored[o["id"]] for o in first)  # as received
    position = harness.cursor("upstream")["added_after"]
    assert position.endswith("Z") and len(position) == 27

    second = [upstream_indicator(f"198.51.100.{i}") for i in range(3)]
    post_upstream(upstream, second)
    again = harness.run(**feed)  # a fresh app: a restart
    assert again["created"] == 3 and again["rejected"] == again["updated"] == 0, again
    assert again["fetched"] == 3 + again["unchanged"]  # the marking, once per page
    assert {o["id"] for o in second} <= set(harness.latest("indicator"))
    assert harness.cursor("upstream")["added_after"] > position
    assert harness.run(**feed) == ZERO
    assert harness.status()["last_error"] is None

    # Another feed over the same collection has its own position; basic auth works too.
    basic = {**feed, "name": "upstream-basic", "username": "feeder", "password": PASSWORD}
    del basic["api_key"], basic["page_size"]
    result = harness.run(**basic)
    # Another feed is another origin, but everything it fetches is a copy of a stored
    # version (the first feed's indicators, the upstream's definitions): all duplicates.
    assert result["fetched"] >= total + 3 and result["created"] == 0
    assert result["unchanged"] == result["fetched"] and result["rejected"] == 0


def test_taxii_feed_bad_credentials_and_options(upstream, harness):
    url = f"{upstream.api_root}collections/{SUBMISSIONS}/"
    assert harness.run(kind="taxii", url=url, api_key="wrong", retries=0) == ZERO
    assert "HTTP 401" in harness.status()["last_error"]
    assert harness.run(kind="taxii", url=url, username="feeder") == ZERO
    assert "together" in harness.status()["last_error"]
    assert harness.run(kind="taxii", url=url, api_key=upstream.key, max_bytes=200) == ZERO
    assert "larger than the limit of 200" in harness.status()["last_error"]


# --- the outbound rule --------------------------------------------------------------------

def test_a_feed_to_a_non_public_address_is_refused_by_name(source, harness):
    url = source.serve("/private-kev.json", fixture("kev", "catalog.json"), "application/json")
    allowed = harness.environ.pop("INFOSHARE_OUTBOUND_ALLOW_HOSTS")
    try:
        assert harness.run(kind="kev", name="private", url=url) == ZERO
    finally:
        harness.environ["INFOSHARE_OUTBOUND_ALLOW_HOSTS"] = allowed
    error = harness.status()["last_error"]
    assert "refused" in error and "127.0.0.1" in error and "outbound.allow_hosts" in error
