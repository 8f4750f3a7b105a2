"""How values read on screen: TLP labels, sector titles, times. Templates reach this module
as `display`, so every page shows a value the same way."""

from __future__ import annotations

from .. import sectors, timestamps

TLP_LABELS = {"clear": "TLP:CLEAR", "green": "TLP:GREEN", "amber": "TLP:AMBER",
              "amber+strict": "TLP:AMBER+STRICT", "red": "TLP:RED"}
TLP_HINTS = {
    "clear": "no limit on disclosure",
    "green": "the community, not public channels",
    "amber": "recipients' organisations and their clients",
    "amber+strict": "recipients' organisations only (name them below)",
    "red": "named recipients only, no further (name them below)",
}


def tlp(level: str) -> str:
    return TLP_LABELS.get(level, level)


def tlp_class(level: str) -> str:
    """A CSS class name (the '+' of amber+strict is not allowed in one)."""
    return "tlp-" + level.replace("+", "-")


def sector(code: str) -> str:
    found = sectors.BY_CODE.get(code)
    return found.title if found else code


def sector_list(all_sectors: bool, codes: list[str]) -> str:
    return "All sectors" if all_sectors else ", ".join(sector(c) for c in codes)


def when_us(micros: int | None) -> str:
    """A store time as 'YYYY-MM-DD HH:MM UTC'; the minute is enough for a person."""
    if not micros:
        return "—"
    return timestamps.format_us(micros)[:16].replace("T", " ") + " UTC"


def when(text: str | None) -> str:
    """A STIX/TAXII timestamp shown like when_us."""
    if not text:
        return "—"
    try:
        return when_us(timestamps.parse_us(text))
    except timestamps.BadTimestamp:
        return text


def notice_sectors(row) -> str:
    """A notice row's sectors (its mask) as titles."""
    return sector_list(row.all_sectors, sectors.codes(row.sector_mask))


def validity(valid) -> str:
    """A notice's validity (timeline.Validity) as one sentence that never contradicts its
    state: a revoked notice is not "valid until revoked"."""
    start = when_us(valid.valid_from) if valid.valid_from else "publication"
    if valid.state == "revoked":
        return f"from {start}; revoked {when_us(valid.revoked_us)}"
    if valid.state == "expired":
        return f"from {start} to {when_us(valid.valid_until)}; expired"
    end = f"until {when_us(valid.valid_until)}" if valid.valid_until else "until revoked"
    return f"from {start} {end}" + ("; not yet in effect" if valid.state == "upcoming" else "")


_UNITS = ((86_400, "day", "daily"), (3_600, "hour", "hourly"), (60, "minute", None))


def every(seconds: int) -> str:
    """A feed's interval as a person says it: "daily", "every 6 hours", "every 90 s"."""
    for size, unit, once in _UNITS:
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            if count == 1:
                return once or f"every {unit}"
            return f"every {count} {unit}s"
    return f"every {seconds} s"


def details(value) -> str:
    """An audit entry's details as "key: value; ..." (lists joined by commas)."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    parts = []
    for key, item in value.items():
        shown = ", ".join(map(str, item)) if isinstance(item, list | tuple) else str(item)
        parts.append(f"{key.replace('_', ' ')}: {shown}")
    return "; ".join(parts)
