"""marshmallow schemas for the JSON that enters or leaves outside TAXII.

A bulletin is the analyst's JSON for one Notice. Every error is reported under the name of
the field it concerns (nested as list index and sub-field), so the API and the console can
show it next to that field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from . import notices, sectors, tiers, timestamps
from .geo import areas as geo_areas
from .stix import patterns

MAX_AREAS = 100  # a subscription's areas

CVE = re.compile(r"^CVE-\d{4}-\d{4,}\Z")

# The most items a bulletin's lists may hold: every item becomes signed STIX objects
# written under the store's lock, so a request's work must be bounded (README lists them).
LIST_LIMITS = {
    "indicators": 1000, "vulnerabilities": 200, "locations": 100, "mitigations": 100,
    "threat_actors": 50, "references": 100, "labels": 50, "recipients": 200,
    "compartments": 20, "polygon": 5000, "geocodes": 1000,
}


def _at_most(name: str):
    limit = LIST_LIMITS[name]
    return validate.Length(max=limit, error=f"at most {limit} items")


class Timestamp(fields.String):
    """An RFC 3339 UTC timestamp, normalised to STIX millisecond form."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return timestamps.format_stix(timestamps.parse_us(text))
        except timestamps.BadTimestamp as exc:
            raise ValidationError(str(exc)) from None


class IndicatorSchema(Schema):
    type = fields.String(validate=validate.OneOf(notices.INDICATOR_TYPES), load_default=None)
    value = fields.String(required=True, validate=validate.Length(min=1, max=4096))
    description = fields.String(load_default="", validate=validate.Length(max=2000))

    @validates_schema
    def _valid_value(self, data, **kwargs):
        kind = data.get("type") or _infer(data.get("value", ""))
        try:
            patterns.check(kind, data["value"])
        except patterns.BadIndicator as exc:
            raise ValidationError(str(exc), "value") from None

    @post_load
    def _make(self, data, **kwargs):
        value = data["value"].strip()
        return notices.IndicatorSpec(data.get("type") or patterns.infer(value), value,
                                     data.get("description", ""))


def _infer(value: str) -> str:
    try:
        return patterns.infer(value)
    except patterns.BadIndicator as exc:
        raise ValidationError(f"{exc}; give its type", "type") from None


def _point(value: list) -> None:
    if len(value) != 2:
        raise ValidationError("each polygon vertex is [latitude, longitude]")
    _latitude(value[0])
    _longitude(value[1])


def _latitude(value: float) -> None:
    if not -90 <= value <= 90:
        raise ValidationError("latitude must be between -90 and 90")


def _longitude(value: float) -> None:
    if not -180 <= value <= 180:
        raise ValidationError("longitude must be between -180 and 180")


class LocationSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=300))
    latitude = fields.Float(load_default=None, validate=_latitude, data_key="lat")
    longitude = fields.Float(load_default=None, validate=_longitude, data_key="lon")
    country = fields.String(load_default=None, validate=validate.Regexp(
        r"^[A-Z]{2}\Z", error="country is an ISO 3166-1 alpha-2 code such as US"))
    administrative_area = fields.String(load_default=None)
    polygon = fields.List(fields.List(fields.Float(), validate=_point), load_default=list,
                          validate=_at_most("polygon"))
    geocodes = fields.Dict(keys=fields.String(validate=validate.Length(max=100)),
                           values=fields.String(validate=validate.Length(max=500)),
                           load_default=dict, validate=_at_most("geocodes"))
    radius_km = fields.Float(load_default=None, validate=validate.Range(
        min=0, max=20000, error="radius_km must be between 0 and 20000"))

    @validates("polygon")
    def _ring(self, value, **kwargs):
        if value and len(value) < 3:
            raise ValidationError("a polygon needs at least 3 vertices")

    @validates_schema
    def _somewhere(self, data, **kwargs):
        has_point = data.get("latitude") is not None and data.get("longitude") is not None
        if (data.get("latitude") is None) != (data.get("longitude") is None):
            raise ValidationError("give lat and lon together", "lat")
        if data.get("radius_km") is not None and not has_point:
            raise ValidationError("a radius needs the circle's centre in lat and lon",
                                  "radius_km")
        if not (has_point or data.get("country") or data.get("polygon")):
            raise ValidationError("a location needs lat and lon, a country or a polygon",
                                  "name")

    @post_load
    def _make(self, data, **kwargs):
        return notices.LocationSpec(
            name=data["name"], latitude=data.get("latitude"), longitude=data.get("longitude"),
            country=data.get("country"), administrative_area=data.get("administrative_area"),
            polygon=tuple((p[0], p[1]) for p in data.get("polygon", [])),
            geocodes=tuple(sorted(data.get("geocodes", {}).items())),
            radius_km=data.get("radius_km"))


