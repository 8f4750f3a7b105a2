"""The access rule over real HTTP, on every read endpoint.

One live server (SQLite, 2 workers) and a fixed pool of principals with varied tiers,
sectors, compartments and organisations. Bulletins are published through the JSON API by
a publisher who may publish anything; every principal then reads everything back, and
what each endpoint shows must be exactly what `access.may_see` allows for the bulletin's
`drafts.notice_audience` (docs/ARCHITECTURE.md, "Access"):

- TAXII objects and manifest of all-hazards, walked page by page (limit 7) with `next`;
- TAXII object by id and versions of an object (invisible answers exactly like missing);
- the per-sector collections (the rule, and the object is for that sector or all sectors;
  a sector the principal does not hold answers 404);
- the JSON API bulletin list and bulletin by id.

Bulletins accumulate over the module, so every expectation is computed over all of them.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from infoshare import access, sectors, tiers
from infoshare.drafts import notice_audience
from infoshare.notices import KINDS
from infoshare.schemas import load_bulletin
from infoshare.settings import load_settings

from .live import LiveServer, service_env

TAXII = "application/taxii+json;version=2.1"
COMPARTMENTS = ["LES", "PCII"]
PAGE = 7  # small, so that pages, cursors and headers are exercised on every walk
# What the service itself stores in every collection (docs/ARCHITECTURE.md: visible to
# every reader).
DEFINITION_TYPES = frozenset({"marking-definition", "extension-definition", "identity"})


@dataclass(frozen=True)
class Member:
    """One principal of the fixed pool."""

    name: str
    org: str
    tier: str
    sectors: tuple[str, ...] | None  # None: all sectors
    compartments: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def cli_args(self) -> list[str]:
        args = ["--org", self.org, "--tier", self.tier]
        if self.sectors is None:
            args.append("--all-sectors")
        for code in self.sectors or ():
            args += ["--sector", code]
        for name in self.compartments:
            args += ["--compartment", name]
        for role in self.roles:
            args += ["--role", role]
        return args

    def principal(self) -> access.Principal:
        return access.Principal(
            pk=0, id=self.name, name=self.name, org=self.org, tier=self.tier,
            max_rank=tiers.RANK[tiers.DEFAULT_TIERS[self.tier]],
            all_sectors=self.sectors is None, sector_mask=sectors.mask(self.sectors or ()),
            compartments=frozenset(self.compartments), roles=frozenset(self.roles))

    def holds(self, code: str) -> bool:
        return self.sectors is None or code in self.sectors


PUBLISHER = Member("publisher", "Ops", "trusted", None, ("LES", "PCII"), ("publisher",))
POOL: tuple[Member, ...] = (
    PUBLISHER,
    Member("t-water", "Water Co", "trusted", ("water", "energy"), ("LES",)),
    Member("t-water2", "Water Co", "trusted", ("water",)),
    Member("t-all", "Grid Inc", "trusted", None),
    Member("t-health", "Clinic", "trusted", ("healthcare-public-health", "nuclear"), ("PCII",)),
    Member("m-all", "Member Org", "member", None, ("PCII",)),
    Member("m-energy", "Grid Inc", "member", ("energy", "chemical"), ("LES", "PCII")),
    Member("p-water", "Water Co", "partner", ("water",)),
    Member("public", "Anyone", "public", ("energy",)),
)
BY_NAME = {m.name: m for m in POOL}
POOL_SECTORS = sorted({code for m in POOL for code in (m.sectors or ())})
ORGS = sorted({m.org for m in POOL}) + ["Nobody Ltd"]
NAMES = [m.name for m in POOL] + ["ghost"]


@dataclass(frozen=True)
class Entry:
    """One published bulletin: what the rule needs to know about it. `history` holds the
    audience of each version (every object of a bulletin is re-versioned when its audience
    changes); `audience` is the latest one, through which the id is seen."""

    report_id: str
    object_ids: tuple[str, ...]
    history: tuple[access.Audience, ...]
    document: dict = field(compare=False, hash=False)

    @property
    def audience(self) -> access.Audience:
        return self.history[-1]


class World:
    def __init__(self, server: LiveServer, keys: dict[str, str]):
        self.server = server
        self.settings = load_settings(server.env)
        self.all_hazards = self.settings.collection("all-hazards").id
        self.sessions: dict[str, requests.Session] = {}
        for name, key in keys.items():
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
            # A kept-alive connection the server closed as idle just as a request left
            # (likely when the machine is overloaded) is reset: reads are retried, as
            # any HTTP client must for idempotent requests.
            session.mount("http://", HTTPAdapter(max_retries=Retry(
                total=3, connect=3, read=3, allowed_methods={"GET"}, status=0)))
            self.sessions[name] = session
        self.entries: list[Entry] = []  # every bulletin published in this module

    # --- HTTP --------------------------------------------------------------------------

    def taxii(self, who: str, path: str, **params) -> requests.Response:
        return self.sessions[who].get(self.server.api_root + path, params=params,
                                      headers={"Accept": TAXII}, timeout=30)

    def api(self, who: str, method: str, path: str, **kwargs) -> requests.Response:
        return self.sessions[who].request(method, f"{self.server.base}/api/v1/{path}",
                                          timeout=30, **kwargs)

    def sector_collection(self, code: str) -> str:
        return self.settings.collection(f"sector-{code}").id

    # --- publishing --------------------------------------------------------------------

    def publish(self, document: dict) -> Entry:
        response = self.api(PUBLISHER.name, "POST", "bulletins", json=document)
        assert response.status_code == 201, response.text
        body = response.json()
        hazard_note = document["kind"] != "cyber"  # hazards state their facts in a note
        assert len(body["objects"]) == 1 + len(document["indicators"]) + hazard_note, body
        assert body["objects"][0] == body["id"]
        notice = load_bulletin(document, COMPARTMENTS)
        entry = Entry(body["id"], tuple(body["objects"]), (notice_audience(notice),), document)
        self.entries.append(entry)
        return entry

    def revise(self, entry: Entry, audience_fields: dict) -> Entry:
        """Publish the bulletin again (same source_id and content) to another audience."""
        document = {**entry.document, **audience_fields}
        response = self.api(PUBLISHER.name, "POST", "bulletins", json=document)
        assert response.status_code == 200, response.text
        body = response.json()
        audience = notice_audience(load_bulletin(document, COMPARTMENTS))
        changed = audience != entry.audience
        assert body["stored"] == (len(entry.object_ids) if changed else 0), (body, entry)
        revised = Entry(entry.report_id, entry.object_ids,
                        entry.history + ((audience,) if changed else ()), document)
        self.entries[self.entries.index(entry)] = revised
        return revised

    def visible_versions(self, member: Member, entry: Entry) -> int:
        principal = member.principal()
        return sum(access.may_see_version(principal, a, entry.audience) for a in entry.history)

    # --- the rule ------------------------------------------------------------------------

    @property
    def known_ids(self) -> set[str]:
        return {i for e in self.entries for i in e.object_ids}

    def sees(self, member: Member, entry: Entry) -> bool:
        return access.may_see(member.principal(), entry.audience)

    def expected_objects(self, member: Member, code: str | None = None) -> set[str]:
        return {i for e in self.entries if self.sees(member, e) and (
            code is None or e.audience.all_sectors
            or e.audience.sector_mask & sectors.bit(code)) for i in e.object_ids}

    def expected_reports(self, member: Member) -> set[str]:
        return {e.report_id for e in self.entries if self.sees(member, e)}

    # --- reading ---------------------------------------------------------------------------

    def walk(self, who: str, collection: str, endpoint: str) -> list[str]:
        """Every id of a collection's objects or manifest, following `next` (limit 7)."""
        ids: list[str] = []
        token, previous_last, pages = None, None, 0
        while True:
            params = {"limit": PAGE, **({"next": token} if token else {})}
            response = self.taxii(who, f"collections/{collection}/{endpoint}/", **params)
            where = f"{who} {endpoint} of {collection} page {pages}"
            assert response.status_code == 200, f"{where}: {response.text}"
            assert response.headers["Content-Type"] == TAXII, where
            first = response.headers.get("X-TAXII-Date-Added-First")
            last = response.headers.get("X-TAXII-Date-Added-Last")
            assert first and last, f"{where}: no X-TAXII-Date-Added headers"
            body = response.json()
            records = body.get("objects", [])
            assert len(records) <= PAGE, where
            if records:
                assert first <= last, where
                if previous_last is not None:
                    assert previous_last < first, f"{where}: pages overlap or go back"
                previous_last = last
            if endpoint == "manifest" and records:
                assert first == records[0]["date_added"], where
                assert last == records[-1]["date_added"], where
            ids += [r["id"] for r in records]
            pages += 1
            if not body.get("more"):
                assert "next" not in body, where
                break
            assert body.get("next") and records, f"{where}: more without next or objects"
            token = body["next"]
        # Definitions come again with each page whose objects reference them.
        content = [i for i in ids if i.split("--")[0] not in DEFINITION_TYPES]
        assert len(content) == len(set(content)), f"{who} {endpoint}: an id came twice"
        return ids

    def generated(self, who: str, ids: list[str], where: str) -> set[str]:
        """The ids made from published bulletins; anything else must be a definition."""
        known = self.known_ids
        strangers = {i for i in ids if i not in known}
        assert all(i.split("--")[0] in DEFINITION_TYPES for i in strangers), (
            f"{who} {where}: objects from nowhere: {sorted(strangers)}")
        return set(ids) & known


