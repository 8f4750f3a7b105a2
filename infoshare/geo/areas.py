"""Where a subscription cares about, and where a notice is: shapely geometries (lon, lat).

A subscription's `areas` are items of four kinds: {"state": "TX"}, {"county": "48167"},
{"point": [lat, lon], "radius_km": 25} and {"geojson": Polygon or MultiPolygon}. A
notice's place is the union of its locations: polygons, circles, counties its geocodes
name, points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from shapely import union_all
from shapely.geometry import Point, Polygon, shape
from shapely.geometry.base import BaseGeometry

from ..notices import LocationSpec
from . import gazetteer as gazetteer_module
from . import geocodes

MAX_RADIUS_KM = 2000.0
EARTH_KM = 6371.0088
MAX_VERTICES = 10_000


class BadArea(ValueError):
    """An item of `areas` that names nothing, or is not a valid shape."""


def circle(lat: float, lon: float, radius_km: float, sides: int = 48) -> Polygon:
    """A circle on the sphere, as a polygon of `sides` points (destination-point formula),
    so a radius in Alaska covers as many kilometres as one in Texas."""
    if radius_km <= 0:
        return Point(lon, lat).buffer(1e-6)
    phi, lam, delta = math.radians(lat), math.radians(lon), radius_km / EARTH_KM
    points = []
    for i in range(sides):
        bearing = 2 * math.pi * i / sides
        phi2 = math.asin(math.sin(phi) * math.cos(delta)
                         + math.cos(phi) * math.sin(delta) * math.cos(bearing))
        lam2 = lam + math.atan2(math.sin(bearing) * math.sin(delta) * math.cos(phi),
                                math.cos(delta) - math.sin(phi) * math.sin(phi2))
        points.append((math.degrees(lam2), math.degrees(phi2)))
    return Polygon(points)


def subscription_area(item: object) -> BaseGeometry:
    """One item of a subscription's `areas`; raises BadArea saying what is wrong."""
    gazetteer = gazetteer_module.load()
    if not isinstance(item, Mapping) or len(item.keys() - {"radius_km"}) != 1:
        raise BadArea('each area is one of {"state": "TX"}, {"county": "48167"}, '
                      '{"point": [lat, lon], "radius_km": 25} or {"geojson": {...}}')
    if "state" in item:
        place = gazetteer.state(str(item["state"])) if isinstance(item["state"], str) else None
        if place is None:
            raise BadArea(f"unknown state {item['state']!r}: give a USPS code such as TX")
        return place.shape
    if "county" in item:
        value = item["county"]
        place = gazetteer.county(value) if isinstance(value, str) else None
        if place is None:
            raise BadArea(f"unknown county {value!r}: give its 5-digit FIPS code such as "
                          "48167")
        return place.shape
    if "point" in item:
        return _point(item)
    if "geojson" in item:
        return _geojson(item["geojson"])
    raise BadArea(f"unknown kind of area {next(iter(item))!r}")


def _point(item: Mapping) -> BaseGeometry:
    point, radius = item.get("point"), item.get("radius_km", 0)
    if (not isinstance(point, list) or len(point) != 2
            or not all(_number(v) for v in point)):
        raise BadArea("point is [lat, lon] in degrees")
    lat, lon = float(point[0]), float(point[1])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadArea("point: latitude must be within -90..90 and longitude -180..180")
    if not _number(radius) or not 0 <= float(radius) <= MAX_RADIUS_KM:
        raise BadArea(f"radius_km must be a number from 0 to {MAX_RADIUS_KM:g}")
    return circle(lat, lon, float(radius))


def _geojson(value: object) -> BaseGeometry:
    if not isinstance(value, Mapping) or value.get("type") not in ("Polygon", "MultiPolygon"):
        raise BadArea("geojson must be a GeoJSON Polygon or MultiPolygon")
    try:
        geometry = shape(value)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise BadArea(f"geojson is not a readable polygon: {exc}") from None
    if geometry.is_empty or not geometry.is_valid:
        raise BadArea("geojson is not a valid polygon (rings must close and not cross)")
    if len(geometry.exterior.coords if geometry.geom_type == "Polygon" else
           [c for p in geometry.geoms for c in p.exterior.coords]) > MAX_VERTICES:
        raise BadArea(f"geojson has more than {MAX_VERTICES} vertices")
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90):
        raise BadArea("geojson coordinates are [lon, lat] within -180..180 and -90..90")
    return geometry


def _number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def subscription_place(items: Iterable[object]) -> BaseGeometry:
    return union_all([subscription_area(item) for item in items])


def notice_place(locations: Iterable[LocationSpec]) -> BaseGeometry | None:
    """Where a notice is, or None when none of its locations says (a country alone).

    Runs for every notice published; the gazetteer is loaded only for geocodes."""
    parts: list[BaseGeometry] = []
    for spec in locations:
        if spec.polygon and len(spec.polygon) >= 3:
            ring = Polygon([(lon, lat) for lat, lon in spec.polygon])
            parts.append(ring if ring.is_valid else ring.buffer(0))
        if spec.radius_km is not None and spec.latitude is not None:
            parts.append(circle(spec.latitude, spec.longitude, spec.radius_km))
        elif spec.latitude is not None and not spec.polygon:
            parts.append(Point(spec.longitude, spec.latitude))
        if spec.geocodes:
            parts += [c.shape for c in geocodes.counties(spec.geocodes,
                                                         gazetteer_module.load())]
    parts = [p for p in parts if not p.is_empty]
    return union_all(parts) if parts else None
