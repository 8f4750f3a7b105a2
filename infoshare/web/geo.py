"""The overview map as data for an inline SVG: an equirectangular projection in degree
units (x = lon + 180, y = 90 - lat), real boundaries, the alerts' own areas, and points.

The land is Natural Earth's countries (world-atlas), the states and counties the Census
Bureau's (us-atlas), both shipped in infoshare/geo/data: no tiles, no network. Views
differ only in viewBox (the world, the contiguous US, Alaska, Hawaii, Puerto Rico and the
Virgin Islands, the Pacific territories). Strokes do not scale (vector-effect in the
CSS), and point radii are given per view, so every view reads the same on screen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from ..geo import gazetteer, topojson
from .situation import Area, Place

WORLD = gazetteer.ATLAS.parent / "world-atlas-countries-110m.json"
ANTARCTICA = "010"  # its ISO 3166 numeric code, the id world-atlas gives it


@dataclass(frozen=True)
class View:
    key: str
    title: str
    west: float
    east: float
    south: float
    north: float
    radius: float  # point radius, in degrees
    grid: int  # degrees between graticule lines
    detail: float  # simplification tolerance of outlines, in degrees

    @property
    def view_box(self) -> str:
        x, y = project(self.west, self.north)
        return f"{x:g} {y:g} {self.east - self.west:g} {self.north - self.south:g}"

    def shows(self, place: Place) -> bool:
        return self.west <= place.lon <= self.east and self.south <= place.lat <= self.north

    def meets(self, shape: BaseGeometry) -> bool:
        west, south, east, north = shape.bounds
        return west <= self.east and east >= self.west and south <= self.north \
            and north >= self.south


VIEWS = {
    "world": View("world", "World", -180, 180, -60, 85, 3.2, 30, 0.2),
    "us": View("us", "Contiguous US", -126, -65, 23, 50, 0.6, 10, 0.02),
    "ak": View("ak", "Alaska", -180, -129, 51, 72, 0.5, 10, 0.02),
    "hi": View("hi", "Hawaii", -161, -154, 18.5, 22.5, 0.08, 2, 0.002),
    "pr": View("pr", "Puerto Rico, Virgin Islands", -68, -64.3, 17.5, 18.7, 0.05, 1, 0.001),
    "pacific": View("pacific", "Guam, N. Mariana Islands", 144.5, 146.2, 13.1, 15.4, 0.05, 1,
                    0.001),
}


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    place: Place


@dataclass(frozen=True)
class Shape:
    path: str
    area: Area


def project(lon: float, lat: float) -> tuple[float, float]:
    return round(lon + 180, 3), round(90 - lat, 3)


def _path(rings, closed: bool = True) -> str:
    parts = []
    for ring in rings:
        points = [project(lon, lat) for lon, lat in ring]
        parts.append("M" + " L".join(f"{x:g},{y:g}" for x, y in points) + (" Z" if closed
                                                                           else ""))
    return " ".join(parts)


def _rings(shape: BaseGeometry, tolerance: float) -> list:
    shape = shape.simplify(tolerance, preserve_topology=True) if tolerance else shape
    polygons = shape.geoms if isinstance(shape, MultiPolygon) else [shape]
    return [list(p.exterior.coords) for p in polygons if isinstance(p, Polygon)] + [
        list(hole.coords) for p in polygons if isinstance(p, Polygon) for hole in p.interiors]


@cache
def land_path(view_key: str) -> str:
    """The world's countries, or, in the US views, the states."""
    view = VIEWS[view_key]
    if view_key == "world":
        topology = json.loads(WORLD.read_text())
        arcs = topojson.decode_arcs(topology)
        shapes = [topojson.geometry(g, arcs)
                  for g in topology["objects"]["countries"]["geometries"]
                  if g.get("id") != ANTARCTICA]  # below the view, and it wraps the globe
        return _path(w for s in shapes if s is not None for r in _rings(s, 0)
                     for w in _wrapped(r))
    states = gazetteer.load().states.values()
    return _path(r for s in states if view.meets(s.shape) for r in _rings(s.shape, view.detail))


@cache
def county_path(view_key: str) -> str:
    """County lines where they stay readable: the smaller views only."""
    view = VIEWS[view_key]
    if view_key in ("world", "us"):
        return ""
    counties = gazetteer.load().counties.values()
    return _path(r for c in counties if view.meets(c.shape)
                 for r in _rings(c.shape, view.detail))


def shapes(view: View, areas: list[Area]) -> list[Shape]:
    """The alerts' own areas in this view: polygons, circles, geocode counties."""
    return [Shape(_path(_rings(a.shape, view.detail / 4)), a) for a in areas
            if view.meets(a.shape)]


def _wrapped(ring: list) -> list:
    """A ring across the antimeridian (Chukotka, Fiji) drawn without a stroke across the
    whole map: unwrapped to one side, and drawn again a globe to the west; the view clips
    whatever lies outside it."""
    lons = [lon for lon, _ in ring]
    if max(lons) - min(lons) <= 180:
        return [ring]
    east = [(lon + 360 if lon < 0 else lon, lat) for lon, lat in ring]
    return [east, [(lon - 360, lat) for lon, lat in east]]


def graticule(view: View) -> str:
    """Meridians and parallels every `view.grid` degrees, inside the view."""
    step = view.grid
    lines = [((lon, view.south), (lon, view.north))
             for lon in range(-180, 181, step) if view.west <= lon <= view.east]
    lines += [((view.west, lat), (view.east, lat))
              for lat in range(-90, 91, step) if view.south <= lat <= view.north]
    return _path(lines, closed=False)


def dots(view: View, places: list[Place]) -> list[Dot]:
    return [Dot(*project(p.lon, p.lat), p) for p in places if view.shows(p)]
