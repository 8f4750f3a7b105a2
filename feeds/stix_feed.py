"""A STIX 2.1 bundle at a URL or a local path -> third-party objects, stored as received.

The service never edits or re-signs someone else's objects (docs/ARCHITECTURE.md), so this adapter
only checks that the document is a bundle and hands its objects to the runner, which
validates each one through publish.ingest and reports the invalid ones as rejected. Objects
go in chunks, each its own transaction, so one failing batch costs only that batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from .base import Context, FeedError, Fetched, StixObjects

OPTIONS: dict[str, type] = {}
ACCEPT = ("application/stix+json", "application/json")
CHUNK = 1000


def collect(ctx: Context) -> Fetched:
    response = ctx.get(ctx.spec.url, conditional=True, accept=ACCEPT)
    if response.not_modified:
        return Fetched(not_modified=True)
    objects = bundle_objects(response.body)
    return Fetched(items=[StixObjects(objects[i:i + CHUNK])
                          for i in range(0, len(objects), CHUNK)], fetched=len(objects))


def bundle_objects(body: bytes) -> list:
    try:
        bundle = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedError(f"not valid JSON: {exc}") from None
    if not isinstance(bundle, Mapping) or bundle.get("type") != "bundle":
        raise FeedError('not a STIX bundle (a JSON object with "type": "bundle")')
    objects = bundle.get("objects", [])
    if not isinstance(objects, list):
        raise FeedError("the bundle's objects is not a list")
    return objects
