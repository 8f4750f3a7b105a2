"""Hazard facts in standard STIX, for consumers that do not read the hazard extension.

The hazard extension carries CAP's facts exactly, for tools that know it. Consumers that
drop unknown extensions (misp-stix turns a report into a MISP event and keeps only
standard properties) would lose what operators act on, so each hazard notice also says
it where STIX 2.1 has a place: its CAP terms as report labels (`cap:severity="Severe"`,
which MISP keeps as tags) and every fact of the extension, areas included, as the text of
a note about the report (MISP keeps it as the event's note). Both are rendered from the
extension's own facts, so whatever the extension gains, the note says too.
"""

from __future__ import annotations

from collections.abc import Mapping

# CAP terms that become labels, in CAP's order.
LABELLED = ("category", "severity", "urgency", "certainty")
_SKIPPED = {"extension_type", "areas"}


def labels(facts: Mapping) -> list[str]:
    """`cap:<term>="<value>"` for each CAP term the notice states (not "Unknown")."""
    return [f'cap:{term}="{facts[term]}"' for term in LABELLED
            if facts.get(term) not in (None, "", "Unknown")]


def abstract(title: str, facts: Mapping) -> str:
    terms = ", ".join(str(facts[t]) for t in ("severity", "urgency", "certainty")
                      if facts.get(t) not in (None, "", "Unknown"))
    return f"Hazard facts: {title}" + (f" ({terms})" if terms else "")


def content(facts: Mapping) -> str:
    """One line per fact, then each area with its geocodes and outline."""
    lines = [f"{_label(key)}: {_text(value)}" for key, value in facts.items()
             if key not in _SKIPPED]
    for area in facts.get("areas", ()):
        lines.append(f"Area: {area.get('name', '')}")
        lines += [f"  {_label(key)}: {_text(value)}" for key, value in area.items()
                  if key not in {"name", "polygon", "geocodes", "circle"}]
        if area.get("circle"):
            (lat, lon), radius = area["circle"]["center"], area["circle"]["radius_km"]
            lines.append(f"  Circle: centre {lat} {lon}, radius {radius:g} km")
        if area.get("geocodes"):
            lines.append("  Geocodes: " + "; ".join(f"{g['name']} {g['value']}"
                                                   for g in area["geocodes"]))
        if area.get("polygon"):
            lines.append("  Polygon (lat lon): " + ", ".join(f"{lat} {lon}"
                                                            for lat, lon in area["polygon"]))
    return "\n".join(lines)


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _text(value: object) -> str:
    if isinstance(value, Mapping) and set(value) == {"name", "value"}:
        return f"{value['name']} {value['value']}"
    if isinstance(value, Mapping):
        return "; ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(_text(v) for v in value)
    return str(value)
