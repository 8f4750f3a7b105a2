"""US National Weather Service alerts (api.weather.gov): a GeoJSON FeatureCollection whose
features carry CAP fields in `properties`, typically https://api.weather.gov/alerts/active.

NWS refuses requests without a User-Agent that names the caller and asks for a contact, so
set the common option, e.g. user_agent = "(infoshare.example.org, soc@example.org)"; the
default is feeds/http.py's "infoshare-feeds/1 (...)", which works but names no contact.

Options as for cap: `max_alerts` (default 500), `statuses` (default ["Actual"]), `country`
(for alerts without geometry whose geocodes do not name one; NWS's SAME/UGC codes do). GeoJSON
positions are (lon, lat); they become the (lat, lon) vertices CAP and LocationSpec use.
Everything after reading a feature is feeds/cap_parse.py, the same code as the cap feed.
"""

from __future__ import annotations

import json

from . import cap_parse
from .base import Context, FeedError, Fetched, ItemError
from .cap_parse import Alert, Area, BadAlert, Info

OPTIONS: dict[str, type] = {"max_alerts": int, "statuses": list, "country": str}
ACCEPT = ("application/geo+json", "application/json", "application/ld+json")


def collect(ctx: Context) -> Fetched:
    url = ctx.spec.url
    response = ctx.get(url, conditional=True, accept=ACCEPT)
    if response.not_modified:
        return Fetched(not_modified=True)
    try:
        document = json.loads(response.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedError(f"{url} is not JSON: {exc}") from None
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise FeedError(f"{url} is not a GeoJSON FeatureCollection with features")
    features = features[: cap_parse.max_alerts(ctx)]
    alerts, errors = [], []
    for index, feature in enumerate(features):
        try:
            alerts.append(alert_from_feature(feature))
        except BadAlert as exc:
            errors.append(ItemError(_label(feature, index), str(exc)))
    return cap_parse.collect_alerts(ctx, alerts, errors, len(features))


def _label(feature, index: int) -> str:
    properties = feature.get("properties") if isinstance(feature, dict) else None
    identifier = properties.get("id") if isinstance(properties, dict) else None
    return identifier if isinstance(identifier, str) and identifier else f"feature {index}"


def alert_from_feature(feature) -> Alert:
    properties = feature.get("properties") if isinstance(feature, dict) else None
    if not isinstance(properties, dict):
        raise BadAlert("the feature has no properties")

    def text(key: str) -> str:
        value = properties.get(key)
        return value.strip() if isinstance(value, str) else ""

    identifier = text("id")
    if not identifier:
        raise BadAlert("the alert has no id")
    references = properties.get("references") or []
    if not isinstance(references, list) or not all(isinstance(r, dict) for r in references):
        raise BadAlert("references is not a list of {identifier, sender, sent}")
    area = Area(text("areaDesc") or "area", _polygons(feature.get("geometry")),
                geocodes=_geocodes(properties.get("geocode")))
    info = Info(
        category=text("category"), event=text("event"), headline=text("headline"),
        description=text("description"), instruction=text("instruction"),
        urgency=text("urgency"), severity=text("severity"), certainty=text("certainty"),
        effective=text("effective"), onset=text("onset"), expires=text("expires"),
        web=tuple(w for w in (text("web"), text("@id")) if w), areas=(area,),
        sender_name=text("senderName"),
        response_types=tuple(r for r in [text("response")] if r),
        event_codes=_named_lists(properties.get("eventCode")),
        parameters=_named_lists(properties.get("parameters")))
    return Alert(identifier, text("sent"), text("status"), text("messageType"),
                 tuple((str(r.get("sender", "")), str(r.get("identifier", "")),
                        str(r.get("sent", ""))) for r in references if r.get("identifier")),
                 info)


def _named_lists(named) -> tuple[tuple[str, str], ...]:
    """NWS writes CAP's repeated (valueName, value) pairs as {name: [values]}."""
    if not isinstance(named, dict):
        return ()
    return tuple((str(name), str(value)) for name, values in named.items()
                 if isinstance(values, list) for value in values if value)


_geocodes = _named_lists


def _polygons(geometry) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Outer rings of a Polygon or MultiPolygon as (lat, lon) vertices; holes are dropped
    (a location is a centroid and an outline, not a shape algebra)."""
    if geometry is None:
        return ()
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if kind == "Polygon":
        polygons = [coordinates]
    elif kind == "MultiPolygon" and isinstance(coordinates, list):
        polygons = coordinates
    else:
        raise BadAlert(f"geometry {kind!r} is not a Polygon or MultiPolygon")
    return tuple(_ring(polygon) for polygon in polygons)


def _ring(polygon) -> tuple[tuple[float, float], ...]:
    try:
        ring = polygon[0]
        points = tuple((_number(p[1]), _number(p[0])) for p in ring)
    except (TypeError, IndexError, KeyError):
        raise BadAlert("geometry coordinates are not [[lon, lat], ...] rings") from None
    if len(set(points)) < 3:
        raise BadAlert("a polygon needs at least 3 distinct points")
    return points


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    return float(value)