def load_location(document: Mapping) -> notices.LocationSpec:
    """One stored location (a notice document's) back into its LocationSpec."""
    return LocationSchema().load(document)


def _sectors(value) -> None:
    if value == "all":
        return
    if not isinstance(value, list) or not value:
        raise ValidationError('give a list of sector codes, or "all"')
    unknown = [v for v in value if v not in sectors.CODES]
    if unknown:
        raise ValidationError(f"unknown sector(s) {', '.join(map(str, unknown))}; known: "
                              + ", ".join(sectors.CODES))


class BulletinSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # the console posts extra form fields; they are ignored

    title = fields.String(required=True, validate=validate.Length(min=1, max=500))
    summary = fields.String(load_default="", validate=validate.Length(max=20000))
    kind = fields.String(required=True, validate=validate.OneOf(notices.KINDS))
    tlp = fields.String(required=True, validate=validate.OneOf(tiers.TLP_LEVELS))
    sectors = fields.Raw(required=True, validate=_sectors)
    compartments = fields.List(fields.String(), load_default=list,
                               validate=_at_most("compartments"))
    recipients = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                             load_default=list, validate=_at_most("recipients"))
    severity = fields.String(load_default="Unknown", validate=validate.OneOf(notices.SEVERITIES))
    urgency = fields.String(load_default="Unknown", validate=validate.OneOf(notices.URGENCIES))
    certainty = fields.String(load_default="Unknown",
                              validate=validate.OneOf(notices.CERTAINTIES))
    category = fields.String(load_default=None, validate=validate.OneOf(notices.CAP_CATEGORIES))
    valid_from = Timestamp(load_default=None)
    valid_until = Timestamp(load_default=None)
    indicators = fields.List(fields.Nested(IndicatorSchema), load_default=list,
                             validate=_at_most("indicators"))
    vulnerabilities = fields.List(fields.String(validate=validate.Regexp(
        CVE, error="not a CVE id like CVE-2024-12345")), load_default=list,
        validate=_at_most("vulnerabilities"))
    locations = fields.List(fields.Nested(LocationSchema), load_default=list,
                            validate=_at_most("locations"))
    mitigations = fields.List(fields.String(validate=validate.Length(min=1, max=5000)),
                              load_default=list, validate=_at_most("mitigations"))
    threat_actors = fields.List(fields.String(validate=validate.Length(min=1, max=300)),
                                load_default=list, validate=_at_most("threat_actors"))
    references = fields.List(fields.Url(schemes={"http", "https"},
                                        validate=validate.Length(max=2000)),
                             load_default=list, validate=_at_most("references"))
    labels = fields.List(fields.String(validate=validate.Regexp(
        r"^[\w:.\-]{1,100}\Z", error="labels are words (letters, digits, - _ : .)")),
        load_default=list, validate=_at_most("labels"))
    source_id = fields.String(load_default=None, validate=validate.Length(min=1, max=500))

    @validates_schema
    def _audience(self, data, **kwargs):
        tlp, recipients = data.get("tlp"), data.get("recipients", [])
        if tlp == "amber+strict" and not recipients:
            raise ValidationError("TLP:AMBER+STRICT needs the recipient organisations",
                                  "recipients")
        if tlp == "red" and not recipients:
            raise ValidationError("TLP:RED needs the recipient principals", "recipients")
        start, end = data.get("valid_from"), data.get("valid_until")
        if start and end and timestamps.parse_us(end) <= timestamps.parse_us(start):
            raise ValidationError("valid_until must be after valid_from", "valid_until")


