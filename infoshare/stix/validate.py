"""Validation of STIX objects that arrive from outside (TAXII POST, upstream feeds).

A third-party object is stored as received or not at all, so every check happens before
storage and every failure says which property is wrong. stix2-validator's verdicts (its
schemas and MUST checks, `conformance.errors`, reached without its per-object reloading)
decide validity; the checks in front of them give clearer messages for what TAXII itself
relies on (the id, the spec version, the version timestamp). A bundle is not an object of
an envelope and is refused here (the validator would judge its contents instead).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .. import timestamps
from . import conformance

_ID = re.compile(r"^([a-z0-9][a-z0-9-]*[a-z0-9]|[a-z0-9])--"
                 r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class InvalidObject(ValueError):
    pass


@dataclass(frozen=True)
class Checked:
    id: str
    type: str
    spec_version: str
    version: str | None  # None for objects without created/modified (SCOs)
    version_us: int | None


def check(obj: object) -> Checked:
    if not isinstance(obj, Mapping):
        raise InvalidObject("each entry of objects must be a JSON object")
    object_type, object_id = obj.get("type"), obj.get("id")
    if not isinstance(object_type, str) or not object_type:
        raise InvalidObject("type is missing")
    if not isinstance(object_id, str) or not _ID.match(object_id):
        raise InvalidObject(f"id {object_id!r} is not of the form {object_type}--<uuid>")
    if object_type == "bundle":
        raise InvalidObject("type bundle: send the bundle's objects, not the bundle")
    if object_id.split("--", 1)[0] != object_type:
        raise InvalidObject(f"id {object_id!r} does not start with its type {object_type!r}")
    if obj.get("spec_version") != "2.1":
        raise InvalidObject(f"spec_version must be '2.1', got {obj.get('spec_version')!r}")
    version = obj.get("modified", obj.get("created"))
    version_us = None
    if version is not None:
        try:
            version_us = timestamps.parse_us(version)
        except timestamps.BadTimestamp as exc:
            raise InvalidObject(f"modified/created: {exc}") from None
    for name in ("created", "modified", "valid_from", "valid_until", "published",
                 "first_seen", "last_seen", "first_observed", "last_observed"):
        if name in obj and not isinstance(obj[name], str):
            raise InvalidObject(f"{name} must be a timestamp string")
    try:
        errors = conformance.errors(dict(obj))
    except Exception as exc:  # the validator assumes types its schema checks later
        raise InvalidObject(f"not valid STIX 2.1: a property has the wrong type "
                            f"({type(exc).__name__})") from None
    if errors:
        raise InvalidObject("; ".join(e.split(": ", 1)[-1] for e in errors))
    return Checked(object_id, object_type, "2.1", version, version_us)
