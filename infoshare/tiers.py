"""Clearance tiers, TLP 2.0 levels and compartments.

TLP levels are ranked so "may read" is one integer comparison. TLP 1.0 markings (the ones
the stix2 library predefines) are accepted on incoming objects and ranked as their TLP 2.0
counterparts: WHITE reads as CLEAR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TLP_LEVELS: tuple[str, ...] = ("clear", "green", "amber", "amber+strict", "red")
RANK: dict[str, int] = {name: i for i, name in enumerate(TLP_LEVELS)}
NAMED_RECIPIENT_LEVELS = frozenset({"amber+strict", "red"})

# TLP 2.0 marking definitions as published by OASIS (cti-stix-common-objects, tlp-2.0).
TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_MARKING_IDS: dict[str, str] = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
# TLP 1.0 marking definitions predefined by STIX 2.1.
TLP1_MARKING_IDS: dict[str, str] = {
    "clear": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",  # WHITE
    "green": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "amber": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "red": "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}
LEVEL_BY_MARKING_ID: dict[str, str] = {
    **{v: k for k, v in TLP1_MARKING_IDS.items()},
    **{v: k for k, v in TLP2_MARKING_IDS.items()},
}

DEFAULT_TIERS: dict[str, str] = {
    "public": "clear",
    "partner": "green",
    "member": "amber",
    "trusted": "red",
}


def rank(level: str) -> int:
    try:
        return RANK[level]
    except KeyError:
        raise ValueError(
            f"unknown TLP level {level!r}; known levels: {', '.join(TLP_LEVELS)}"
        ) from None


def tlp_of_markings(marking_refs: list[str]) -> str | None:
    """The most restrictive TLP among `marking_refs`, or None when none is a TLP marking."""
    levels = [LEVEL_BY_MARKING_ID[m] for m in marking_refs if m in LEVEL_BY_MARKING_ID]
    return max(levels, key=RANK.__getitem__) if levels else None


@dataclass(frozen=True)
class Tiers:
    """The configured tiers, in order from least to most cleared."""

    max_level: Mapping[str, str]

    def names(self) -> list[str]:
        return sorted(self.max_level, key=lambda t: RANK[self.max_level[t]])

    def max_rank(self, tier: str) -> int:
        if tier not in self.max_level:
            raise ValueError(f"unknown tier {tier!r}; known tiers: {', '.join(self.names())}")
        return RANK[self.max_level[tier]]

    def at_least(self, tier: str, minimum: str) -> bool:
        return self.max_rank(tier) >= self.max_rank(minimum)
