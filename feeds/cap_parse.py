"""CAP 1.2 alerts -> Notices: the one mapping shared by the cap and nws adapters.

Both sources are CAP underneath (NWS serves CAP fields as GeoJSON), so each adapter only
reads its format into an `Alert`; everything after that lives here, once:

- only the statuses the feed accepts are published (default Actual); others are counted
  as fetched and go nowhere;
- an Update or Cancel takes the source_id of the original alert (the earliest alert its
  <references> name, or the chain's root already seen), so it becomes a new version of
  the same STIX objects, and a Cancel revokes them;
- the newest message of a chain wins, within a fetch and across runs: the cursor keeps,
  per chain, the last `sent` published, so an older message seen again never overwrites
  a newer one, and nothing after a Cancel un-revokes it;
- every Notice goes through schemas.load_bulletin, so a feed can store nothing an analyst
  could not (ranges, valid_until after valid_from, lengths, URLs). A bad alert is an
  ItemError naming it; the other alerts of the fetch still go through.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, replace
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from marshmallow import ValidationError
from shapely import union_all

from infoshare import schemas, timestamps
from infoshare.geo import gazetteer
from infoshare.geo import geocodes as geo_codes
from infoshare.notices import CAP_CATEGORIES, CERTAINTIES, SEVERITIES, URGENCIES, Notice

from .base import Context, FeedError, Fetched, ItemError, validation_text

CAP_NAMESPACES = ("urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1")
MESSAGE_TYPES = ("Alert", "Update", "Cancel")  # Ack and Error carry no hazard
KIND_OF_CATEGORY = {
    "Geo": "natural", "Met": "natural", "Env": "natural", "Other": "natural",
    "Health": "health", "Security": "physical", "Safety": "physical", "Rescue": "physical",
    "Fire": "physical", "Transport": "technological", "Infra": "technological",
    "CBRNE": "technological",
}
KEEP_SECONDS = 30 * 86400  # how long the cursor remembers a chain
KEEP_CHAINS = 5000
_URL = schemas.BulletinSchema().fields["references"].inner  # the bulletin's own URL rule


class BadAlert(ValueError):
    """One alert (or one document) cannot be used; the message says why, `item` names the
    alert when its identifier is known."""

    def __init__(self, message: str, item: str = ""):
        super().__init__(message)
        self.item = item


@dataclass(frozen=True)
class Area:
    desc: str
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()  # (lat, lon) vertices
    circles: tuple[tuple[float, float, float], ...] = ()  # (lat, lon, radius km)
    geocodes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Info:
    category: str = ""
    event: str = ""
    headline: str = ""
    description: str = ""
    instruction: str = ""
    urgency: str = ""
    severity: str = ""
    certainty: str = ""
    effective: str = ""
    onset: str = ""
    expires: str = ""
    web: tuple[str, ...] = ()
    areas: tuple[Area, ...] = ()
    sender_name: str = ""
    response_types: tuple[str, ...] = ()
    event_codes: tuple[tuple[str, str], ...] = ()  # (valueName, value)
    parameters: tuple[tuple[str, str], ...] = ()  # VTEC, NWSheadline, CMAMtext, ...


@dataclass(frozen=True)
class Alert:
    identifier: str
    sent: str
    status: str
    msg_type: str
    references: tuple[tuple[str, str, str], ...] = ()  # (sender, identifier, sent)
    info: Info | None = None


# --- XML ---------------------------------------------------------------------------------

def parse_xml(body: bytes) -> Element:
    """Parse untrusted XML; any DTD (so any entity, external or expanding) is refused."""
    try:
        return SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise BadAlert(f"refused XML with a DTD or entities ({type(exc).__name__})") from None
    except ParseError as exc:
        raise BadAlert(f"not well-formed XML: {exc}") from None


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def is_alert(elem: Element) -> bool:
    ns = elem.tag[1:].split("}")[0] if elem.tag.startswith("{") else ""
    return local(elem.tag) == "alert" and (ns in CAP_NAMESPACES or not ns)


def _child(elem: Element, name: str) -> Element | None:
    return next((c for c in elem if local(c.tag) == name), None)


def _text(elem: Element, name: str) -> str:
    child = _child(elem, name)
    return (child.text or "").strip() if child is not None else ""


def _all(elem: Element, name: str) -> list[Element]:
    return [c for c in elem if local(c.tag) == name]


def alert_from_xml(elem: Element) -> Alert:
    if not is_alert(elem):
        raise BadAlert(f"<{local(elem.tag)}> is not a CAP alert")
    identifier = _text(elem, "identifier")
    if not identifier:
        raise BadAlert("the alert has no identifier")
    infos = _all(elem, "info")
    chosen = next((i for i in infos if _english(_text(i, "language"))), infos[0] if infos
                  else None)
    references = []
    for ref in _text(elem, "references").split():
        parts = ref.split(",")
        if len(parts) != 3:
            raise BadAlert(f"reference {ref!r} is not sender,identifier,sent", identifier)
        references.append((parts[0], parts[1], parts[2]))
    try:
        info = _info_from_xml(chosen) if chosen is not None else None
    except BadAlert as exc:
        raise BadAlert(str(exc), identifier) from None
    return Alert(identifier, _text(elem, "sent"), _text(elem, "status"), _text(elem, "msgType"),
                 tuple(references), info)


def _english(language: str) -> bool:
    language = (language or "en-US").lower()  # CAP: absent means en-US
    return language == "en" or language.startswith("en-")


def _info_from_xml(info: Element) -> Info:
    categories = [c.text.strip() for c in _all(info, "category") if c.text]
    return Info(
        category=next((c for c in categories if c in CAP_CATEGORIES), ""),
        event=_text(info, "event"), headline=_text(info, "headline"),
        description=_text(info, "description"), instruction=_text(info, "instruction"),
        urgency=_text(info, "urgency"), severity=_text(info, "severity"),
        certainty=_text(info, "certainty"), effective=_text(info, "effective"),
        onset=_text(info, "onset"), expires=_text(info, "expires"),
        web=tuple(w for w in [_text(info, "web")] if w),
        areas=tuple(_area_from_xml(a) for a in _all(info, "area")),
        sender_name=_text(info, "senderName"),
        response_types=tuple(t for t in (_own_text(r) for r in _all(info, "responseType")) if t),
        event_codes=_pairs(info, "eventCode"), parameters=_pairs(info, "parameter"))


def _own_text(elem: Element) -> str:
    return (elem.text or "").strip()


def _pairs(elem: Element, name: str) -> tuple[tuple[str, str], ...]:
    """Every <name><valueName/><value/></name> of an element, in order."""
    found = ((_text(e, "valueName"), _text(e, "value")) for e in _all(elem, name))
    return tuple((n, v) for n, v in found if n)


def _area_from_xml(area: Element) -> Area:
    desc = _text(area, "areaDesc") or "area"
    # NWS sends <polygon></polygon> for zone products: no outline, the geocodes place it.
    polygons = tuple(parse_polygon(desc, p.text) for p in _all(area, "polygon")
                     if p.text and p.text.strip())
    circles = tuple(_circle(desc, c.text or "") for c in _all(area, "circle"))
    geocodes = tuple((_text(g, "valueName"), _text(g, "value")) for g in _all(area, "geocode"))
    return Area(desc, polygons, circles, tuple(g for g in geocodes if g[0] and g[1]))


def _pair(desc: str, text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        raise BadAlert(f"area {desc!r}: {text!r} is not a lat,lon pair") from None
    return lat, lon


def parse_polygon(desc: str, text: str) -> tuple[tuple[float, float], ...]:
    """CAP polygon: space-separated "lat,lon" pairs, latitude first."""
    points = tuple(_pair(desc, pair) for pair in text.split())
    if len(set(points)) < 3:
        raise BadAlert(f"area {desc!r}: a polygon needs at least 3 distinct points")
    return points


def _circle(desc: str, text: str) -> tuple[float, float, float]:
    parts = text.split()
    try:
        radius = float(parts[1]) if len(parts) == 2 else -1.0
    except ValueError:
        radius = -1.0
    if not radius >= 0:
        raise BadAlert(f"area {desc!r}: circle {text!r} is not 'lat,lon radius_km'")
    return (*_pair(desc, parts[0]), radius)


# --- Alert -> Notice ---------------------------------------------------------------------

def cap_time(text: str, what: str) -> int:
    """Microseconds since the epoch for a CAP dateTime (2024-05-01T10:00:00-05:00)."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadAlert(f"{what} {text!r} is not a CAP date and time") from None
    if moment.tzinfo is None:
        raise BadAlert(f"{what} {text!r} has no time zone offset")
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return (moment - epoch) // datetime.timedelta(microseconds=1)