def load_bulletin(data: object, known_compartments: Iterable[str],
                  source: str = "bulletin") -> notices.Notice:
    """A Notice from bulletin JSON; raises ValidationError with per-field messages."""
    if not isinstance(data, Mapping):
        raise ValidationError({"_schema": ["a bulletin is a JSON object"]})
    loaded = BulletinSchema().load(data)
    unknown = sorted(set(loaded["compartments"]) - set(known_compartments))
    if unknown:
        raise ValidationError({"compartments": [
            f"unknown compartment(s) {', '.join(unknown)}; known: "
            + ", ".join(sorted(known_compartments))]})
    all_sectors = loaded["sectors"] == "all"
    return notices.Notice(
        title=loaded["title"], summary=loaded["summary"], kind=loaded["kind"],
        tlp=loaded["tlp"], sectors=() if all_sectors else tuple(dict.fromkeys(loaded["sectors"])),
        all_sectors=all_sectors, compartments=tuple(sorted(set(loaded["compartments"]))),
        recipients=tuple(dict.fromkeys(loaded["recipients"])),
        severity=loaded["severity"], urgency=loaded["urgency"], certainty=loaded["certainty"],
        category=loaded["category"], valid_from=loaded["valid_from"],
        valid_until=loaded["valid_until"], indicators=tuple(loaded["indicators"]),
        vulnerabilities=tuple(dict.fromkeys(loaded["vulnerabilities"])),
        locations=tuple(loaded["locations"]), mitigations=tuple(loaded["mitigations"]),
        threat_actors=tuple(dict.fromkeys(loaded["threat_actors"])),
        references=tuple(loaded["references"]), labels=tuple(loaded["labels"]),
        source=source, source_id=loaded["source_id"],
    )


def dump_notice(notice: notices.Notice) -> dict:
    """Bulletin JSON for a Notice: what load_bulletin accepts back."""
    return {
        "title": notice.title, "summary": notice.summary, "kind": notice.kind,
        "tlp": notice.tlp, "sectors": "all" if notice.all_sectors else list(notice.sectors),
        "compartments": list(notice.compartments), "recipients": list(notice.recipients),
        "severity": notice.severity, "urgency": notice.urgency, "certainty": notice.certainty,
        "category": notice.category, "valid_from": notice.valid_from,
        "valid_until": notice.valid_until,
        "indicators": [{"type": i.type, "value": i.value, "description": i.description}
                       for i in notice.indicators],
        "vulnerabilities": list(notice.vulnerabilities),
        "locations": [_dump_location(loc) for loc in notice.locations],
        "mitigations": list(notice.mitigations), "threat_actors": list(notice.threat_actors),
        "references": list(notice.references), "labels": list(notice.labels),
        "source_id": notice.source_id,
    }


def _dump_location(loc: notices.LocationSpec) -> dict:
    out = {"name": loc.name, "lat": loc.latitude, "lon": loc.longitude, "country": loc.country,
           "administrative_area": loc.administrative_area,
           "polygon": [list(p) for p in loc.polygon], "geocodes": dict(loc.geocodes),
           "radius_km": loc.radius_km}
    return {k: v for k, v in out.items() if v not in (None, [], {})}


