"""The new-subscription form: posted fields -> the API's subscription JSON, so
SubscriptionSchema (and the webhook safety check) judge it exactly as the API does."""

from __future__ import annotations

import json
import re

from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from distribution import webhooks

from .. import outbound
from ..schemas import SubscriptionSchema, subscription_columns
from . import form_errors

TEXT = ("name", "types", "labels", "min_severity", "max_tlp", "webhook_url", "webhook_secret",
        "states", "counties", "circles", "area_geojson")


def empty() -> dict:
    return {**{key: "" for key in TEXT}, "sectors": [], "kinds": [], "include_unlocated": True}


def from_form(form: MultiDict) -> dict:
    values = {key: form.get(key, "").strip() for key in TEXT}
    values.update(sectors=form.getlist("sectors"), kinds=form.getlist("kinds"),
                  include_unlocated=form.get("include_unlocated") == "on")
    return values


class BadAreaText(ValueError):
    pass


def areas(values: dict) -> list:
    """The "Where" fields as the API's areas: states and county codes separated by spaces
    or commas, one "lat, lon, radius_km" circle per line, and a drawn or pasted GeoJSON
    polygon. What does not parse is sent as given, so the schema names the item."""
    found: list = [{"state": w.upper()} for w in re.split(r"[\s,]+", values["states"]) if w]
    found += [{"county": w} for w in re.split(r"[\s,]+", values["counties"]) if w]
    for line in values["circles"].splitlines():
        if line.strip():
            found.append(_circle(line))
    if values["area_geojson"]:
        try:
            found.append({"geojson": json.loads(values["area_geojson"])})
        except ValueError:
            found.append({"geojson": values["area_geojson"]})
    return found


def _circle(line: str) -> dict:
    parts = [p for p in re.split(r"[\s,]+", line.strip()) if p]
    try:
        lat, lon, radius = (float(p) for p in parts)
    except ValueError:
        return {"point": line.strip()}  # the schema says what a point must be
    return {"point": [lat, lon], "radius_km": radius}


def to_json(values: dict) -> dict:
    """Only what was given: an absent filter means "any"."""
    doc: dict = {"name": values["name"]} if values["name"] else {}
    for key in ("sectors", "kinds"):
        if values[key]:
            doc[key] = list(values[key])
    for key in ("types", "labels"):
        words = [w for w in re.split(r"[\s,]+", values[key]) if w]
        if words:
            doc[key] = words
    for key in ("min_severity", "max_tlp", "webhook_url", "webhook_secret"):
        if values[key]:
            doc[key] = values[key]
    where = areas(values)
    if where:
        doc["areas"] = where
        doc["include_unlocated"] = bool(values.get("include_unlocated"))
    return doc


def columns(values: dict, settings) -> tuple[dict | None, dict[str, list[str]]]:
    """(store columns, None) when valid, else (None, errors by field)."""
    try:
        loaded = SubscriptionSchema().load(to_json(values))
    except ValidationError as exc:
        return None, _in_form_words(form_errors.by_field(exc.messages, []))
    if loaded.get("webhook_url"):
        try:
            webhooks.check(loaded["webhook_url"], outbound.policy(settings),
                           settings.webhooks.allow_http_hosts)
        except webhooks.UnsafeWebhook as exc:
            return None, _in_form_words({"webhook_url": [str(exc)]})
    return subscription_columns(loaded), {}


# The schema speaks the API's field names; the form's reader knows the fields by their labels.
_FIELD_WORDS = {"webhook_secret": "webhook secret", "webhook_url": "webhook URL",
                "min_severity": "minimum severity", "max_tlp": "highest TLP"}


def _in_form_words(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    def words(message: str) -> str:
        for name, label in _FIELD_WORDS.items():
            message = message.replace(name, label)
        return message
    return {key: [words(m) for m in messages] for key, messages in errors.items()}
