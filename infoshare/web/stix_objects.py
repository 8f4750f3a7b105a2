"""A bulletin's STIX as the viewer may see it: the latest version of each of its objects,
and every version of its report, each with its signature checked against the service's own
keys (the JWKS). Reads go through store.objects.page with the access predicate, exactly as
TAXII reads do, so the console never shows an object its viewer could not poll."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Connection

from .. import access
from ..settings import CollectionSpec
from ..signing import objects as signed
from ..store import objects as object_store
from ..store.schema import objects

# A lens over every stored object; access.visible still applies to each row.
EVERYTHING = CollectionSpec(id="console", alias="console", title="console", description="",
                            kind="all")


@dataclass(frozen=True)
class ObjectView:
    id: str
    type: str
    name: str
    version: str
    revoked: bool
    verdict: signed.Verdict
    text: str  # pretty JSON of the stored object

    @property
    def signature(self) -> str:
        return "OK" if self.verdict.ok else f"FAILED ({self.verdict.status})"


@dataclass(frozen=True)
class VersionView:
    version: str
    date_added: int
    revoked: bool
    verdict: signed.Verdict

    @property
    def signature(self) -> str:
        return "OK" if self.verdict.ok else f"FAILED ({self.verdict.status})"


def _rows(conn: Connection, principal: access.Principal, filters: object_store.Filters,
          limit: int):
    return object_store.page(conn, principal, EVERYTHING, filters, None, limit,
                             (objects.c.raw,))[:limit]


def latest(conn: Connection, principal: access.Principal, object_ids: list[str],
           keys: Mapping[str, Ed25519PublicKey]) -> list[ObjectView]:
    """The latest visible version of each object, in the bulletin's order (report first)."""
    rows = _rows(conn, principal, object_store.Filters(ids=tuple(object_ids)),
                 len(object_ids) + 1)
    found = {view.id: view for view in (_object_view(row.raw, keys) for row in rows)}
    return [found[i] for i in object_ids if i in found]


def history(conn: Connection, principal: access.Principal, report_id: str,
            keys: Mapping[str, Ed25519PublicKey], limit: int = 200) -> list[VersionView]:
    """Every visible version of the report, newest first."""
    filters = object_store.Filters(ids=(report_id,), versions=("all",))
    views = []
    for row in _rows(conn, principal, filters, limit):
        obj = json.loads(row.raw)
        views.append(VersionView(obj.get("modified", ""), row.date_added,
                                 bool(obj.get("revoked")), signed.verify(obj, keys.get)))
    return views[::-1]


def _object_view(raw: bytes, keys: Mapping[str, Ed25519PublicKey]) -> ObjectView:
    obj = json.loads(raw)
    return ObjectView(
        id=obj["id"], type=obj["type"], name=_name(obj),
        version=obj.get("modified", obj.get("created", "")), revoked=bool(obj.get("revoked")),
        verdict=signed.verify(obj, keys.get),
        text=json.dumps(obj, indent=2, ensure_ascii=False))


def _name(obj: dict) -> str:
    if obj["type"] == "relationship":
        return f"{obj['source_ref'].split('--')[0]} {obj['relationship_type']} " \
               f"{obj['target_ref'].split('--')[0]}"
    if obj["type"] == "indicator":
        return obj.get("pattern", obj.get("name", ""))
    return obj.get("name", "")