class SubscriptionSchema(Schema):
    """Flat subscription JSON; every filter optional (absent = no filtering on it)."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    sectors = fields.List(fields.String(validate=validate.OneOf(sectors.CODES)))
    types = fields.List(fields.String(validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9-]{0,62}\Z", error="not a STIX type name")))
    kinds = fields.List(fields.String(validate=validate.OneOf(notices.KINDS)))
    min_severity = fields.String(validate=validate.OneOf(notices.SEVERITIES[:-1]),
                                 allow_none=True)
    labels = fields.List(fields.String(validate=validate.Length(min=1, max=200)))
    max_tlp = fields.String(validate=validate.OneOf(tiers.TLP_LEVELS), allow_none=True)
    webhook_url = fields.String(validate=validate.Length(max=2000), allow_none=True)
    webhook_secret = fields.String(validate=validate.Length(min=16, max=500), allow_none=True)
    paused = fields.Boolean()
    # Where: {"state": "TX"}, {"county": "48167"}, {"point": [lat, lon], "radius_km": 25},
    # {"geojson": Polygon or MultiPolygon}. None or [] matches everywhere.
    areas = fields.List(fields.Raw(), allow_none=True,
                        validate=validate.Length(max=MAX_AREAS, error=f"at most {MAX_AREAS} areas"))
    include_unlocated = fields.Boolean()

    @validates("areas")
    def _areas(self, value, **kwargs):
        errors = {}
        for index, item in enumerate(value or []):
            try:
                geo_areas.subscription_area(item)
            except geo_areas.BadArea as exc:
                errors[index] = [str(exc)]
        if errors:
            raise ValidationError(errors)

    @validates_schema
    def _secret_with_url(self, data, partial=False, **kwargs):
        if data.get("webhook_url") and not data.get("webhook_secret") and not partial:
            raise ValidationError("a webhook needs a webhook_secret (16+ characters) to sign "
                                  "its deliveries", "webhook_secret")


def subscription_columns(data: Mapping) -> dict:
    """Store columns from loaded subscription JSON (only the keys present)."""
    from .notices import SEVERITY_RANK

    columns: dict = {}
    if "name" in data:
        columns["name"] = data["name"]
    if "sectors" in data:
        columns["sector_mask"] = sectors.mask(data["sectors"])
    if "kinds" in data:
        columns["kinds_mask"] = sum(1 << notices.KINDS.index(k) for k in set(data["kinds"]))
    if "min_severity" in data:
        columns["min_severity"] = SEVERITY_RANK[data["min_severity"]] if data[
            "min_severity"] else 0
    if "max_tlp" in data:
        columns["max_tlp"] = tiers.RANK[data["max_tlp"]] if data["max_tlp"] else 4
    for key in ("types", "labels"):
        if key in data:
            columns[key] = sorted(set(data[key]))
    for key in ("webhook_url", "webhook_secret", "paused", "include_unlocated"):
        if key in data:
            columns[key] = data[key]
    if "areas" in data:
        columns.update(_area_columns(data["areas"] or []))
    return columns


def _area_columns(items: list) -> dict:
    """The areas as given (echoed back), and their bounding box for routing's first cut."""
    if not items:
        return {"areas": [], "has_areas": False, "min_lon": None, "min_lat": None,
                "max_lon": None, "max_lat": None}
    min_lon, min_lat, max_lon, max_lat = geo_areas.subscription_place(items).bounds
    return {"areas": list(items), "has_areas": True, "min_lon": min_lon, "min_lat": min_lat,
            "max_lon": max_lon, "max_lat": max_lat}


def dump_subscription(row) -> dict:
    from .notices import SEVERITY_RANK

    severity = {v: k for k, v in SEVERITY_RANK.items()}.get(row.min_severity)
    return {
        "id": row.id, "collection_id": row.collection_id, "name": row.name,
        "sectors": sectors.codes(row.sector_mask), "types": row.types or [],
        "kinds": [k for i, k in enumerate(notices.KINDS) if row.kinds_mask & (1 << i)],
        "min_severity": severity if row.min_severity else None,
        "labels": row.labels or [], "max_tlp": tiers.TLP_LEVELS[row.max_tlp],
        "webhook_url": row.webhook_url, "has_webhook_secret": bool(row.webhook_secret),
        "paused": row.paused, "areas": row.areas or [],
        "include_unlocated": row.include_unlocated,
        "created": timestamps.format_us(row.created_us),
    }
