"""The cap and nws feeds end to end: hand-written fixtures served by a real HTTP server on
loopback (with ETags and 304s), run through feeds.runner into a real data directory, and
checked in the stored, signed STIX and the feed's recorded status."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from feeds import cap_parse, registry
from feeds.runner import describe, run_feed
from infoshare.installation import id_space
from infoshare.publish import Authority
from infoshare.server import prepare
from infoshare.settings import Settings, load_settings
from infoshare.signing.keys import KeyRing
from infoshare.stix import validate
from infoshare.stix.definitions import HAZARD_EXTENSION_ID
from infoshare.store import feeds as feed_store
from infoshare.store import objects as object_store
from infoshare.store.engine import connect_engine, read
from infoshare.store.schema import notices, objects

from .live import cli, service_env

FIXTURES = Path(__file__).parent / "fixtures"
TYPES = {".xml": "application/cap+xml", ".atom": "application/atom+xml",
         ".rss": "application/rss+xml", ".json": "application/geo+json"}


class FixtureServer:
    """Serves tests/fixtures. /live/<name> serves the fixture self.live[name] names, so a
    test can change a source between runs. Bodies carry an ETag and a matching
    If-None-Match gets 304, unless ?noetag; ?type= overrides the content type."""

    def __init__(self):
        self.live: dict[str, str] = {}
        self.seen: list[tuple[str, int, dict]] = []  # (path, status, request headers)
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _app(self, environ, start_response):
        request = Request(environ)
        response = self._answer(request)
        self.seen.append((request.path, response.status_code, dict(request.headers)))
        return response(environ, start_response)

    def _answer(self, request: Request) -> Response:
        name = request.path.lstrip("/")
        if name.startswith("live/"):
            name = self.live.get(name[5:], "missing")
        path = (FIXTURES / name).resolve()
        if FIXTURES.resolve() not in path.parents or not path.is_file():
            return Response("not found", status=404)
        body = path.read_bytes()
        headers = {"Content-Type": request.args.get("type") or TYPES[path.suffix]}
        if "noetag" not in request.args:
            headers["ETag"] = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if request.headers.get("If-None-Match") == headers["ETag"]:
                return Response(status=304, headers={"ETag": headers["ETag"]})
        return Response(body, headers=headers)

    def stop(self) -> None:
        self.server.shutdown()


@dataclass
class Services:
    """What feeds.runner uses of the app's services (infoshare.app.Services), without
    building the whole Flask app."""

    settings: Settings

    def __post_init__(self):
        self.engine = connect_engine(self.settings.database_url)
        self._signer = KeyRing(self.settings.data_dir, self.settings.key_passphrase).signer()
        self.ids = id_space(self.settings)

    def signer(self):
        return self._signer

    def authority(self) -> Authority:
        return Authority(self._signer, self.ids)


@dataclass
class World:
    data: Path
    environ: dict
    services: Services
    server: FixtureServer

    def spec(self, name: str, kind: str, path: str, **options):
        entry = {"name": name, "kind": kind, "url": self.server.base + path,
                 "interval": 600, **options}
        settings = load_settings(environ=self.environ, overlay={"feeds": [entry]})
        registry.validate(settings)
        return settings.feeds[0]

    def run(self, spec) -> dict:
        return run_feed(self.services, spec)

    def status(self, spec) -> dict:
        with read(self.services.engine) as conn:
            return describe(spec, feed_store.get(conn, spec.name))

    def notices(self, spec) -> list:
        with read(self.services.engine) as conn:
            return list(conn.execute(sa.select(notices).where(
                notices.c.source == f"feed:{spec.name}").order_by(notices.c.source_id)))

    def stix(self, object_id: str) -> dict:
        with read(self.services.engine) as conn:
            return json.loads(object_store.latest_stored(conn, [object_id])[object_id].raw)

    def versions(self, object_id: str) -> int:
        with read(self.services.engine) as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(objects)
                                .where(objects.c.id == object_id)).scalar_one()

    def locations(self, report: dict) -> list[dict]:
        return [self.stix(i) for i in report["object_refs"] if i.startswith("location--")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("feeds")
    environ = {"INFOSHARE_DATA_DIR": str(data), "INFOSHARE_OUTBOUND_ALLOW_HOSTS": "127.0.0.1"}
    settings = load_settings(environ=environ)
    prepare(settings)
    services = Services(settings)
    server = FixtureServer()
    yield World(data, environ, services, server)
    server.stop()
    services.engine.dispose()


def counts(fetched=0, created=0, updated=0, unchanged=0, rejected=0, skipped=0) -> dict:
    return {"fetched": fetched, "created": created, "updated": updated,
            "unchanged": unchanged, "rejected": rejected, "skipped": skipped}


def test_single_alert_maps_cap_fields_and_reruns_unchanged(world):
    spec = world.spec("single", "cap", "/cap/alert.xml?noetag", tlp="green")
    assert world.run(spec) == counts(fetched=1, created=1)
    [row] = world.notices(spec)
    assert (row.source_id, row.kind, row.tlp, row.all_sectors) == (
        "KS-2024-0001", "natural", "green", True)
    report = world.stix(row.report_id)
    assert report["name"] == "Tornado Warning for central Kansas"  # en-US, not the es-US one
    assert report["description"] == "A tornado was observed near Salina.\n\nTake shelter now."
    hazard = report["extensions"][HAZARD_EXTENSION_ID]
    assert {k: hazard[k] for k in ("category", "severity", "urgency", "certainty",
                                   "effective", "expires")} == {
        "category": "Met", "severity": "Severe", "urgency": "Immediate",
        "certainty": "Observed", "effective": "2024-05-01T15:00:00.000Z",
        "expires": "2024-05-01T21:30:00.000Z"}
    assert {"source_name": "reference", "url": "https://www.weather.gov/ict/"} in \
        report["external_references"]
    [location] = world.locations(report)
    # CAP polygons are lat,lon: Kansas, not a point in Antarctica or off the map
    assert 37.5 < location["latitude"] < 39.5 and -99.5 < location["longitude"] < -97.5
    [area] = location["extensions"][HAZARD_EXTENSION_ID]["areas"]
    assert area["polygon"][0] == [37.0, -102.0]
    assert area["geocodes"] == [{"name": "SAME", "value": "020169 020053"}]
    for obj in [report, location]:
        validate.check(obj)  # stix2-validator, as for anything from outside
    assert world.run(spec) == counts(fetched=1, unchanged=1)


def test_update_is_a_new_version_and_cancel_revokes(world):
    world.server.live["ks.xml"] = "cap/alert.xml"
    spec = world.spec("chain", "cap", "/live/ks.xml")
    assert world.run(spec) == counts(fetched=1, created=1)
    [row] = world.notices(spec)
    report_id = row.report_id

    world.server.live["ks.xml"] = "cap/update.xml"
    assert world.run(spec) == counts(fetched=1, updated=1)
    [row] = world.notices(spec)
    assert (row.report_id, row.source_id, row.severity) == (report_id, "KS-2024-0001",
                                                            "Extreme")
    assert world.versions(report_id) == 2
    assert world.stix(report_id)["name"] == "Tornado Warning for central Kansas extended"

    world.server.live["ks.xml"] = "cap/cancel.xml"
    assert world.run(spec) == counts(fetched=1, updated=1)
    [row] = world.notices(spec)
    assert row.revoked and row.report_id == report_id
    report = world.stix(report_id)
    assert report["revoked"] is True
    assert all(loc["revoked"] for loc in world.locations(report))

    # the original seen again is older than the cancel: it must not un-revoke anything
    world.server.live["ks.xml"] = "cap/alert.xml"
    assert world.run(spec) == counts(fetched=1)
    assert world.stix(report_id)["revoked"] is True
    assert world.status(spec)["last_error"] is None


def test_exercise_is_counted_not_published_unless_asked(world):
    spec = world.spec("exercise", "cap", "/cap/exercise.xml?noetag")
    assert world.run(spec) == counts(fetched=1, skipped=1)
    assert world.notices(spec) == [] and world.status(spec)["errors"] == []
    spec = world.spec("exercise-on", "cap", "/cap/exercise.xml?noetag",
                      statuses=["Actual", "Exercise"])
    assert world.run(spec) == counts(fetched=1, created=1)


def test_circle_and_geocode_only_area_and_304(world):
    spec = world.spec("circle", "cap", "/cap/circle.xml", sectors=["chemical", "water"])
    assert world.run(spec) == counts(fetched=1, created=1)
    [row] = world.notices(spec)
    assert (row.kind, row.all_sectors) == ("technological", False)
    report = world.stix(row.report_id)
    assert report["extensions"][HAZARD_EXTENSION_ID]["effective"] == "2024-06-03T08:15:00.000Z"
    places = {loc["name"]: loc for loc in world.locations(report)}
    circle = places["Plant perimeter (circle, radius 5 km)"]
    assert (circle["latitude"], circle["longitude"]) == (37.69, -97.34)
    county = places["Sedgwick County"]
    assert county["country"] == "US" and "latitude" not in county
    assert county["extensions"][HAZARD_EXTENSION_ID]["areas"][0]["geocodes"] == [
        {"name": "UGC", "value": "KSZ083"}]

    assert world.run(spec) == counts()  # 304: nothing fetched, nothing written
    path, status, headers = world.server.seen[-1]
    assert (path, status) == ("/cap/circle.xml", 304) and headers.get("If-None-Match")
    assert world.status(spec)["last_error"] is None


def test_atom_index_stores_the_good_alerts_and_names_the_bad_one(world):
    spec = world.spec("atom", "cap", "/cap/index.atom?noetag")
    assert world.run(spec) == counts(fetched=3, created=2, rejected=1)
    assert [r.source_id for r in world.notices(spec)] == ["IDX-A", "IDX-EMBEDDED"]
    state = world.status(spec)
    assert state["last_error"] == "1 item(s) rejected"
    [error] = state["errors"]
    assert error["item"] == "IDX-BAD"
    assert "lat,lon" in error["message"]
    embedded = next(r for r in world.notices(spec) if r.source_id == "IDX-EMBEDDED")
    assert embedded.kind == "health"
    [place] = world.locations(world.stix(embedded.report_id))
    assert place["country"] == "US"

    limited = world.spec("atom-limited", "cap", "/cap/index.atom?noetag", max_alerts=1)
    assert world.run(limited) == counts(fetched=1, created=1)


def test_rss_index_refuses_local_links_and_entities(world):
    spec = world.spec("rss", "cap", "/cap/index.rss?noetag")
    assert world.run(spec) == counts(fetched=4, created=1, rejected=3)
    errors = {e["item"]: e["message"] for e in world.status(spec)["errors"]}
    assert "not http(s)" in errors["file:///etc/passwd"]
    assert "refused" in errors[world.server.base + "/cap/xxe.xml"]
    assert "refused" in errors["rss-escaped"]  # an alert embedded as escaped text
    assert not any(path == "/etc/passwd" for path, _, _ in world.server.seen)


@pytest.mark.parametrize(("name", "message"), [
    ("xxe.xml", "refused XML with a DTD"), ("billion.xml", "refused XML with a DTD"),
    ("malformed.xml", "not well-formed XML"),
])
def test_hostile_or_broken_documents_are_refused(world, name, message):
    spec = world.spec(f"bad-{name.split('.')[0]}", "cap", f"/cap/{name}?noetag")
    assert world.run(spec) == counts()
    assert message in world.status(spec)["last_error"]
    assert world.notices(spec) == []


def test_wrong_content_type_and_oversize_are_recorded(world):
    html = world.spec("html", "cap", "/cap/alert.xml?noetag&type=text/html")
    assert world.run(html) == counts()
    assert "text/html" in world.status(html)["last_error"]
    big = world.spec("big", "cap", "/cap/alert.xml?noetag", max_bytes=200)
    assert world.run(big) == counts()
    assert "larger than the limit" in world.status(big)["last_error"]
    assert world.notices(html) == [] and world.notices(big) == []


def test_nws_geojson(world):
    spec = world.spec("nws", "nws", "/nws/alerts.json?noetag",
                      user_agent="(infoshare.test, soc@infoshare.test)")
    # the flood watch and its update are one chain: only the update is published
    assert world.run(spec) == counts(fetched=4, created=2, skipped=1)
    path, _, headers = world.server.seen[-1]
    assert headers["User-Agent"] == "(infoshare.test, soc@infoshare.test)"
    assert "application/geo+json" in headers["Accept"]
    flood, tornado = world.notices(spec)
    assert flood.source_id == "urn:oid:2.49.0.1.840.0.flood.001"
    assert (flood.title, flood.severity) == ("Flood Watch updated May 2 by NWS Wichita KS",
                                             "Severe")
    [place] = world.locations(world.stix(flood.report_id))  # null geometry: geocodes
    # Placed by the counties its SAME codes name (the gazetteer): a point inside them.
    assert place["country"] == "US" and place["administrative_area"].endswith("Kansas")
    assert 36.9 < place["latitude"] < 40.1 and -102.1 < place["longitude"] < -94.5
    assert place["extensions"][HAZARD_EXTENSION_ID]["areas"][0]["geocodes"] == [
        {"name": "SAME", "value": "020173 020015"}, {"name": "UGC", "value": "KSZ083 KSZ069"}]
    for obj in [world.stix(flood.report_id), place]:
        validate.check(obj)
    [place] = world.locations(world.stix(tornado.report_id))  # GeoJSON lon,lat turned round
    assert 37.5 < place["latitude"] < 39.5 and -99.5 < place["longitude"] < -97.5
    area = place["extensions"][HAZARD_EXTENSION_ID]["areas"][0]
    assert area["polygon"][0] == [37.0, -102.0]
    assert world.run(spec) == counts(fetched=4, unchanged=2, skipped=1)


# --- real files ------------------------------------------------------------------------------

def test_an_empty_polygon_falls_back_to_the_geocodes(world):
    spec = world.spec("nws-zone", "cap", "/cap/nws-empty-polygon.xml?noetag")
    assert world.run(spec) == counts(fetched=1, created=1)
    [row] = world.notices(spec)
    [place] = world.locations(world.stix(row.report_id))
    [area] = place["extensions"][HAZARD_EXTENSION_ID]["areas"]
    assert "polygon" not in area
    assert area["geocodes"] == [{"name": "SAME", "value": "048375"},
                                {"name": "UGC", "value": "TXZ012"}]


def test_every_cap_fact_travels_in_the_hazard_extension(world):
    spec = world.spec("nws-facts", "cap", "/cap/nws-empty-polygon.xml?noetag")
    world.run(spec)
    [row] = world.notices(spec)
    report = world.stix(row.report_id)
    hazard = report["extensions"][HAZARD_EXTENSION_ID]
    assert hazard["event"] == "Winter Storm Warning"
    assert hazard["sender_name"] == "NWS Amarillo TX"
    assert hazard["onset"] == "2024-12-11T00:00:00.000Z"
    assert hazard["response_types"] == ["Prepare"]
    assert hazard["event_codes"] == [{"name": "SAME", "value": "WSW"},
                                     {"name": "NationalWeatherService", "value": "WSW"}]
    assert {"name": "VTEC", "value": "/O.NEW.KAMA.WS.W.0004.241211T0000Z-241211T1200Z/"} \
        in hazard["parameters"]
    assert [p["name"] for p in hazard["parameters"]] == ["NWSheadline", "VTEC", "CMAMtext"]
    assert hazard["instruction"] == "Travel should be restricted to emergencies only."
    assert hazard["web"] == "http://www.weather.gov"
    # The source's time, not the time of ingestion; the description without indentation.
    assert report["published"] == "2024-12-10T09:12:00.000Z"
    assert report["description"].startswith(
        "* WHAT...Heavy snow expected.\nTotal snow accumulations of 6 to 10 inches.\n\n"
        "* WHERE...Potter County.")
    [place] = world.locations(report)
    assert place["country"] == "US"  # from the SAME and UGC codes
    [note] = [world.stix(i) for i in report["object_refs"] if i.startswith("note--")]
    assert "Parameters: NWSheadline WINTER STORM WARNING IN EFFECT" in note["content"]
    for obj in [report, place, note]:
        validate.check(obj)


def test_a_circle_stays_a_circle(world):
    spec = world.spec("circle-kept", "cap", "/cap/circle.xml?noetag")
    world.run(spec)
    [row] = world.notices(spec)
    places = {p["name"]: p for p in world.locations(world.stix(row.report_id))}
    circle = places["Plant perimeter (circle, radius 5 km)"]
    assert circle["precision"] == 5000.0  # metres, STIX's radius of a point
    [area] = circle["extensions"][HAZARD_EXTENSION_ID]["areas"]
    assert area["circle"] == {"center": [37.69, -97.34], "radius_km": 5.0}


def test_no_country_is_assumed(world):
    info = ("<info><category>Met</category><event>Storm</event><area><areaDesc>Somewhere"
            "</areaDesc><geocode><valueName>ZONE</valueName><value>17</value></geocode>"
            "</area></info>")
    fetched = collect(world, [cap_xml("NOWHERE-1", info=info)])
    [error] = fetched.errors
    assert error.item == "NOWHERE-1" and "country" in error.message
    assert "area" in error.message and "locations" not in error.message
    spec = world.spec("unit-ca", "cap", "/unused", country="CA")
    from feeds.base import Context
    ctx = Context(spec, {}, get=None)
    alert = cap_parse.alert_from_xml(cap_parse.parse_xml(cap_xml("NOWHERE-2", info=info)))
    [notice] = cap_parse.collect_alerts(ctx, [alert], [], 1).items
    assert notice.locations[0].country == "CA"


def test_expires_equal_to_sent_is_accepted(world):
    spec = world.spec("tsunami", "cap", "/cap/tsunami-cancel-expires-at-sent.xml?noetag")
    assert world.run(spec) == counts(fetched=1, created=1), world.status(spec)["errors"]
    [row] = world.notices(spec)
    hazard = world.stix(row.report_id)["extensions"][HAZARD_EXTENSION_ID]
    assert hazard["expires"] == "2024-07-01T10:00:00.000Z"


def test_several_alerts_in_one_file_are_read_one_by_one(world):
    spec = world.spec("several", "cap", "/cap/several.xml?noetag")
    assert world.run(spec) == counts(fetched=3, created=1, rejected=1, skipped=1)
    assert [r.source_id for r in world.notices(spec)] == ["MULTI-1"]
    [error] = world.status(spec)["errors"]
    assert error["item"] == "MULTI-3" and "lat,lon" in error["message"]


@pytest.mark.parametrize("served_as", ["text/plain", "application/octet-stream",
                                       "application/vnd.example.alerts"])
def test_xml_served_as_another_type_is_read_and_noted(world, served_as):
    name = "typed-" + served_as.rsplit("/", 1)[-1].replace(".", "-")
    spec = world.spec(name, "cap", f"/cap/alert.xml?noetag&type={served_as}")
    assert world.run(spec) == counts(fetched=1, created=1)
    assert any(served_as in note for note in world.status(spec)["notes"])


def test_not_xml_under_another_type_is_still_refused(world):
    spec = world.spec("typed-json", "cap", "/nws/alerts.json?noetag&type=text/plain")
    assert world.run(spec) == counts()
    assert "not well-formed XML" in world.status(spec)["last_error"]


def test_rejections_stay_until_the_item_changes_or_an_operator_clears_them(world, tmp_path):
    world.server.live["sticky.xml"] = "cap/several.xml"
    spec = world.spec("sticky", "cap", "/live/sticky.xml")
    assert world.run(spec)["rejected"] == 1
    assert world.run(spec) == counts()  # 304
    state = world.status(spec)
    assert [e["item"] for e in state["errors"]] == ["MULTI-3"]
    assert state["last_error"] == "1 item(s) rejected"
    config = tmp_path / "sticky.toml"
    config.write_text(f'[[feeds]]\nname = "sticky"\nkind = "cap"\n'
                      f'url = "{world.server.base}/live/sticky.xml"\ninterval = 600\n')
    env = service_env(world.data, INFOSHARE_CONFIG=str(config))
    assert json.loads(cli(env, "feeds", "clear", "sticky").stdout) == {
        "feed": "sticky", "cleared": 1}
    state = world.status(spec)
    assert state["errors"] == [] and state["last_error"] is None
    # A rejection of an item that later changes goes away with the change.
    world.server.live["sticky.xml"] = "cap/circle.xml"
    assert world.run(spec)["created"] == 1 and world.status(spec)["errors"] == []


def test_cli_feeds_run(world, tmp_path):
    config = tmp_path / "feeds.toml"
    config.write_text(f'[[feeds]]\nname = "cli-cap"\nkind = "cap"\n'
                      f'url = "{world.server.base}/cap/circle.xml?noetag"\n'
                      f'interval = 600\ntlp = "amber"\nmax_alerts = 10\n')
    env = service_env(world.data, INFOSHARE_CONFIG=str(config),
                      INFOSHARE_OUTBOUND_ALLOW_HOSTS="127.0.0.1")
    out = json.loads(cli(env, "feeds", "run", "cli-cap").stdout)
    assert out == {"feed": "cli-cap", **counts(fetched=1, created=1), "error": None}


# --- the shared mapping, without a server ------------------------------------------------

def cap_xml(identifier: str, msg_type: str = "Alert", sent: str = "2024-05-01T10:00:00-05:00",
            references: str = "", info: str | None = None) -> bytes:
    info = info if info is not None else (
        "<info><category>Infra</category><event>Outage</event><urgency>Expected</urgency>"
        "<severity>Bogus</severity><certainty>Likely</certainty></info>")
    refs = f"<references>{references}</references>" if references else ""
    return (f'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>{identifier}'
            f"</identifier><sender>s@example.gov</sender><sent>{sent}</sent><status>Actual"
            f"</status><msgType>{msg_type}</msgType><scope>Public</scope>{refs}{info}"
            "</alert>").encode()


def collect(world, documents: list[bytes], cursor: dict | None = None):
    from feeds.base import Context

    ctx = Context(world.spec("unit", "cap", "/unused"), cursor or {}, get=None)
    alerts = [cap_parse.alert_from_xml(cap_parse.parse_xml(d)) for d in documents]
    return cap_parse.collect_alerts(ctx, alerts, [], len(alerts))


@pytest.mark.parametrize(("info", "message"), [
    ("<info><event>x</event><area><areaDesc>A</areaDesc><polygon>-102.0,37.0 -102.0,40.0 "
     "-94.6,40.0 -102.0,37.0</polygon></area></info>", "latitude must be between -90 and 90"),
    ("<info><event>x</event><effective>2024-05-01T10:00:00Z</effective>"
     "<expires>2024-05-01T09:00:00Z</expires></info>", "must not be before effective"),
    ("<info><event>x</event><expires>2024-05-01T19:00:00</expires></info>",
     "has no time zone offset"),
    ("", "has no <info>"),
])
def test_a_bad_alert_is_an_item_error_naming_it(world, info, message):
    fetched = collect(world, [cap_xml("BAD-1", info=info), cap_xml("GOOD-1")])
    assert [n.source_id for n in fetched.items] == ["GOOD-1"]
    [error] = fetched.errors
    assert error.item == "BAD-1" and message in error.message


def test_defaults_for_unknown_values_and_missing_identifier(world):
    [notice] = collect(world, [cap_xml("GOOD-2")]).items
    assert (notice.kind, notice.category, notice.severity) == ("technological", "Infra",
                                                               "Unknown")
    assert notice.all_sectors and notice.sectors == () and notice.tlp == "clear"
    with pytest.raises(cap_parse.BadAlert, match="no identifier"):
        cap_parse.alert_from_xml(cap_parse.parse_xml(cap_xml("")))
    circle = "<info><area><areaDesc>A</areaDesc><circle>38,-97</circle></area></info>"
    with pytest.raises(cap_parse.BadAlert, match="is not 'lat,lon radius_km'") as caught:
        cap_parse.alert_from_xml(cap_parse.parse_xml(cap_xml("BAD-2", info=circle)))
    assert caught.value.item == "BAD-2"


def test_a_chain_keeps_its_root_across_runs(world):
    first = collect(world, [
        cap_xml("A"), cap_xml("U1", "Update", "2024-05-01T11:00:00-05:00",
                              "s@example.gov,A,2024-05-01T10:00:00-05:00")])
    [notice] = first.items  # one chain, newest message
    assert notice.source_id == "A" and not notice.revoked
    # U2 names only U1; the cursor knows U1 belongs to A. A Cancel without <info> revokes.
    later = collect(world, [cap_xml("C", "Cancel", "2024-05-01T12:00:00-05:00",
                                    "s@example.gov,U1,2024-05-01T11:00:00-05:00", info="")],
                    first.cursor)
    [notice] = later.items
    assert (notice.source_id, notice.revoked) == ("A", True)
    again = collect(world, [cap_xml("U3", "Update", "2024-05-01T13:00:00-05:00",
                                    "s@example.gov,A,2024-05-01T10:00:00-05:00")],
                    later.cursor)
    assert again.items == [] and "cancelled already" in again.errors[0].message


def test_the_notice_row_keeps_the_sources_time(world):
    spec = world.spec("issued", "cap", "/cap/nws-empty-polygon.xml?noetag")
    world.run(spec)
    [row] = world.notices(spec)
    assert row.issued_us == cap_parse.cap_time("2024-12-10T03:12:00-06:00", "sent")
    assert row.created_us > row.issued_us  # stored today, issued in 2024
