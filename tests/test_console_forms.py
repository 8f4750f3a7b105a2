"""The console's pure parts, without a browser: the compose form both ways, the mapping of
marshmallow's nested messages onto form fields, the overview's counting and map, and how
time and state are told."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from infoshare import sectors, timestamps
from infoshare.schemas import dump_notice, load_bulletin
from infoshare.web import bulletin_form, display, form_errors, geo, situation, timeline

COMPARTMENTS = {"LES": "law enforcement", "PCII": "pcii"}


def posted(**fields) -> MultiDict:
    base = {"title": "Storm", "kind": "natural", "tlp": "amber", "severity": "Severe",
            "indicators": "192.0.2.7\nbad.example.org # c2\n\nhttps://bad.example.org/p",
            "loc-0-name": "Coast", "loc-0-lat": "29.9", "loc-0-lon": "-90.1",
            "loc-0-country": "us", "loc-1-name": "", "loc-2-name": "Delta",
            "loc-2-polygon": "38,-121.8; 38.3,-121.3; 37.8,-121.2",
            "loc-2-geocodes": "SAME=006067; UGC=CAZ017", "vulnerabilities": "cve-2024-1, "
            "CVE-2024-3400", "labels": "storm, coast", "valid_from": "2030-01-01T10:00",
            "mitigations": "Stay inside\n\nSandbag", "compartments": "LES"}
    form = MultiDict(base | fields)
    form.setlist("sectors", ["energy", "water"])
    return form


def test_the_form_becomes_the_api_bulletin():
    draft = bulletin_form.to_json(bulletin_form.from_form(posted(vulnerabilities="")))
    notice = load_bulletin(draft.document, COMPARTMENTS)
    assert [i.type for i in notice.indicators] == ["ipv4-addr", "domain-name", "url"]
    assert notice.indicators[1].description == "c2"
    assert draft.indicator_lines == [1, 2, 4]  # blank lines are skipped, not renumbered
    assert [loc.name for loc in notice.locations] == ["Coast", "Delta"]  # blank row dropped
    assert notice.locations[0].country == "US" and len(notice.locations[1].polygon) == 3
    assert dict(notice.locations[1].geocodes) == {"SAME": "006067", "UGC": "CAZ017"}
    assert notice.valid_from == "2030-01-01T10:00:00.000Z"
    assert notice.sectors == ("energy", "water") and notice.compartments == ("LES",)
    assert notice.mitigations == ("Stay inside", "Sandbag")


def test_a_stored_document_prefills_the_form_and_round_trips():
    draft = bulletin_form.to_json(bulletin_form.from_form(posted(vulnerabilities="")))
    notice = load_bulletin(draft.document, COMPARTMENTS)
    values = bulletin_form.from_document(dump_notice(notice))
    again = load_bulletin(bulletin_form.to_json(values).document, COMPARTMENTS)
    assert again == notice


def test_all_sectors_wins_over_single_sectors():
    form = posted(all_sectors="on")
    document = bulletin_form.to_json(bulletin_form.from_form(form)).document
    assert document["sectors"] == "all"


def errors_for(form: MultiDict) -> dict[str, list[str]]:
    draft = bulletin_form.to_json(bulletin_form.from_form(form))
    with pytest.raises(ValidationError) as info:
        load_bulletin(draft.document, COMPARTMENTS)
    return form_errors.merge(draft.problems,
                             form_errors.by_field(info.value.messages, draft.indicator_lines))


def test_nested_errors_land_on_their_fields():
    errors = errors_for(posted(**{
        "title": "", "indicators": "192.0.2.7\n\nnot-an-indicator", "loc-0-lat": "north",
        "loc-2-polygon": "1,2; 3", "loc-2-geocodes": "SAME", "references": "ftp://x\nnope"}))
    assert errors["title"] == ["Missing data for required field."]
    assert errors["indicators"][0].startswith("line 3: ")
    assert "STIX pattern in [brackets]" in errors["indicators"][0]
    assert errors["locations.0.lat"] == ["Not a valid number."]
    assert any(m.startswith("vertex 2: ") for m in errors["locations.1.polygon"])
    assert "NAME=value" in errors["locations.1.geocodes"][0]
    assert [m.split(":")[0] for m in errors["references"]] == ["line 1", "line 2"]
    assert errors["vulnerabilities"] == ["CVE 1: not a CVE id like CVE-2024-12345"]
    ids = {target for target, _, _ in form_errors.summary(errors)}
    assert {"f-title", "f-indicators", "loc-0-lat", "loc-1-polygon"} <= ids


def test_overview_counts_active_notices_by_sector_and_severity():
    def row(severity, codes=(), all_sectors=False, until=None, locations=()):
        return SimpleNamespace(severity=severity, all_sectors=all_sectors,
                               sector_mask=sectors.mask(codes), report_id="report--x",
                               title="t", document={"valid_until": until,
                                                    "locations": list(locations)})
    rows = [row("Severe", ["water", "energy"]), row("Severe", ["water"]),
            row("Minor", all_sectors=True), row("Extreme", ["water"], until="2000-01-01T00:00:00Z",
                                                locations=[{"name": "A", "lat": 1, "lon": 2}])]
    active = [r for r in rows if situation._current(r.document, 10**18 // 1000)]
    table = {t.code: t.counts for t in situation.table(active)}
    assert table["water"] == (0, 2, 0, 0, 0) and table["energy"] == (0, 1, 0, 0, 0)
    assert table[None] == (0, 0, 0, 1, 0) and sum(table["dams"]) == 0
    places, unplaced = situation.places([row("Minor", locations=[
        {"name": "P", "lat": 10, "lon": 20}, {"name": "C", "country": "US"},
        {"name": "Poly", "polygon": [[0, 0], [0, 2], [2, 2], [2, 0]]}])])
    assert [(p.name, p.lat, p.lon) for p in places] == [("P", 10, 20), ("Poly", 1.0, 1.0)]
    assert unplaced == 1


def test_map_projection_and_views():
    assert geo.project(-180, 90) == (0, 0) and geo.project(180, -90) == (360, 180)
    us = geo.VIEWS["us"]
    place = situation.Place("report--x", "t", "Severe", "Sacramento", 38.6, -121.5)
    assert us.shows(place) and geo.dots(us, [place])[0].x == pytest.approx(58.5)
    assert not us.shows(situation.Place("r", "t", "Minor", "Berlin", 52.5, 13.4))
    world, states = geo.land_path("world"), geo.land_path("us")
    assert world.startswith("M") and world.count("Z") > 150  # Natural Earth's countries
    assert states.count("Z") >= 49  # the Census states of the contiguous US
    assert geo.county_path("ak").count("Z") > 25 and geo.county_path("us") == ""
    travis = SimpleNamespace(severity="Severe", report_id="report--x", title="t", document={
        "locations": [{"name": "Travis", "country": "US", "geocodes": {"SAME": "048453"}}]})
    areas = situation.areas([travis])
    assert [a.name for a in areas] == ["Travis"] and geo.shapes(us, areas)[0].path


# --- time told truthfully (web/timeline.py, display) -------------------------------------

def test_a_typed_date_time_is_utc_with_or_without_seconds():
    assert bulletin_form.utc_timestamp("2030-01-01 10:00") == "2030-01-01T10:00:00Z"
    assert bulletin_form.utc_timestamp("2030-01-01T10:00:05") == "2030-01-01T10:00:05Z"
    assert bulletin_form.utc_timestamp("next tuesday") == "next tuesday"  # the schema judges
    assert bulletin_form.local_time("2030-01-01T10:00:05.000Z") == "2030-01-01 10:00:05"


def test_states_and_event_time():
    now = timestamps.parse_us("2026-01-01T00:00:00Z")
    old = {"valid_from": "2020-03-01T00:00:00Z", "valid_until": "2020-04-01T00:00:00Z"}
    assert timeline.validity(False, old, now, now).state == "expired"
    assert timeline.validity(True, old, now, now).state == "revoked"
    assert timeline.validity(False, {}, now, now).state == "active"
    assert timeline.validity(False, {"valid_until": "2030-01-01T00:00:00Z"}, now,
                             now).state == "active"
    ahead = timeline.validity(False, {"valid_from": "2030-01-01T00:00:00Z"}, now, now)
    assert ahead.state == "upcoming" and display.validity(ahead).endswith("not yet in effect")
    assert timeline.event_us(old, now) == timestamps.parse_us("2020-03-01T00:00:00Z")
    assert timeline.event_us({}, now) == now  # no source time: first publication
    revoked = display.validity(timeline.validity(True, {}, now, now))
    assert "until revoked" not in revoked and revoked.startswith("from publication; revoked")
    assert display.validity(timeline.validity(False, old, now, now)).endswith("expired")


def test_feed_intervals_read_as_words():
    assert [display.every(s) for s in (86_400, 3_600, 900, 21_600, 172_800, 45)] == [
        "daily", "hourly", "every 15 minutes", "every 6 hours", "every 2 days", "every 45 s"]