def _normalised(response: requests.Response, object_id: str) -> tuple:
    return (response.status_code, response.headers.get("Content-Type"),
            response.text.replace(object_id, "<id>"))


def _names(entries) -> str:
    return ", ".join(f"{e.report_id} {e.document['tlp']} {e.document['sectors']} "
                     f"{e.document.get('compartments')} {e.document.get('recipients')}"
                     for e in entries)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("access-http")
    server = LiveServer(service_env(data_dir, INFOSHARE_TAXII_MAX_PAGE_SIZE="50"), workers=2)
    try:
        with ThreadPoolExecutor(5) as pool:  # each CLI run spends ~2 s importing
            added = list(pool.map(lambda m: server.add_principal(m.name, *m.cli_args()), POOL))
        yield World(server, {m.name: a["api_key"] for m, a in zip(POOL, added, strict=True)})
    finally:
        server.stop()


# --- the checks, one per read endpoint --------------------------------------------------

def check_all_hazards(world: World, member: Member) -> None:
    expected = world.expected_objects(member)
    for endpoint in ("objects", "manifest"):
        got = world.generated(member.name, world.walk(member.name, world.all_hazards, endpoint),
                              endpoint)
        assert got == expected, (
            f"{member.name} all-hazards {endpoint}: shown but hidden by the rule "
            f"{sorted(got - expected)}; hidden but allowed {sorted(expected - got)}")


