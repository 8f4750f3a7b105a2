"""The 16 critical-infrastructure sectors and their STIX vocabulary.

Each sector owns one bit of a 16-bit mask. The store keeps an object's sectors as that mask
so the access rule is one integer AND in SQL; the bit order below is therefore part of the
on-disk format and must never change (append only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Sector:
    code: str
    title: str
    # STIX 2.1 industry-sector-ov values that describe the sector.
    industry_sectors: tuple[str, ...]


SECTORS: tuple[Sector, ...] = (
    Sector("chemical", "Chemical", ("chemical",)),
    Sector("commercial-facilities", "Commercial Facilities", ("commercial",)),
    Sector("communications", "Communications", ("communications", "telecommunications")),
    Sector("critical-manufacturing", "Critical Manufacturing", ("manufacturing",)),
    Sector("dams", "Dams", ("dams", "infrastructure")),
    Sector("defense-industrial-base", "Defense Industrial Base", ("defense",)),
    Sector("emergency-services", "Emergency Services", ("emergency-services",)),
    Sector("energy", "Energy", ("energy", "utilities")),
    Sector("financial-services", "Financial Services", ("financial-services",)),
    Sector("food-agriculture", "Food and Agriculture", ("agriculture",)),
    Sector("government-facilities", "Government Facilities", ("government",)),
    Sector("healthcare-public-health", "Healthcare and Public Health", ("healthcare",)),
    Sector("information-technology", "Information Technology", ("technology",)),
    Sector("nuclear", "Nuclear Reactors, Materials, and Waste", ("nuclear",)),
    Sector("transportation", "Transportation Systems", ("transportation",)),
    Sector("water", "Water and Wastewater Systems", ("water", "utilities")),
)

CODES: tuple[str, ...] = tuple(s.code for s in SECTORS)
BY_CODE: dict[str, Sector] = {s.code: s for s in SECTORS}
ALL_MASK = (1 << len(SECTORS)) - 1


class UnknownSector(ValueError):
    def __init__(self, code: str):
        super().__init__(f"unknown sector {code!r}; known sectors: {', '.join(CODES)}")
        self.code = code


def bit(code: str) -> int:
    try:
        return 1 << CODES.index(code)
    except ValueError:
        raise UnknownSector(code) from None


def mask(codes: Iterable[str]) -> int:
    value = 0
    for code in codes:
        value |= bit(code)
    return value


def codes(mask_value: int) -> list[str]:
    return [c for i, c in enumerate(CODES) if mask_value & (1 << i)]
