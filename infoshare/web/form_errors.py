"""marshmallow's messages, keyed by the form's fields.

The schema reports nested errors by list index (indicators[2].value, locations[0].lat,
references[1], a polygon's vertex); the form shows each message next to the input it
concerns and says which line or item it means. Keys: a field name, "locations.<i>.<field>"
for a location row, and "_form" for what concerns the bulletin as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping

ITEM_WORDS = {"vulnerabilities": "CVE", "references": "line", "mitigations": "line",
              "threat_actors": "line", "recipients": "line", "labels": "label",
              "compartments": "compartment", "sectors": "sector", "areas": "area"}


def leaves(value) -> list[str]:
    """Every message string inside a nested messages value, once each, in order."""
    found: list[str] = []
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            found += leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found += leaves(item)
    return list(dict.fromkeys(found))


def by_field(messages: Mapping, indicator_lines: list[int]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in messages.items():
        if key == "_schema":
            _add(out, "_form", leaves(value))
        elif key == "indicators" and isinstance(value, Mapping):
            _add(out, key, _indicator_messages(value, indicator_lines))
        elif key == "locations" and isinstance(value, Mapping):
            for index, row in value.items():
                _location_messages(out, index, row)
        elif isinstance(value, Mapping):  # a list of strings: {index: [messages]}
            word = ITEM_WORDS.get(key, "item")
            _add(out, key, [f"{word} {_number(i)}: {m}" for i, item in value.items()
                            for m in leaves(item)])
        else:
            _add(out, key, leaves(value))
    return out


def _add(out: dict[str, list[str]], key: str, messages: list[str]) -> None:
    out.setdefault(key, []).extend(messages)


def _number(index) -> str:
    return str(index + 1) if isinstance(index, int) else str(index)


# The API asks for an explicit type when inference fails; the form has no type field, and
# inference already tries every type, so the way out there is a STIX pattern.
_GIVE_TYPE = ("give its type", "check it, or write it as a STIX pattern in [brackets]")


def _indicator_messages(value: Mapping, lines: list[int]) -> list[str]:
    messages = []
    for index, item in value.items():
        line = lines[index] if isinstance(index, int) and index < len(lines) else None
        prefix = f"line {line}: " if line else ""
        messages += [prefix + m.replace(*_GIVE_TYPE) for m in leaves(item)]
    return messages


def _location_messages(out: dict[str, list[str]], index, row) -> None:
    if not isinstance(row, Mapping):
        _add(out, "locations", [f"location {_number(index)}: {m}" for m in leaves(row)])
        return
    for name, value in row.items():
        target = f"locations.{index}.{'name' if name == '_schema' else name}"
        if name == "polygon" and isinstance(value, Mapping):
            _add(out, target, _polygon_messages(value))
        else:
            _add(out, target, leaves(value))


def _polygon_messages(value: Mapping) -> list[str]:
    messages = []
    for key, item in value.items():
        prefix = f"vertex {key + 1}: " if isinstance(key, int) else ""
        messages += [prefix + m for m in leaves(item)]
    return messages


def merge(*maps: Mapping[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for messages in maps:
        for key, value in messages.items():
            _add(out, key, list(value))
    return out


LABELS = {
    "title": "Title", "summary": "Summary", "kind": "Kind", "tlp": "TLP", "sectors": "Sectors",
    "compartments": "Compartments", "recipients": "Recipients", "severity": "Severity",
    "urgency": "Urgency", "certainty": "Certainty", "category": "CAP category",
    "valid_from": "Valid from", "valid_until": "Valid until", "indicators": "Indicators",
    "vulnerabilities": "CVEs", "locations": "Locations", "mitigations": "Mitigations",
    "threat_actors": "Threat actors", "references": "References", "labels": "Labels",
    "source_id": "Source id", "name": "Name", "types": "STIX types", "kinds": "Kinds",
    "min_severity": "Minimum severity", "max_tlp": "Highest TLP",
    "webhook_url": "Webhook URL", "webhook_secret": "Webhook secret", "_form": "Bulletin",
    "org": "Organisation", "tier": "Tier", "roles": "Roles", "password": "New password",
    "key_id": "API key",
}
LOCATION_LABELS = {"name": "name", "lat": "latitude", "lon": "longitude",
                   "country": "country", "administrative_area": "administrative area",
                   "polygon": "polygon", "geocodes": "geocodes"}


def input_id(key: str) -> str:
    """The id of the input an error key belongs to (the form's naming scheme)."""
    if key.startswith("locations."):
        _, index, name = key.split(".", 2)
        return f"loc-{index}-{name}"
    return f"f-{key}"


def label(key: str) -> str:
    if key.startswith("locations."):
        _, index, name = key.split(".", 2)
        number = int(index) + 1 if index.isdigit() else index
        return f"Location {number} {LOCATION_LABELS.get(name, name)}"
    return LABELS.get(key, key)


def summary(errors: Mapping[str, list[str]]) -> list[tuple[str, str, str]]:
    """(input id, field label, message) for the list of problems atop a form."""
    return [(input_id(key), label(key), message)
            for key, messages in errors.items() for message in messages]