def check_sector_collection(world: World, member: Member, code: str) -> None:
    collection = world.sector_collection(code)
    if not member.holds(code):
        for path in ("", "objects/", "manifest/"):
            response = world.taxii(member.name, f"collections/{collection}/{path}")
            assert response.status_code == 404, f"{member.name} sector-{code}/{path}"
        return
    got = world.generated(member.name, world.walk(member.name, collection, "objects"),
                          f"sector-{code}")
    expected = world.expected_objects(member, code)
    assert got == expected, (
        f"{member.name} sector-{code}: shown but not allowed {sorted(got - expected)}; "
        f"allowed but hidden {sorted(expected - got)}")


def check_by_id(world: World, member: Member, entries: list[Entry]) -> None:
    """Object, versions and the API bulletin: 200 iff visible, else the missing 404."""
    who = member.name
    missing = f"report--{uuid.uuid4()}"
    base = f"collections/{world.all_hazards}/objects/"
    missing_object = _normalised(world.taxii(who, f"{base}{missing}/"), missing)
    missing_versions = _normalised(world.taxii(who, f"{base}{missing}/versions/"), missing)
    missing_api = _normalised(world.api(who, "GET", f"bulletins/{missing}"), missing)
    assert missing_object[0] == missing_versions[0] == missing_api[0] == 404
    for entry in entries:
        visible = world.sees(member, entry)
        where = f"{who} / {_names([entry])}"
        for object_id in entry.object_ids:
            response = world.taxii(who, f"{base}{object_id}/")
            if visible:
                assert response.status_code == 200, f"object {object_id}: {where}"
                assert response.headers.get("X-TAXII-Date-Added-First"), where
                assert response.headers.get("X-TAXII-Date-Added-Last"), where
                assert [o["id"] for o in response.json()["objects"]] == [object_id], where
            else:
                assert _normalised(response, object_id) == missing_object, (
                    f"object {object_id} not like a missing one: {where}")
        response = world.taxii(who, f"{base}{entry.report_id}/versions/")
        if visible:
            assert response.status_code == 200, f"versions: {where}"
            assert response.headers.get("X-TAXII-Date-Added-First"), where
            assert len(response.json()["versions"]) == world.visible_versions(member, entry), (
                f"versions: {where}")
        else:
            assert _normalised(response, entry.report_id) == missing_versions, (
                f"versions not like a missing object: {where}")
        response = world.api(who, "GET", f"bulletins/{entry.report_id}")
        if visible:
            assert response.status_code == 200, f"api bulletin: {where}"
            assert response.json()["id"] == entry.report_id, where
            assert tuple(response.json()["objects"]) == entry.object_ids, where
        else:
            assert _normalised(response, entry.report_id) == missing_api, (
                f"api bulletin not like a missing one: {where}")


