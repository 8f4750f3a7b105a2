"""The new-subscription form: posted fields -> the API's subscription JSON, so
SubscriptionSchema (and the webhook safety check) judge it exactly as the API does."""

from __future__ import annotations

import re

from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from distribution import webhooks

from .. import outbound
from ..schemas import SubscriptionSchema, subscription_columns
from . import form_errors

TEXT = ("name", "types", "labels", "min_severity", "max_tlp", "webhook_url", "webhook_secret")


def empty() -> dict:
    return {**{key: "" for key in TEXT}, "sectors": [], "kinds": []}


def from_form(form: MultiDict) -> dict:
    values = {key: form.get(key, "").strip() for key in TEXT}
    values.update(sectors=form.getlist("sectors"), kinds=form.getlist("kinds"))
    return values


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
    return doc


def columns(values: dict, settings) -> tuple[dict | None, dict[str, list[str]]]:
    """(store columns, None) when valid, else (None, errors by field)."""
    try:
        loaded = SubscriptionSchema().load(to_json(values))
    except ValidationError as exc:
        return None, form_errors.by_field(exc.messages, [])
    if loaded.get("webhook_url"):
        try:
            webhooks.check(loaded["webhook_url"], outbound.policy(settings),
                           settings.webhooks.allow_http_hosts)
        except webhooks.UnsafeWebhook as exc:
            return None, {"webhook_url": [str(exc)]}
    return subscription_columns(loaded), {}
