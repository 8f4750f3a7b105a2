"""The situation at a glance: active notices the viewer may see, counted by sector and
severity, and their locations for the map.

Active means not revoked and not expired (valid_until in the future, or none). A notice
for all sectors is counted once, in its own "All sectors" row, rather than in all sixteen.
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection, Row

from .. import access, sectors
from ..geo.areas import notice_place
from ..notices import SEVERITIES
from ..schemas import load_location
from ..stix.convert import centroid
from ..store import notices as notice_store
from . import timeline

LIMIT = 2000  # the overview reads at most this many of the newest active notices


@dataclass(frozen=True)
class TableRow:
    code: str | None  # None: the all-sectors row
    title: str
    counts: tuple[int, ...]  # in SEVERITIES order

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Place:
    report_id: str
    title: str
    severity: str
    name: str
    lat: float
    lon: float


# The map also shows alerts that expired this long ago, drawn as expired.
RECENTLY_EXPIRED_US = 24 * 3600 * 1_000_000


@dataclass(frozen=True)
class Area:
    """An alert's own area on the map: a polygon, a circle or the counties it names."""

    report_id: str
    title: str
    severity: str
    name: str
    expired: bool
    shape: BaseGeometry


def active(conn: Connection, principal: access.Principal, now_us: int) -> list[Row]:
    rows = notice_store.listing(conn, principal, include_revoked=False, limit=LIMIT)
    return [row for row in rows if _current(row.document, now_us)]


def recently_expired(conn: Connection, principal: access.Principal, now_us: int
                     ) -> list[Row]:
    rows = notice_store.listing(conn, principal, include_revoked=False, limit=LIMIT)
    return [row for row in rows if not _current(row.document, now_us)
            and _current(row.document, now_us - RECENTLY_EXPIRED_US)]


def areas(rows: list[Row], expired: bool = False) -> list[Area]:
    """The areas of these notices' locations (geo.areas decides what each covers)."""
    found = []
    for row in rows:
        for loc in row.document.get("locations") or []:
            place = _place(loc)
            if place is not None and place.geom_type != "Point":
                found.append(Area(row.report_id, row.title, row.severity,
                                  loc.get("name", ""), expired, place))
    return found


def _place(loc: dict) -> BaseGeometry | None:
    try:
        spec = load_location(loc)
    except ValidationError:
        return None
    return notice_place([spec])


def _current(document: dict, now_us: int) -> bool:
    return timeline.is_current(document, now_us)


def latest(rows: list[Row], count: int = 8) -> list[Row]:
    """The newest events first (the source's time, not when it was stored)."""
    return sorted(rows, key=lambda row: row.event_us, reverse=True)[:count]


def table(rows: list[Row]) -> list[TableRow]:
    """One row for all-sectors notices, then one per sector, then nothing else."""
    tally: dict[str | None, list[int]] = {None: [0] * len(SEVERITIES)}
    tally.update({code: [0] * len(SEVERITIES) for code in sectors.CODES})
    for row in rows:
        column = SEVERITIES.index(row.severity) if row.severity in SEVERITIES else -1
        for code in [None] if row.all_sectors else sectors.codes(row.sector_mask):
            tally[code][column] += 1
    return [TableRow(None, "All sectors", tuple(tally[None]))] + [
        TableRow(s.code, s.title, tuple(tally[s.code])) for s in sectors.SECTORS]


def places(rows: list[Row]) -> tuple[list[Place], int]:
    """Points to plot, and how many locations have no point (a country alone)."""
    found, without = [], 0
    for row in rows:
        for loc in row.document.get("locations") or []:
            point = _point(loc)
            if point is None:
                without += 1
            else:
                found.append(Place(row.report_id, row.title, row.severity,
                                   loc.get("name", ""), *point))
    return found, without


def _point(loc: dict) -> tuple[float, float] | None:
    """The location's own point, else its polygon's centroid (as the STIX location has)."""
    if loc.get("lat") is not None and loc.get("lon") is not None:
        return float(loc["lat"]), float(loc["lon"])
    polygon = loc.get("polygon") or []
    if polygon:
        return centroid(tuple((float(p[0]), float(p[1])) for p in polygon))
    return None