def check_api_list(world: World, member: Member) -> None:
    response = world.api(member.name, "GET", "bulletins", params={"limit": 1000})
    assert response.status_code == 200, response.text
    listed = [b["id"] for b in response.json()["bulletins"]]
    assert len(listed) == len(set(listed))
    reports = {e.report_id for e in world.entries}
    got = set(listed) & reports
    assert set(listed) <= reports, f"{member.name}: bulletins from nowhere"
    expected = world.expected_reports(member)
    assert got == expected, (f"{member.name} api list: shown but not allowed "
                             f"{sorted(got - expected)}; allowed but hidden "
                             f"{sorted(expected - got)}")


# --- one case per rule, by hand ------------------------------------------------------------

def bulletin(tlp: str = "green", sector_list: list[str] | str = ("water",),
             compartments: tuple[str, ...] = (), recipients: tuple[str, ...] = (),
             indicators: int = 1) -> dict:
    tag = uuid.uuid4().hex[:8]
    return {
        "title": f"Access test {tag}", "kind": "cyber", "tlp": tlp,
        "sectors": sector_list if isinstance(sector_list, str) else list(sector_list),
        "compartments": list(compartments), "recipients": list(recipients),
        "indicators": [{"value": f"{tag}-{n}.example.com"} for n in range(indicators)],
    }


