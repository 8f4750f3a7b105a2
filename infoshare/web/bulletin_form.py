"""The compose form, both ways.

Posted fields become the bulletin JSON the API takes, so schemas.load_bulletin stays the
only judge of a bulletin; a stored bulletin document becomes the form's values, to prefill
an update. Values are one plain dict of strings and lists whatever their origin (a POST, a
stored document, or nothing yet), so the template renders a single shape.

Text conventions: indicators, mitigations, threat actors, references and recipients are
one per line; an indicator line may end in " # description"; labels and CVEs are
separated by spaces or commas; a polygon is "lat,lon; lat,lon; ..." and geocodes are
"NAME=value; NAME=value". Times are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from werkzeug.datastructures import MultiDict

LINE_FIELDS = ("mitigations", "threat_actors", "references", "recipients")
WORD_FIELDS = ("labels", "vulnerabilities")
TEXT_FIELDS = ("title", "summary", "kind", "tlp", "severity", "urgency", "certainty",
               "category", "valid_from", "valid_until", "source_id", "indicators",
               *LINE_FIELDS, *WORD_FIELDS)
LOCATION_FIELDS = ("name", "lat", "lon", "country", "administrative_area", "polygon",
                   "geocodes")
MAX_LOCATIONS = 100
_LOCATION_KEY = re.compile(r"^loc-(\d{1,3})-name$")
_LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?$")
_DESCRIPTION = " # "


@dataclass
class Draft:
    """Bulletin JSON built from the form, and what the form alone could tell is wrong."""

    document: dict
    problems: dict[str, list[str]] = field(default_factory=dict)
    indicator_lines: list[int] = field(default_factory=list)  # form line of indicators[i]


def empty() -> dict:
    values: dict = {key: "" for key in TEXT_FIELDS}
    values.update(severity="Unknown", urgency="Unknown", certainty="Unknown", sectors=[],
                  all_sectors=False, compartments=[], locations=[])
    return values


def from_form(form: MultiDict) -> dict:
    values = {key: form.get(key, "").strip() for key in TEXT_FIELDS}
    values.update(sectors=form.getlist("sectors"), all_sectors=bool(form.get("all_sectors")),
                  compartments=form.getlist("compartments"), locations=_form_locations(form))
    return values


def _form_locations(form: MultiDict) -> list[dict]:
    """Location rows in index order; rows left entirely blank are dropped."""
    indexes = sorted({int(m.group(1)) for key in form if (m := _LOCATION_KEY.match(key))})
    rows = [{name: form.get(f"loc-{i}-{name}", "").strip() for name in LOCATION_FIELDS}
            for i in indexes[:MAX_LOCATIONS]]
    return [row for row in rows if any(row.values())]


def to_json(values: dict) -> Draft:
    draft = Draft({})
    doc = draft.document
    for key in ("title", "kind", "tlp", "severity", "urgency", "certainty", "category",
                "source_id"):
        if values[key]:  # absent, not "", so the schema says "missing" or uses its default
            doc[key] = values[key]
    doc["summary"] = values["summary"]
    doc["sectors"] = "all" if values["all_sectors"] else list(values["sectors"])
    doc["compartments"] = list(values["compartments"])
    for key in ("valid_from", "valid_until"):
        if values[key]:
            doc[key] = utc_timestamp(values[key])
    doc["indicators"], draft.indicator_lines = _indicators(values["indicators"])
    doc["locations"] = [_location(row, i, draft.problems)
                        for i, row in enumerate(values["locations"])]
    for key in LINE_FIELDS:
        doc[key] = _lines(values[key])
    doc["labels"] = _words(values["labels"])
    doc["vulnerabilities"] = [word.upper() for word in _words(values["vulnerabilities"])]
    return draft


def utc_timestamp(text: str) -> str:
    """A date and time as typed ("2024-05-31 14:00", seconds optional, taken as UTC) in
    RFC 3339; anything else is passed on for the schema to judge. The field is plain
    text: a datetime-local input costs eight Tab stops."""
    if not _LOCAL_TIME.match(text):
        return text
    text = text.replace(" ", "T", 1)
    return text + (":00Z" if len(text) == 16 else "Z")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _words(text: str) -> list[str]:
    return [word for word in re.split(r"[\s,]+", text) if word]


def _indicators(text: str) -> tuple[list[dict], list[int]]:
    items, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        value, _, description = line.partition(_DESCRIPTION)
        if value.strip():
            items.append({"value": value.strip(), "description": description.strip()})
            lines.append(number)
    return items, lines


def _location(row: dict, index: int, problems: dict[str, list[str]]) -> dict:
    out: dict = {}
    for key in ("name", "lat", "lon", "administrative_area"):
        if row[key]:
            out[key] = row[key]  # numbers as text: marshmallow parses or names the field
    if row["country"]:
        out["country"] = row["country"].upper()
    if row["polygon"]:
        out["polygon"] = [[part.strip() for part in vertex.split(",")]
                          for vertex in row["polygon"].split(";") if vertex.strip()]
    if row["geocodes"]:
        out["geocodes"], bad = _geocodes(row["geocodes"])
        if bad:
            problems[f"locations.{index}.geocodes"] = [
                f"write geocodes as NAME=value; not understood: {', '.join(bad)}"]
    return out


def _geocodes(text: str) -> tuple[dict[str, str], list[str]]:
    codes, bad = {}, []
    for item in (part.strip() for part in text.split(";")):
        name, sep, value = item.partition("=")
        if item and (not sep or not name.strip() or not value.strip()):
            bad.append(item)
        elif item:
            codes[name.strip()] = value.strip()
    return codes, bad


# --- a stored document back into form values ---------------------------------------------

def from_document(document: dict) -> dict:
    values = empty()
    for key in ("title", "summary", "kind", "tlp", "severity", "urgency", "certainty",
                "category", "source_id"):
        values[key] = document.get(key) or values[key]
    for key in ("valid_from", "valid_until"):
        values[key] = local_time(document.get(key))
    sectors = document.get("sectors") or []
    values.update(all_sectors=sectors == "all", sectors=[] if sectors == "all" else sectors,
                  compartments=list(document.get("compartments") or []))
    values["indicators"] = "\n".join(_indicator_line(i) for i in document.get("indicators", []))
    values["locations"] = [_location_values(loc) for loc in document.get("locations", [])]
    for key in LINE_FIELDS:
        values[key] = "\n".join(document.get(key) or [])
    for key in WORD_FIELDS:
        values[key] = " ".join(document.get(key) or [])
    return values


def local_time(stamp: str | None) -> str:
    """A stored STIX timestamp as the form shows it (seconds kept, milliseconds not)."""
    return stamp[:19].replace("T", " ") if stamp else ""


def _indicator_line(item: dict) -> str:
    description = item.get("description") or ""
    return item["value"] + (_DESCRIPTION + description if description else "")


def _location_values(loc: dict) -> dict:
    def number(value) -> str:
        return "" if value is None else format(value, "g")

    return {
        "name": loc.get("name", ""), "lat": number(loc.get("lat")),
        "lon": number(loc.get("lon")), "country": loc.get("country") or "",
        "administrative_area": loc.get("administrative_area") or "",
        "polygon": "; ".join(f"{number(lat)},{number(lon)}"
                             for lat, lon in loc.get("polygon") or []),
        "geocodes": "; ".join(f"{k}={v}" for k, v in (loc.get("geocodes") or {}).items()),
    }
