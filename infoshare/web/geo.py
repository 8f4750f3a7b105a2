"""The overview map as data for an inline SVG: an equirectangular projection in degree
units (x = lon + 180, y = 90 - lat), the land outlines, and the points to plot.

Two views share one drawing and differ only in viewBox: the world, and the contiguous
United States. Strokes do not scale (vector-effect in the CSS), and point radii are given
per view, so both read the same on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from . import worldshapes
from .situation import Place


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

    @property
    def view_box(self) -> str:
        x, y = project(self.west, self.north)
        return f"{x:g} {y:g} {self.east - self.west:g} {self.north - self.south:g}"

    def shows(self, place: Place) -> bool:
        return self.west <= place.lon <= self.east and self.south <= place.lat <= self.north


VIEWS = {
    "world": View("world", "World", -180, 180, -60, 85, 3.2, 30),
    "us": View("us", "United States", -126, -65, 23, 50, 0.6, 10),
}


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    place: Place


def project(lon: float, lat: float) -> tuple[float, float]:
    return round(lon + 180, 3), round(90 - lat, 3)


def _path(rings, closed: bool = True) -> str:
    parts = []
    for ring in rings:
        points = [project(lon, lat) for lon, lat in ring]
        parts.append("M" + " L".join(f"{x:g},{y:g}" for x, y in points) + (" Z" if closed
                                                                           else ""))
    return " ".join(parts)


@cache
def land_path() -> str:
    return _path(worldshapes.LAND)


@cache
def water_path() -> str:
    return _path(worldshapes.WATER)


@cache
def border_path() -> str:
    return _path(worldshapes.BORDERS, closed=False)


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