# (reader, bulletin the rule hides, the same bulletin with the rule satisfied)
RULES = {
    "other-sector": ("t-water", dict(sector_list=["nuclear"]), dict(sector_list=["water"])),
    "tlp-above-tier": ("p-water", dict(tlp="amber"), dict(tlp="green")),
    "tlp-above-public": ("public", dict(tlp="green", sector_list=["energy"]),
                         dict(tlp="clear", sector_list=["energy"])),
    "missing-compartment": ("t-water", dict(compartments=("LES", "PCII")),
                            dict(compartments=("LES",))),
    "amber-strict-other-org": ("t-water", dict(tlp="amber+strict", recipients=("Grid Inc",)),
                               dict(tlp="amber+strict", recipients=("Water Co",))),
    "red-other-principal": ("t-water", dict(tlp="red", recipients=("t-water2",)),
                            dict(tlp="red", recipients=("t-water",))),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_hides_what_it_should(world, rule):
    reader, hidden_args, shown_args = RULES[rule]
    member = BY_NAME[reader]
    hidden, shown = world.publish(bulletin(**hidden_args)), world.publish(bulletin(**shown_args))
    assert not world.sees(member, hidden) and world.sees(member, shown), (
        "access.may_see disagrees with docs/ARCHITECTURE.md on this case")
    ids = set(world.walk(reader, world.all_hazards, "manifest"))
    assert set(shown.object_ids) <= ids and not set(hidden.object_ids) & ids
    listed = {b["id"] for b in world.api(reader, "GET", "bulletins",
                                         params={"limit": 1000}).json()["bulletins"]}
    assert shown.report_id in listed and hidden.report_id not in listed
    check_by_id(world, member, [hidden, shown])
    # Publishing is no licence to read: the publisher gets only what the rule gives it.
    check_by_id(world, PUBLISHER, [hidden, shown])


# --- the property: every endpoint agrees with the rule, for every principal -----------------

sector_codes = st.one_of(st.sampled_from(POOL_SECTORS), st.sampled_from(sectors.CODES))


@st.composite
def bulletins(draw) -> dict:
    tlp = draw(st.sampled_from(tiers.TLP_LEVELS))
    if tlp == "amber+strict":
        recipients = draw(st.lists(st.sampled_from(ORGS), min_size=1, max_size=3, unique=True))
    elif tlp == "red":
        recipients = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    else:  # recipients on lower levels must change nothing
        recipients = draw(st.lists(st.sampled_from(ORGS + NAMES), max_size=1))
    return {
        "title": "Generated access test",
        "kind": draw(st.sampled_from(KINDS)), "tlp": tlp,
        "sectors": draw(st.one_of(st.just("all"), st.lists(sector_codes, min_size=1,
                                                           max_size=4, unique=True))),
        "compartments": draw(st.lists(st.sampled_from(COMPARTMENTS), max_size=2, unique=True)),
        "recipients": recipients,
        "indicators": [{"value": f"198.51.100.{n}"} for n in draw(
            st.lists(st.integers(1, 254), min_size=1, max_size=2, unique=True))],
        "source_id": f"generated-{uuid.uuid4()}",
    }


AUDIENCE_FIELDS = ("tlp", "sectors", "compartments", "recipients")


@settings(max_examples=18, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(documents=st.lists(bulletins(), min_size=1, max_size=5),
       codes=st.lists(sector_codes, min_size=2, max_size=3, unique=True),
       picks=st.lists(st.integers(min_value=0, max_value=10**6), max_size=3),
       revisions=st.lists(st.tuples(st.integers(min_value=0, max_value=10**6), bulletins()),
                          max_size=3))
def test_every_read_endpoint_shows_exactly_what_the_rule_allows(world, documents, codes,
                                                                 picks, revisions):
    """Bulletins published, and some of the earlier ones published again to a random new
    audience: every principal sees each id through its latest version."""
    older = list(world.entries)
    new = [world.publish({**d, "title": f"{d['title']} {uuid.uuid4().hex[:8]}"})
           for d in documents]
    for pick, fields in revisions:
        # The publisher may update only what it may see (publishing is no licence to read).
        revisable = [e for e in world.entries if e.document.get("source_id")
                     and world.sees(PUBLISHER, e)]
        if not revisable:
            break
        entry = revisable[pick % len(revisable)]
        revised = world.revise(entry, {k: fields[k] for k in AUDIENCE_FIELDS})
        new = [revised if e.report_id == revised.report_id else e for e in new]
        if revised.report_id not in {e.report_id for e in new}:
            new.append(revised)
    # Every new report by id, plus a few older ones (all of them were new once).
    current = {e.report_id: e for e in world.entries}
    sample = list({older[p % len(older)].report_id: current[older[p % len(older)].report_id]
                   for p in picks}.values()) if older else []

    def check(member: Member) -> None:
        check_all_hazards(world, member)
        for code in codes:
            check_sector_collection(world, member, code)
        check_by_id(world, member, new + sample)
        check_api_list(world, member)

    with ThreadPoolExecutor(3) as pool:
        for future in [pool.submit(check, m) for m in POOL]:
            future.result()


def test_generated_bulletins_reached_every_principal_and_every_rule(world):
    """Every principal of the pool both saw and was denied something, and every TLP level
    was used (the hand-built cases alone guarantee this; generation adds to it)."""
    assert {e.document["tlp"] for e in world.entries} == set(tiers.TLP_LEVELS)
    assert any(len(e.history) > 1 for e in world.entries), "no audience was ever changed"
    for member in POOL:
        verdicts = {world.sees(member, e) for e in world.entries}
        assert verdicts == {True, False}, member.name
    print(json.dumps({"bulletins": len(world.entries),
                      "audience_changes": sum(len(e.history) - 1 for e in world.entries),
                      "objects": len(world.known_ids)}))
