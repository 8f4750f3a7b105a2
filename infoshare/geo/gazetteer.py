"""US states and counties by FIPS code, with their boundaries, from the Census Bureau's
cartographic boundaries as us-atlas ships them (data/README.md). Loaded once, on first use.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry.base import BaseGeometry
from shapely.validation import make_valid

from . import topojson

ATLAS = Path(__file__).parent / "data" / "us-atlas-counties-10m.json"

# FIPS state code -> USPS code, for the 50 states, DC and the territories the atlas holds.
POSTAL = {
    "01": "AL", "02": "AK", "04": "AZ", "05": "AR", "06": "CA", "08": "CO", "09": "CT",
    "10": "DE", "11": "DC", "12": "FL", "13": "GA", "15": "HI", "16": "ID", "17": "IL",
    "18": "IN", "19": "IA", "20": "KS", "21": "KY", "22": "LA", "23": "ME", "24": "MD",
    "25": "MA", "26": "MI", "27": "MN", "28": "MS", "29": "MO", "30": "MT", "31": "NE",
    "32": "NV", "33": "NH", "34": "NJ", "35": "NM", "36": "NY", "37": "NC", "38": "ND",
    "39": "OH", "40": "OK", "41": "OR", "42": "PA", "44": "RI", "45": "SC", "46": "SD",
    "47": "TN", "48": "TX", "49": "UT", "50": "VT", "51": "VA", "53": "WA", "54": "WV",
    "55": "WI", "56": "WY", "60": "AS", "66": "GU", "69": "MP", "72": "PR", "78": "VI",
}
FIPS_OF = {postal: fips for fips, postal in POSTAL.items()}


@dataclass(frozen=True)
class Place:
    fips: str  # 2 digits for a state, 5 for a county
    name: str  # "Texas"; "Potter County, Texas"
    postal: str  # the state's USPS code
    shape: BaseGeometry  # lon, lat

    @property
    def point(self) -> tuple[float, float]:
        """(lat, lon) of a point inside the place (not the centroid, which may lie out)."""
        inside = self.shape.representative_point()
        return (round(inside.y, 6), round(inside.x, 6))


@dataclass(frozen=True)
class Gazetteer:
    states: dict[str, Place]  # by FIPS
    counties: dict[str, Place]  # by 5-digit FIPS

    def state(self, code: str) -> Place | None:
        """By USPS code (TX) or FIPS (48)."""
        return self.states.get(FIPS_OF.get(code.upper(), code))

    def county(self, fips: str) -> Place | None:
        return self.counties.get(fips)


@functools.cache
def load() -> Gazetteer:
    topology = json.loads(ATLAS.read_text())
    arcs = topojson.decode_arcs(topology)
    states: dict[str, Place] = {}
    for obj in topology["objects"]["states"]["geometries"]:
        shape = topojson.geometry(obj, arcs)
        if shape is not None and obj["id"] in POSTAL:
            states[obj["id"]] = Place(obj["id"], obj["properties"]["name"], POSTAL[obj["id"]],
                                      _valid(shape))
    counties: dict[str, Place] = {}
    for obj in topology["objects"]["counties"]["geometries"]:
        shape = topojson.geometry(obj, arcs)
        state = states.get(obj["id"][:2])
        if shape is not None and state is not None:
            name = f"{obj['properties']['name']}{_suffix(obj['id'])}, {state.name}"
            counties[obj["id"]] = Place(obj["id"], name, state.postal, _valid(shape))
    return Gazetteer(states, counties)


def _valid(shape: BaseGeometry) -> BaseGeometry:
    return shape if shape.is_valid else make_valid(shape)


def _suffix(fips: str) -> str:
    """What the Census calls a county-equivalent: Louisiana's parishes, Virginia's
    independent cities; Alaska's boroughs and the territories' units carry their names."""
    state, county = fips[:2], fips[2:]
    if state == "22":
        return " Parish"
    if state == "51" and county >= "500":
        return " city"
    if state in ("02", "60", "66", "69", "72", "78"):
        return ""
    return " County"
