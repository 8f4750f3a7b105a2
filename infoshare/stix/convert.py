"""Notice -> STIX 2.1 objects (unsigned dicts).

Objects are built as plain dicts in the shape the STIX 2.1 specification gives, not through
the stix2 library: building each object through the library costs about a millisecond, ten
times the cost of signing it, and its serialiser would have to be bypassed anyway to sign
exact bytes. The tests run every output through stix2-validator instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import sectors, tiers, timestamps
from ..notices import IndicatorSpec, LocationSpec, Notice
from . import definitions, markings, notes, patterns
from .ids import IdSpace


@dataclass(frozen=True)
class Stamp:
    """When: `now` is the new version's modified; `created` maps ids already published to
    their first created, which later versions must keep."""

    now: str
    created: dict[str, str]

    def created_of(self, object_id: str) -> str:
        return self.created.get(object_id, self.now)


def notice_key(notice: Notice, space: IdSpace) -> tuple[str, ...]:
    if not notice.source_id:
        raise ValueError("a notice needs a source_id before conversion (publish assigns one)")
    return space.notice_parts(notice.source, notice.org, notice.source_id)


def report_id(notice: Notice, space: IdSpace) -> str:
    """The id _Builder.make gives the report (role "report", key "report")."""
    return space.stix_id("report", *notice_key(notice, space), "report", "report")


class _Builder:
    def __init__(self, notice: Notice, stamp: Stamp, ids: IdSpace, space: IdSpace):
        self.notice, self.stamp, self.ids, self.space = notice, stamp, ids, space
        self.key = notice_key(notice, space)
        refs = [tiers.TLP2_MARKING_IDS[notice.tlp]]
        refs += [markings.compartment_marking_id(c, ids) for c in notice.compartments]
        self.marking_refs = refs
        self.objects: list[dict] = []
        self.made: dict[str, dict] = {}
        self.first_published = stamp.created_of(report_id(notice, space))

    def id_of(self, object_type: str, role: str, key: str) -> str:
        return self.space.stix_id(object_type, *self.key, role, key)

    def make(self, object_type: str, role: str, key: str, **properties) -> dict:
        object_id = self.id_of(object_type, role, key)
        if object_id in self.made:  # the same thing listed twice is one object
            return self.made[object_id]
        obj = {
            "type": object_type, "spec_version": "2.1", "id": object_id,
            "created": self.stamp.created_of(object_id), "modified": self.stamp.now,
            "created_by_ref": self.ids.identity_id(),
            **{k: v for k, v in properties.items() if v not in (None, [], "", {})},
            "object_marking_refs": self.marking_refs,
        }
        if self.notice.revoked:
            obj["revoked"] = True
        self.objects.append(obj)
        self.made[object_id] = obj
        return obj

    def relate(self, source: dict, relationship: str, target: dict | str) -> None:
        target_id = target if isinstance(target, str) else target["id"]
        self.make("relationship", "relationship", f"{source['id']}|{relationship}|{target_id}",
                  relationship_type=relationship, source_ref=source["id"], target_ref=target_id)


def convert(notice: Notice, stamp: Stamp, ids: IdSpace, space: IdSpace | None = None,
            shared: Mapping[str, str] | None = None) -> list[dict]:
    """Every object of the notice, the report first.

    `ids` is the installation's id space (its identity, the sector identities); `space`
    names the notice's own objects, the same unless the notice predates it (ids.LEGACY).
    `shared` maps CVEs to the public vulnerability object the notice references instead
    of minting its own (store/cves.py), unless that object is the notice's own.
    """
    b = _Builder(notice, stamp, ids, space or ids)
    shared = {cve: object_id for cve, object_id in (shared or {}).items()
              if object_id != b.id_of("vulnerability", "vulnerability", cve)}
    report = b.make("report", "report", "report", name=notice.title)  # placeholder, refs below
    indicators = [_indicator(b, spec) for spec in notice.indicators]
    vulnerabilities = [shared.get(cve) or _vulnerability(b, cve)
                       for cve in notice.vulnerabilities]
    for spec in notice.locations:
        _location(b, spec)
    mitigations = [b.make("course-of-action", "mitigation", text, name=_title(text),
                          description=text) for text in notice.mitigations]
    actors = [b.make("threat-actor", "threat-actor", name, name=name,
                     threat_actor_types=["unknown"]) for name in notice.threat_actors]
    sector_refs = [ids.sector_identity_id(code) for code in _sector_codes(notice)]
    _relate(b, actors, indicators, vulnerabilities, mitigations, sector_refs)
    facts = _hazard(notice)
    if is_hazard(notice):
        b.make("note", "note", "hazard", abstract=notes.abstract(notice.title, facts),
               content=notes.content(facts), object_refs=[report["id"]])
    refs = [o["id"] for o in b.objects if o is not report] + sector_refs
    refs += [v for v in vulnerabilities if isinstance(v, str)]
    report.update(_report_properties(notice, notice.published or b.first_published, refs,
                                     facts))
    return b.objects


def is_hazard(notice: Notice) -> bool:
    """Hazards (everything but cyber) state their CAP facts in standard STIX too."""
    return notice.kind != "cyber"


def _vulnerability(b: _Builder, cve: str) -> dict:
    """A CVE; with what a catalog states of it (Notice.extra["kev"][cve]): its description,
    its CWEs as references, and the catalog's facts in the KEV extension, so a changed
    catalog entry is a new version of the vulnerability itself."""
    facts = dict(b.notice.extra.get("kev", {}).get(cve, {}))
    description = facts.pop("description", None)
    references = [{"source_name": "cve", "external_id": cve}]
    references += [{"source_name": "cwe", "external_id": cwe} for cwe in facts.pop("cwes", [])]
    facts = {k: v for k, v in facts.items() if v not in (None, "", [])}
    extensions = ({definitions.KEV_EXTENSION_ID: {"extension_type": "property-extension",
                                                  **facts}} if facts else {})
    return b.make("vulnerability", "vulnerability", cve, name=cve, description=description,
                  external_references=references, extensions=extensions)


def _relate(b: _Builder, actors, indicators, vulnerabilities, mitigations,
            sector_refs) -> None:
    """Relationships a bulletin states without doubt, never a cross product of its lists.

    A bulletin does not say which indicator goes with which of several actors, or which
    mitigation answers which of several CVEs; pairing every one with every other made
    tens of thousands of false claims (and signed objects) from a few kilobytes. With one
    threat actor, the indicators indicate it and it targets the sectors and the CVEs; with
    one CVE, the mitigations mitigate it. Otherwise the report alone groups them.
    """
    if len(actors) == 1:
        [actor] = actors
        for target in [*sector_refs, *vulnerabilities]:
            b.relate(actor, "targets", target)
        for indicator in indicators:
            b.relate(indicator, "indicates", actor)
    if len(vulnerabilities) == 1:
        for mitigation in mitigations:
            b.relate(mitigation, "mitigates", vulnerabilities[0])


def _sector_codes(notice: Notice) -> list[str]:
    return list(sectors.CODES) if notice.all_sectors else list(notice.sectors)


def _title(text: str, limit: int = 80) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= limit else first[: limit - 1] + "\u2026"


def _report_properties(notice: Notice, first_published: str, refs: list[str],
                       facts: dict) -> dict:
    refs_out = [{"source_name": notice.source, "external_id": notice.source_id}]
    refs_out += [{"source_name": "reference", "url": url} for url in notice.references]
    cap_labels = notes.labels(facts) if is_hazard(notice) else []
    properties = {
        "description": notice.summary or None,
        "published": first_published,
        "report_types": ["threat-report"],
        "object_refs": refs,
        "labels": sorted({notice.kind, *notice.labels, *cap_labels}),
        "external_references": refs_out,
        "extensions": {definitions.HAZARD_EXTENSION_ID: facts},
    }
    return {k: v for k, v in properties.items() if v not in (None, [], "")}


# The source's own facts (Notice.extra["hazard"]) the extension carries, in this order.
SOURCE_FACTS = ("event", "event_codes", "sender_name", "onset", "response_types",
                "instruction", "web", "parameters")


def _hazard(notice: Notice) -> dict:
    source = notice.extra.get("hazard", {})
    facts = {
        "extension_type": "property-extension", "kind": notice.kind,
        "category": notice.category, "urgency": notice.urgency, "severity": notice.severity,
        "certainty": notice.certainty, "effective": notice.valid_from,
        "expires": notice.valid_until,
        **{key: source.get(key) for key in SOURCE_FACTS},
        "areas": [_area(spec) for spec in notice.locations if _is_area(spec)],
    }
    return {k: v for k, v in facts.items() if v not in (None, [], "")}


def _is_area(spec: LocationSpec) -> bool:
    return bool(spec.polygon or spec.geocodes or spec.radius_km is not None)


def _area(spec: LocationSpec) -> dict:
    area: dict = {"name": spec.name}
    if spec.polygon:
        area["polygon"] = [[lat, lon] for lat, lon in spec.polygon]
    if spec.radius_km is not None:
        area["circle"] = {"center": [spec.latitude, spec.longitude],
                          "radius_km": spec.radius_km}
    if spec.geocodes:
        area["geocodes"] = [{"name": n, "value": v} for n, v in spec.geocodes]
    return area


def _indicator(b: _Builder, spec: IndicatorSpec) -> dict:
    notice = b.notice
    return b.make(
        "indicator", "indicator", f"{spec.type}|{spec.value}",
        name=spec.value if spec.type != "stix" else f"Pattern from {notice.title}",
        description=spec.description or f"Indicator from: {notice.title}",
        pattern=patterns.pattern(spec.type, spec.value), pattern_type="stix",
        valid_from=notice.valid_from or _default_valid_from(b.first_published,
                                                            notice.valid_until),
        valid_until=notice.valid_until,
        indicator_types=["malicious-activity"] if notice.kind == "cyber" else ["unknown"],
    )


def _default_valid_from(first_published: str, valid_until: str | None) -> str:
    """First publication, unless the notice already expired by then: STIX needs
    valid_until after valid_from, so the indicator is then valid for its last second."""
    if valid_until and timestamps.parse_us(valid_until) <= timestamps.parse_us(first_published):
        return timestamps.format_stix(timestamps.parse_us(valid_until) - 1_000_000)
    return first_published


def _location(b: _Builder, spec: LocationSpec) -> dict:
    latitude, longitude = spec.latitude, spec.longitude
    if spec.polygon and latitude is None:
        latitude, longitude = centroid(spec.polygon)
    hazard = {}
    if _is_area(spec):
        hazard = {definitions.HAZARD_EXTENSION_ID: {"extension_type": "property-extension",
                                                    "areas": [_area(spec)]}}
    precision = spec.radius_km * 1000 if spec.radius_km is not None else None  # metres
    return b.make("location", "location", spec.name, name=spec.name,
                  latitude=_round(latitude), longitude=_round(longitude), precision=precision,
                  country=spec.country, administrative_area=spec.administrative_area,
                  extensions=hazard)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def centroid(polygon: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """Area centroid of a (lat, lon) ring; the vertex mean when the ring has no area."""
    ring = list(polygon)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring = ring[:-1]
    area = cx = cy = 0.0
    for (y0, x0), (y1, x1) in zip(ring, ring[1:] + ring[:1], strict=True):
        cross = x0 * y1 - x1 * y0
        area += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if abs(area) < 1e-12:
        return (sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring))
    return (cy / (3 * area), cx / (3 * area))
