"""Notice: the single internal shape of a threat or hazard notice, whatever its source.

Bulletins (API, console, CLI) and feed adapters all produce Notices; stix.convert turns a
Notice into STIX. Values here are already validated (schemas.py checks outside input), so
the converter can trust them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("cyber", "physical", "natural", "technological", "health")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
CAP_CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
                  "Transport", "Infra", "CBRNE", "Other")
INDICATOR_TYPES = ("ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr",
                   "file:md5", "file:sha1", "file:sha256", "file:sha512", "stix")
# Severity order, most severe first (CAP 1.2); used for "minimum severity" filters.
SEVERITY_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES[:-1]), start=1)} | {
    "Unknown": 0}


@dataclass(frozen=True)
class IndicatorSpec:
    type: str  # one of INDICATOR_TYPES; "stix" means `value` is a raw STIX pattern
    value: str
    description: str = ""


@dataclass(frozen=True)
class LocationSpec:
    name: str
    latitude: float | None = None
    longitude: float | None = None
    country: str | None = None
    administrative_area: str | None = None
    # Polygon vertices as (lat, lon); closed or not. The point is its centroid.
    polygon: tuple[tuple[float, float], ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()  # (name, value), e.g. ("SAME", "006037")
    radius_km: float | None = None  # a circle: (latitude, longitude) is its centre


@dataclass(frozen=True)
class Notice:
    title: str
    summary: str
    kind: str
    tlp: str
    sectors: tuple[str, ...]  # sector codes; empty with all_sectors=True means every sector
    all_sectors: bool = False
    compartments: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()  # org names (AMBER+STRICT) or principal names (RED)
    severity: str = "Unknown"
    urgency: str = "Unknown"
    certainty: str = "Unknown"
    category: str | None = None  # CAP category, for hazards
    valid_from: str | None = None  # STIX timestamps
    valid_until: str | None = None
    indicators: tuple[IndicatorSpec, ...] = ()
    vulnerabilities: tuple[str, ...] = ()  # CVE ids
    locations: tuple[LocationSpec, ...] = ()
    mitigations: tuple[str, ...] = ()
    threat_actors: tuple[str, ...] = ()
    references: tuple[str, ...] = ()  # URLs
    labels: tuple[str, ...] = ()
    source: str = "bulletin"  # who issued it: "bulletin", or a feed name
    # The organisation a bulletin belongs to ("" for the service's own: feeds, the CLI).
    # source_ids are per organisation, and so are the STIX ids made from them.
    org: str = ""
    source_id: str | None = None  # the source's own id: same id, same STIX ids
    revoked: bool = False
    # When the source issued it (CAP sent, KEV dateAdded, RSS pubDate): the report's
    # `published`. None: when the service first published it.
    published: str | None = None
    # Facts a source states beyond a bulletin's fields, carried in the hazard extension
    # (CAP: event, eventCode, senderName, onset, parameters, responseType, instruction, web).
    extra: dict = field(default_factory=dict, compare=False)
