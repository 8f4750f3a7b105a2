"""Where: the gazetteer, geocodes, areas, and subscriptions routed by place on a live server.

A Texas water utility subscribed to Texas gets Texas's alerts and not Alaska's.
"""

from __future__ import annotations

import uuid

import pytest
import requests
from shapely.geometry import Point

from infoshare.geo import areas, gazetteer, geocodes
from infoshare.notices import LocationSpec

from .live import LiveServer, service_env

TAXII = "application/taxii+json;version=2.1"
# Travis County, Texas (Austin), as a CAP polygon (lat, lon), and a point in Anchorage.
AUSTIN = [[30.20, -97.90], [30.45, -97.90], [30.45, -97.60], [30.20, -97.60]]
ANCHORAGE = [61.2, -149.9]


def test_the_gazetteer_knows_states_and_counties_by_code():
    atlas = gazetteer.load()
    assert len(atlas.states) == 56 and len(atlas.counties) > 3200
    assert atlas.state("TX").name == "Texas" and atlas.state("48").postal == "TX"
    travis = atlas.county("48453")
    assert travis.name == "Travis County, Texas"
    lat, lon = travis.point
    assert travis.shape.contains(Point(lon, lat))
    assert atlas.county("22071").name == "Orleans Parish, Louisiana"


@pytest.mark.parametrize(("name", "value", "fips"), [
    ("SAME", "048453", "48453"), ("FIPS6", "048453", "48453"), ("UGC", "TXC453", "48453"),
    ("UGC", "TXZ192", None), ("SAME", "48453", None), ("EMMA_ID", "DE001", None),
])
def test_geocodes_name_counties(name, value, fips):
    assert geocodes.county_fips(name, value) == fips


def test_a_circle_covers_its_radius_on_the_sphere():
    near_pole = areas.circle(70.0, 25.0, 100)  # longitude degrees are short up north
    assert near_pole.contains(Point(26.5, 70.0)) and not near_pole.contains(Point(28.5, 70.0))
    assert areas.circle(30.27, -97.74, 25).contains(Point(-97.74, 30.27))


def test_a_notice_is_where_its_locations_say():
    place = areas.notice_place([LocationSpec(name="Potter", geocodes=(("SAME", "048375"),))])
    assert place.intersects(areas.subscription_place([{"state": "TX"}]))
    assert not place.intersects(areas.subscription_place([{"state": "AK"}]))
    assert areas.notice_place([LocationSpec(name="US", country="US")]) is None


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(service_env(tmp_path_factory.mktemp("geo")), workers=1)
    server.keys = {name: server.add_principal(name, *args)["api_key"] for name, args in {
        "analyst": ["--org", "NWS", "--tier", "trusted", "--all-sectors", "--role",
                    "publisher"],
        "austin": ["--org", "Austin Water", "--tier", "member", "--sector", "water"],
    }.items()}
    yield server
    server.stop()


def api(live, method: str, path: str, who: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{live.base}/api/v1/{path}", timeout=30, headers={
        "Authorization": f"Bearer {live.keys[who]}"}, **kwargs)


def subscribe(live, name: str, **fields) -> dict:
    response = api(live, "POST", "subscriptions", "austin", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def reports(live, subscription: dict) -> set[str]:
    response = requests.get(
        f"{live.api_root}collections/{subscription['collection_id']}/objects/", timeout=30,
        headers={"Accept": TAXII, "Authorization": f"Bearer {live.keys['austin']}"})
    assert response.status_code == 200, response.text
    return {o["name"] for o in response.json().get("objects", []) if o["type"] == "report"}


def hazard(live, title: str, locations: list[dict]) -> None:
    response = api(live, "POST", "bulletins", "analyst", json={
        "title": title, "kind": "natural", "tlp": "green", "sectors": ["water"],
        "category": "Met", "locations": locations, "source_id": f"geo-{uuid.uuid4()}"})
    assert response.status_code == 201, response.text


def test_subscriptions_route_by_place(live):
    texas = subscribe(live, "Texas", areas=[{"state": "TX"}], include_unlocated=False)
    assert texas["areas"] == [{"state": "TX"}] and texas["include_unlocated"] is False
    travis = subscribe(live, "Travis", areas=[{"county": "48453"}])
    near = subscribe(live, "25 km around the plant",
                     areas=[{"point": [30.27, -97.74], "radius_km": 25}])
    drawn = subscribe(live, "Drawn", areas=[{"geojson": {"type": "Polygon", "coordinates": [
        [[-98.0, 30.0], [-97.5, 30.0], [-97.5, 30.6], [-98.0, 30.6], [-98.0, 30.0]]]}}])
    everywhere = subscribe(live, "Everywhere")
    hazard(live, "Flash flood in Austin", [{"name": "Austin", "polygon": AUSTIN}])
    hazard(live, "Ice in Anchorage", [{"name": "Anchorage", "lat": ANCHORAGE[0],
                                       "lon": ANCHORAGE[1]}])
    hazard(live, "Storm over Potter County", [{"name": "Potter", "country": "US",
                                               "geocodes": {"SAME": "048375"}}])
    hazard(live, "Nationwide advisory", [{"name": "United States", "country": "US"}])
    assert reports(live, texas) == {"Flash flood in Austin", "Storm over Potter County"}
    assert reports(live, travis) == {"Flash flood in Austin", "Nationwide advisory"}
    assert reports(live, near) == {"Flash flood in Austin", "Nationwide advisory"}
    assert reports(live, drawn) == {"Flash flood in Austin", "Nationwide advisory"}
    assert reports(live, everywhere) == {"Flash flood in Austin", "Ice in Anchorage",
                                         "Storm over Potter County", "Nationwide advisory"}


@pytest.mark.parametrize("item", [
    {"state": "XX"}, {"county": "99999"}, {"county": 48453}, {"point": [91, 0]},
    {"point": [30, -97], "radius_km": -1}, {"point": [30, -97], "radius_km": 1e9},
    {"geojson": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1],
                                                     [0, 0]]]}},
    {"geojson": {"type": "Point", "coordinates": [0, 0]}}, {"state": "TX", "county": "48453"},
    "TX", {"planet": "Mars"},
])
def test_a_bad_area_is_a_400_naming_areas(live, item):
    response = api(live, "POST", "subscriptions", "austin", json={"name": "bad", "areas": [
        {"state": "TX"}, item]})
    assert response.status_code == 400, response.text
    assert "areas" in response.text and "1" in response.json()["fields"]["areas"], \
        response.text
