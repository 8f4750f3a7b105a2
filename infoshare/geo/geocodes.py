"""CAP geocodes -> US counties.

SAME codes (NOAA Weather Radio, EAS) are PSSCCC: a subdivision digit, then the county's
5-digit FIPS. FIPS6 is the same layout. UGC county codes are SSCNNN (TXC201: Texas, county
201). UGC zone codes (TXZ012) are forecast zones, whose outlines the Census does not
publish: they resolve to nothing here, and an area with only zones stays unplaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .gazetteer import FIPS_OF, Gazetteer, Place

_SAME = re.compile(r"^\d(\d{5})$")
_UGC_COUNTY = re.compile(r"^([A-Z]{2})C(\d{3})$")


def county_fips(name: str, value: str) -> str | None:
    """The 5-digit FIPS a geocode names, or None."""
    value = value.strip().upper()
    if name in ("SAME", "FIPS6") and (match := _SAME.match(value)):
        return match.group(1)
    if name == "FIPS" and re.fullmatch(r"\d{5}", value):
        return value
    if name == "UGC" and (match := _UGC_COUNTY.match(value)) and match.group(1) in FIPS_OF:
        return FIPS_OF[match.group(1)] + match.group(2)
    return None


def counties(geocodes: Iterable[tuple[str, str]], gazetteer: Gazetteer) -> list[Place]:
    """The counties an area's geocodes name, each once, in order. A value may list
    several codes separated by spaces (how a bulletin's geocode map holds repeats)."""
    found: dict[str, Place] = {}
    for name, values in geocodes:
        for value in values.split():
            fips = county_fips(name, value)
            place = gazetteer.county(fips) if fips else None
            if place is not None:
                found.setdefault(fips, place)
    return list(found.values())