def to_notice(alert: Alert, ctx: Context, source_id: str) -> Notice:
    """The Notice for one alert, checked by the bulletin rules; raises BadAlert."""
    info = alert.info
    if info is None:
        if alert.msg_type != "Cancel":
            raise BadAlert("the alert has no <info>")
        info = Info(event=f"Cancelled alert {source_id}")
    category = info.category if info.category in CAP_CATEGORIES else "Other"
    summary = "\n\n".join(plain(t) for t in (info.description, info.instruction) if t)
    sectors = list(ctx.spec.sectors) or "all"
    valid_from, valid_until = _validity(alert, info)
    data = {
        "title": (info.headline or info.event or alert.identifier)[:500],
        "summary": summary[:20000], "kind": KIND_OF_CATEGORY[category], "tlp": ctx.spec.tlp,
        "sectors": sectors, "category": category,
        "severity": _one_of(info.severity, SEVERITIES),
        "urgency": _one_of(info.urgency, URGENCIES),
        "certainty": _one_of(info.certainty, CERTAINTIES),
        "valid_from": valid_from, "valid_until": valid_until,
        "locations": _locations(info.areas, ctx.option("country")),
        "references": [u for u in info.web if _is_url(u)], "source_id": source_id[:500],
    }
    try:
        notice = schemas.load_bulletin(data, ())
    except ValidationError as exc:
        raise BadAlert(_in_cap_words(validation_text(exc))) from None
    sent = cap_time(alert.sent, "sent") if alert.sent else None
    return replace(notice, revoked=alert.msg_type == "Cancel",
                   published=timestamps.format_stix(sent) if sent is not None else None,
                   extra={"hazard": _facts(info)})


