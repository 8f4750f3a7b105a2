"""TopoJSON (https://github.com/topojson/topojson-specification) -> shapely geometries.

A small reader for the one dataset the gazetteer ships: the TopoJSON libraries on the
registries write topologies, or convert through GeoPandas; reading one is delta-decoding
quantized arcs and stitching them into rings, which is all this does.
"""

from __future__ import annotations

from collections.abc import Mapping

from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry


def decode_arcs(topology: Mapping) -> list[list[tuple[float, float]]]:
    """Every arc as absolute (lon, lat) points."""
    transform = topology.get("transform")
    arcs = []
    for arc in topology["arcs"]:
        if transform:
            (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
            x = y = 0
            points = []
            for dx, dy in arc:
                x, y = x + dx, y + dy
                points.append((x * sx + tx, y * sy + ty))
        else:
            points = [(float(px), float(py)) for px, py in arc]
        arcs.append(points)
    return arcs


def _ring(indices: list[int], arcs: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for index in indices:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc if not points else arc[1:])  # arcs share their end points
    return points


def geometry(obj: Mapping, arcs: list[list[tuple[float, float]]]) -> BaseGeometry | None:
    """A Polygon or MultiPolygon object of a topology; None for anything else."""
    if obj.get("type") == "Polygon":
        parts = [_polygon(obj["arcs"], arcs)]
    elif obj.get("type") == "MultiPolygon":
        parts = [_polygon(p, arcs) for p in obj["arcs"]]
    else:
        return None
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _polygon(rings: list[list[int]], arcs) -> Polygon | None:
    """A polygon, without the rings that quantization and simplification collapsed to
    fewer than four points (a tiny island); None when the outer ring collapsed."""
    shell, *holes = (_ring(r, arcs) for r in rings)
    if len(shell) < 4:
        return None
    return Polygon(shell, [h for h in holes if len(h) >= 4])
