"""Indicator lists in CSV -> one Notice per feed holding every valid indicator.

Columns: value, type, description, first_seen; all but value optional. A header row is
optional (recognised by a `value` cell, and then columns may come in any order); without
one the columns are positional. Blank lines and lines starting with `#` are skipped, as in
most published block lists. A missing type is inferred with stix.patterns.infer.

The whole list is one Notice whose source id is the feed name, and indicator ids are
derived from type and value, so re-reading the same list changes nothing and a new line
adds exactly one indicator (and a new report version that lists it). first_seen is per
indicator, which a Notice has no field for, so it goes into the indicator's description;
putting it in the Notice's valid_from would re-version every indicator whenever an older
line appears. A list with no valid line publishes nothing (rather than an empty report).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import replace

from marshmallow import ValidationError

from infoshare import schemas, timestamps
from infoshare.notices import IndicatorSpec

from .base import Context, FeedError, Fetched, ItemError, validation_text

# `notice_kind`, not `kind`: a feed's `kind` key is its adapter (settings.FEED_KEYS).
OPTIONS: dict[str, type] = {"title": str, "notice_kind": str, "summary": str}
ACCEPT = ("text/csv", "application/csv", "text/plain")
COLUMNS = ("value", "type", "description", "first_seen")


def collect(ctx: Context) -> Fetched:
    response = ctx.get(ctx.spec.url, conditional=True, accept=ACCEPT)
    if response.not_modified:
        return Fetched(not_modified=True)
    fetched = Fetched()
    indicators: dict[tuple[str, str], IndicatorSpec] = {}
    for line, row in _rows(response.body):
        fetched.fetched += 1
        try:
            spec = _indicator(row)
        except (ValidationError, ValueError) as exc:
            fetched.errors.append(ItemError(f"line {line}", validation_text(exc)))
            continue
        indicators.setdefault((spec.type, spec.value), spec)  # the first line wins
    if not indicators:
        return fetched
    spec = ctx.spec
    bulletin = {
        "title": ctx.option("title") or spec.name, "summary": ctx.option("summary", ""),
        "kind": ctx.option("notice_kind", "cyber"), "tlp": spec.tlp,
        "sectors": list(spec.sectors) or "all", "source_id": spec.name,
    }
    try:
        notice = schemas.load_bulletin(bulletin, ())
    except ValidationError as exc:  # the title, notice_kind or summary option is wrong
        raise FeedError(f"feed options: {validation_text(exc)}") from None
    fetched.items.append(replace(notice, indicators=tuple(indicators.values())))
    return fetched


def _rows(body: bytes):
    """(line number, {column: cell}) for each data row."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedError(f"the list is not UTF-8 text: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns: tuple[str, ...] = COLUMNS
    first = True
    try:
        for row in reader:
            cells = [cell.strip() for cell in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if first and "value" in (c.lower() for c in cells):
                columns = tuple(c.lower() for c in cells)
                first = False
                continue
            first = False
            yield reader.line_num, dict(zip(columns, cells, strict=False))
    except csv.Error as exc:
        raise FeedError(f"malformed CSV at line {reader.line_num}: {exc}") from None


def _indicator(row: Mapping[str, str]) -> IndicatorSpec:
    value = row.get("value", "")
    if not value:
        raise ValueError("value is empty")
    data = {"value": value, "description": row.get("description", "")}
    if row.get("type"):
        data["type"] = row["type"]
    seen = row.get("first_seen", "")
    if seen:
        stamp = seen if "T" in seen else f"{seen}T00:00:00Z"
        try:
            stamp = timestamps.format_stix(timestamps.parse_us(stamp))
        except timestamps.BadTimestamp:
            raise ValueError(f"first_seen {seen!r} is not a date or UTC timestamp") from None
        data["description"] = " ".join(p for p in (data["description"],
                                                   f"(first seen {stamp})") if p)
    return schemas.IndicatorSchema().load(data)