def _facts(info: Info) -> dict:
    """What the alert states beyond a bulletin's fields, for the hazard extension."""
    def pairs(items):
        return [{"name": n, "value": v} for n, v in items]
    onset = cap_time(info.onset, "onset") if info.onset else None
    return {
        "event": info.event, "event_codes": pairs(info.event_codes),
        "sender_name": info.sender_name,
        "onset": timestamps.format_stix(onset) if onset is not None else None,
        "response_types": list(info.response_types),
        "instruction": plain(info.instruction) if info.instruction else None,
        "web": info.web[0] if info.web else None, "parameters": pairs(info.parameters),
    }


def plain(text: str) -> str:
    """Text as written, without the XML's indentation: each line stripped, paragraphs
    (blank lines) kept, runs of blank lines made one."""
    lines = [line.strip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out)


def _validity(alert: Alert, info: Info) -> tuple[str | None, str | None]:
    """(valid_from, valid_until) from effective (else onset, else sent) and expires.

    Real messages (tsunami cancellations) expire the moment they are sent; a notice needs
    its end after its start, so such a message is valid for its last second. Expiring
    before it takes effect is an error, said in CAP's words."""
    start_text = info.effective or info.onset or alert.sent
    start_name = "effective" if info.effective else ("onset" if info.onset else "sent")
    start = cap_time(start_text, start_name) if start_text else None
    end = cap_time(info.expires, "expires") if info.expires else None
    if start is not None and end is not None:
        if end < start:
            raise BadAlert(f"expires ({info.expires}) must not be before {start_name} "
                           f"({start_text})")
        if end == start:
            start = end - 1_000_000
    return (timestamps.format_stix(start) if start is not None else None,
            timestamps.format_stix(end) if end is not None else None)


_CAP_WORDS = (("valid_until", "expires"), ("valid_from", "effective"), ("locations", "area"))


def _in_cap_words(message: str) -> str:
    """The bulletin rules' field names as the CAP elements they came from."""
    for ours, caps in _CAP_WORDS:
        message = message.replace(ours, caps)
    return message


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else "Unknown"


def _is_url(value: str) -> bool:
    try:
        _URL.deserialize(value)
    except ValidationError:
        return False
    return True


def _locations(areas: Iterable[Area], country: str | None) -> list[dict]:
    """One location per polygon and per circle (kept as a circle: centre and radius); an
    area with neither is placed by its geocodes' country (SAME, FIPS and UGC codes are
    US, CAP-CP locations Canada, EMMA_ID and NUTS codes start with it), else the feed's
    `country` option; never a country nobody stated. Names are unique: the converter
    keys locations by name. Repeated geocode names (SAME 020001, SAME 020003) are joined
    with spaces, the form the bulletin's name -> value map can hold."""
    out: list[dict] = []
    for area in areas:
        codes: dict[str, str] = {}
        for name, value in area.geocodes:
            codes[name] = f"{codes[name]} {value}" if name in codes else value
        stated = geocode_country(area.geocodes) or country
        places = [{"polygon": [list(p) for p in polygon]} for polygon in area.polygons]
        places += [{"lat": lat, "lon": lon, "radius_km": radius,
                    "suffix": f"circle, radius {radius:g} km"}
                   for lat, lon, radius in area.circles]
        if not places:
            places = [_by_geocodes(area.geocodes)]
        if stated:
            places = [{**place, "country": stated} for place in places]
        places[0]["geocodes"] = codes
        for place in places:
            suffix = place.pop("suffix", "")
            out.append({"name": _unique(f"{area.desc} ({suffix})" if suffix else area.desc,
                                        out), **place})
    return out


