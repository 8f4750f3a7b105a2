"""The one write path (DESIGN.md, "The one path of data").

Everything that enters the store comes through here, inside one transaction per call: a
crash leaves all of a call's objects or none. This module holds the path for third-party
STIX (TAXII POST, upstream feeds): validate, give a default TLP to what has none, route by
the object's own markings and the submitter, and store the object as received. The
service never edits or re-signs someone else's object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from . import access, sectors, tiers, timestamps
from .settings import CollectionSpec, Settings
from .stix import markings
from .stix.validate import InvalidObject, check
from .store import objects as object_store
from .store.engine import write

OPEN_TYPES = frozenset({"marking-definition", "extension-definition"})


@dataclass(frozen=True)
class Outcome:
    id: str
    version: str
    stored: bool  # False: rejected (see message) or a duplicate (see duplicate)
    message: str = ""
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.stored or self.duplicate


def third_party_audience(obj: dict, default_tlp: str, submitter: access.Principal | None,
                         compartment_names: Sequence[str]) -> access.Audience:
    """Who a received object is for: its own markings, else the collection default.

    Sectors follow the submitter (a feed's principal-less objects go to all sectors).
    TLP:AMBER+STRICT names the submitter's organisation and TLP:RED the submitter, since
    STIX has no standard way to name recipients; TLP 2.0 forbids sharing them wider.
    """
    if obj.get("type") in OPEN_TYPES:
        return access.OPEN
    tlp = tiers.tlp_of_markings(markings.marking_refs(obj)) or default_tlp
    if submitter is None:
        all_sectors, mask = True, 0
    else:
        all_sectors, mask = submitter.all_sectors, submitter.sector_mask
    orgs = frozenset({submitter.org}) if submitter and tlp == "amber+strict" else frozenset()
    names = frozenset({submitter.name}) if submitter and tlp == "red" else frozenset()
    return access.Audience(
        tlp=tlp, all_sectors=all_sectors or mask == sectors.ALL_MASK, sector_mask=mask,
        compartments=frozenset(markings.compartments_of(obj, compartment_names)),
        recipient_orgs=orgs, recipient_principals=names,
    )


def ingest(engine: Engine, settings: Settings, collection: CollectionSpec,
           submitter: access.Principal | None, received: Sequence[object]) -> list[Outcome]:
    """Validate and store third-party objects; one Outcome per received object, in order."""
    default_tlp = collection.default_tlp or settings.taxii.default_tlp
    compartments = tuple(settings.compartments)
    outcomes: list[Outcome | None] = []
    batch: list[object_store.NewObject] = []
    batch_at: list[int] = []
    for index, obj in enumerate(received):
        try:
            checked = check(obj)
        except InvalidObject as exc:
            outcomes.append(_rejected(obj, str(exc)))
            continue
        outcomes.append(None)
        batch_at.append(index)
        batch.append(object_store.NewObject(
            id=checked.id, type=checked.type, spec_version=checked.spec_version,
            version=checked.version, version_us=checked.version_us,
            raw=json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(),
            audience=third_party_audience(obj, default_tlp, submitter, compartments),
            submitted_by=submitter.pk if submitter else None,
            collection_id=collection.id if collection.kind == "submitted" else None,
        ))
    if batch:
        with write(engine) as conn:
            added = object_store.insert(conn, batch)
        for index, item, date_added in zip(batch_at, batch, added, strict=True):
            version = item.version or (timestamps.format_us(date_added) if date_added else "")
            outcomes[index] = Outcome(
                item.id, version, stored=date_added is not None,
                duplicate=date_added is None,
                message="" if date_added else "this version was stored already")
    return [o for o in outcomes if o is not None]


def _rejected(obj: object, message: str) -> Outcome:
    fields = obj if isinstance(obj, dict) else {}
    object_id = fields.get("id") if isinstance(fields.get("id"), str) else "(no id)"
    version = fields.get("modified", fields.get("created"))
    return Outcome(object_id, version if isinstance(version, str) else "", False, message)