def _by_geocodes(codes: Iterable[tuple[str, str]]) -> dict:
    """An area given only by geocodes, placed by the counties they name (the gazetteer):
    a point inside them and their names; nothing when no code names a county (forecast
    zones, other countries' codes)."""
    counties = geo_codes.counties(codes, gazetteer.load())
    if not counties:
        return {}
    inside = union_all([c.shape for c in counties]).representative_point()
    names = "; ".join(c.name for c in counties)
    return {"lat": round(inside.y, 6), "lon": round(inside.x, 6),
            "administrative_area": names if len(names) <= 300 else names[:299] + "\u2026"}


US_GEOCODES = frozenset({"SAME", "FIPS6", "FIPS", "UGC"})


def geocode_country(geocodes: Iterable[tuple[str, str]]) -> str | None:
    """The ISO country a geocode system says, where it says one."""
    for name, value in geocodes:
        if name in US_GEOCODES:
            return "US"
        if name.startswith("profile:CAP-CP:Location"):
            return "CA"
        if (name == "EMMA_ID" or name.startswith("NUTS")) and value[:2].isalpha():
            return value[:2].upper()
    return None


def _unique(name: str, taken: list[dict]) -> str:
    names = {loc["name"] for loc in taken}
    candidate, n = name[:290], 1
    while candidate in names:
        n += 1
        candidate = f"{name[:290]} ({n})"
    return candidate




# --- chains, statuses, cursor --------------------------------------------------------------

def max_alerts(ctx: Context) -> int:
    limit = ctx.option("max_alerts", 500)
    if limit < 1:
        raise FeedError(f"option max_alerts must be at least 1, got {limit}")
    return limit


def collect_alerts(ctx: Context, alerts: list[Alert], errors: list[ItemError],
                   fetched: int) -> Fetched:
    """Notices for the alerts worth publishing, newest message per chain."""
    statuses = ctx.option("statuses", ["Actual"])
    if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
        raise FeedError("option statuses must be a list of CAP statuses such as [\"Actual\"]")
    if ctx.spec.tlp in ("amber+strict", "red"):  # these name recipients; a feed has none
        raise FeedError(f"tlp {ctx.spec.tlp} needs named recipients; hazard feeds cannot use it")
    roots = dict(ctx.cursor.get("roots", {}))  # identifier -> the chain's first identifier
    # root -> [last sent published, revoked, when last published]
    chains = {k: list(v) for k, v in ctx.cursor.get("chains", {}).items()}
    timed, skipped = [], 0
    for alert in alerts:
        if alert.status not in statuses or alert.msg_type not in MESSAGE_TYPES:
            skipped += 1
            continue
        try:
            timed.append((cap_time(alert.sent, "sent"), alert))
        except BadAlert as exc:
            errors.append(ItemError(alert.identifier, str(exc)))
    chosen: dict[str, Notice] = {}
    for sent, alert in sorted(timed, key=lambda pair: pair[0]):
        root = _root(alert, roots)
        last = chains.get(root)
        if last and sent < last[0]:
            continue  # an older message of a chain already published further
        if last and last[1] and alert.msg_type != "Cancel":
            errors.append(ItemError(alert.identifier, f"alert {root} was cancelled already"))
            continue
        try:
            chosen[root] = to_notice(alert, ctx, root)
        except BadAlert as exc:
            errors.append(ItemError(alert.identifier, str(exc)))
            continue
        roots[alert.identifier] = root
        chains[root] = [sent, alert.msg_type == "Cancel", timestamps.now_us()]
    return Fetched(list(chosen.values()), errors, fetched, _prune(roots, chains),
                   skipped=skipped)


def _root(alert: Alert, roots: dict[str, str]) -> str:
    if alert.msg_type == "Alert" or not alert.references:
        return roots.get(alert.identifier, alert.identifier)
    for _sender, identifier, _sent in alert.references:
        if identifier in roots:
            return roots[identifier]

    def when(ref: tuple[str, str, str]) -> int:
        try:
            return cap_time(ref[2], "sent")
        except BadAlert:
            return 2 ** 62  # unreadable: after every readable one, keeping their order
    return min(alert.references, key=when)[1]  # min keeps the first named on a tie


def _prune(roots: dict[str, str], chains: dict[str, list]) -> dict:
    """Forget chains not published for KEEP_SECONDS, and keep at most KEEP_CHAINS."""
    horizon = timestamps.now_us() - KEEP_SECONDS * 1_000_000
    kept = sorted(((v[2], k) for k, v in chains.items() if v[2] >= horizon), reverse=True)
    chains = {k: chains[k] for _, k in kept[:KEEP_CHAINS]}
    return {"roots": {i: r for i, r in roots.items() if r in chains}, "chains": chains}
