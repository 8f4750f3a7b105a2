"""The one write path (DESIGN.md, "The one path of data").

Everything that enters the store comes through here, inside one transaction per call: a
crash leaves all of a call's objects or none. Two entries, one store:

- `publish_notice`: the service's own notices (bulletins, feed notices): convert to STIX,
  sign each object as the last step, store those bytes, route by the notice's audience.
- `ingest`: third-party STIX (TAXII POST, upstream feeds): validate, give a default TLP to
  what has none, route by the object's own markings and the submitter, and store the
  object as received. The service never edits or re-signs someone else's object.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from distribution import routing

from . import access, schemas, sectors, tiers, timestamps
from .notices import SEVERITY_RANK, Notice
from .settings import CollectionSpec, Settings
from .signing import objects as signed
from .signing.keys import Signer
from .stix import convert, definitions, markings
from .stix.validate import InvalidObject, check
from .store import audit
from .store import notices as notice_store
from .store import objects as object_store
from .store.engine import read, write


@dataclass(frozen=True)
class Outcome:
    id: str
    version: str
    stored: bool  # False: rejected (see message) or a duplicate (see duplicate)
    message: str = ""
    duplicate: bool = False
    new_version: bool = False  # stored, and an earlier version of the id existed

    @property
    def ok(self) -> bool:
        return self.stored or self.duplicate


def third_party_audience(obj: dict, default_tlp: str, submitter: access.Principal | None,
                         compartment_names: Sequence[str],
                         sector_codes: Sequence[str] = ()) -> access.Audience:
    """Who a received object is for: its own markings, else the collection default.

    Sectors follow the submitter, or for a feed its configured sectors (none: all).
    TLP:AMBER+STRICT names the submitter's organisation and TLP:RED the submitter, since
    STIX has no standard way to name recipients; TLP 2.0 forbids sharing them wider.
    """
    tlp = tiers.tlp_of_markings(markings.marking_refs(obj)) or default_tlp
    if submitter is None:
        all_sectors, mask = not sector_codes, sectors.mask(sector_codes)
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
           submitter: access.Principal | None, received: Sequence[object],
           actor: str | None = None, sector_codes: Sequence[str] = (),
           keys: Mapping[str, Ed25519PublicKey] | None = None) -> list[Outcome]:
    """Validate and store third-party objects; one Outcome per received object, in order.

    An object carrying the service's signature extension is checked against `keys` (the
    service's JWKS) and the result recorded with it and reported in its Outcome.
    """
    default_tlp = collection.default_tlp or settings.taxii.default_tlp
    compartments = tuple(settings.compartments)
    origin = f"principal:{submitter.id}" if submitter else (actor or "service")
    outcomes: list[Outcome | None] = []
    batch: list[object_store.NewObject] = []
    batch_at: list[int] = []
    reserved = definitions.reserved(settings.taxii.title, settings.compartments)
    for index, obj in enumerate(received):
        try:
            checked = check(obj)
            if checked.id in reserved:
                outcomes.append(_own_definition(obj, checked, reserved[checked.id]))
                continue
        except InvalidObject as exc:
            outcomes.append(_rejected(obj, str(exc)))
            continue
        outcomes.append(None)
        batch_at.append(index)
        signature = _signature_check(obj, keys or {})
        batch.append(object_store.NewObject(
            id=checked.id, type=checked.type, spec_version=checked.spec_version,
            version=checked.version, version_us=checked.version_us,
            raw=json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(),
            audience=third_party_audience(obj, default_tlp, submitter, compartments,
                                           sector_codes),
            submitted_by=submitter.pk if submitter else None,
            collection_id=collection.id if collection.kind == "submitted" else None,
            origin=origin, signature=signature,
        ))
    if batch:
        with write(engine) as conn:
            existing = object_store.existing_ids(conn, origin, [item.id for item in batch])
            added = object_store.insert(conn, batch)
            routing.route(conn, _groups_of_received(batch, added, received, batch_at),
                          settings.tiers)
            audit.record(conn, actor or (submitter.name if submitter else "service"),
                         "submit", collection.alias, stored=sum(1 for a in added if a),
                         ids=[i.id for i, a in zip(batch, added, strict=True) if a][:100])
        for index, item, date_added in zip(batch_at, batch, added, strict=True):
            version = item.version or (timestamps.format_us(date_added) if date_added else "")
            message = "" if date_added else "this version was stored already"
            if item.signature:
                message = "; ".join(filter(None, [message, f"signature: {item.signature}"]))
            outcomes[index] = Outcome(
                item.id, version, stored=date_added is not None,
                duplicate=date_added is None, new_version=bool(date_added)
                and item.id in existing, message=message)
    return [o for o in outcomes if o is not None]



def _groups_of_received(batch, added, received, batch_at) -> list[routing.Group]:
    """Third-party objects grouped by what subscriptions filter on (audience, labels)."""
    groups: dict[tuple, list[tuple[int, str]]] = {}
    for item, date_added, index in zip(batch, added, batch_at, strict=True):
        if date_added is None:
            continue
        labels = received[index].get("labels") or []
        key = (item.audience, frozenset(x for x in labels if isinstance(x, str)))
        groups.setdefault(key, []).append((date_added, item.type))
    return [routing.Group(audience, None, 0, labels, tuple(objs))
            for (audience, labels), objs in groups.items()]


def _signature_check(obj: dict, keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """verified | bad | unknown-key for an object carrying our signature extension."""
    if signed.signature_of(obj) is None:
        return None
    return signed.verify(obj, keys.get).status


def _own_definition(obj: dict, checked, ours: dict) -> Outcome:
    """A copy of one of the service's definitions (another infoshare's TAXII collection
    carries the same ones) is a duplicate; anything else under that id is refused."""
    if signed.unsigned(obj) == ours:
        return Outcome(checked.id, checked.version or "", False, duplicate=True,
                       message="one of the service's own definitions")
    raise InvalidObject(f"{checked.id} is one of the service's own definitions")


def _rejected(obj: object, message: str) -> Outcome:
    fields = obj if isinstance(obj, dict) else {}
    object_id = fields.get("id") if isinstance(fields.get("id"), str) else "(no id)"
    version = fields.get("modified", fields.get("created"))
    return Outcome(object_id, version if isinstance(version, str) else "", False, message)


# --- the service's own notices: convert, sign, store, route ------------------------------

@dataclass(frozen=True)
class Published:
    report_id: str
    object_ids: list[str]
    version: str
    stored: int  # new object versions written
    unchanged: int  # objects whose content had not changed
    created: bool  # a new notice (else an update or a revoke)


def notice_audience(notice: Notice) -> access.Audience:
    recipients = frozenset(notice.recipients)
    return access.Audience(
        tlp=notice.tlp, all_sectors=notice.all_sectors,
        sector_mask=sectors.mask(notice.sectors), compartments=frozenset(notice.compartments),
        recipient_orgs=recipients if notice.tlp == "amber+strict" else frozenset(),
        recipient_principals=recipients if notice.tlp == "red" else frozenset(),
    )


def sign_object(signer: Signer, obj: dict) -> bytes:
    """The final step before storage: sign the canonical form, return the bytes to store."""
    return signed.serialise(signed.attach(obj, signer.sign(signed.signing_payload(obj))))


def _comparable(obj: dict) -> dict:
    """What must differ for a new version to be worth publishing."""
    clean = signed.unsigned(obj)
    clean.pop("modified", None)
    return clean


def _stamp(existing, ids_created: dict[str, str]) -> convert.Stamp:
    now = timestamps.now_us() // 1000 * 1000
    if existing is not None:  # modified must grow even within one millisecond
        now = max(now, timestamps.parse_us(existing.version) + 1000)
    return convert.Stamp(timestamps.format_stix(now), ids_created)


def publish_notice(engine: Engine, signer: Signer, tier_map: tiers.Tiers, notice: Notice,
                   publisher: access.Principal | None = None) -> Published:
    """Convert, sign, store and route one notice in one transaction.

    Publishing a notice again (same source and source_id) makes new versions of the
    objects whose content changed and leaves the others alone.
    """
    with write(engine) as conn:
        return _publish(conn, signer, tier_map, notice, publisher)


def publish_notices(engine: Engine, signer: Signer, tier_map: tiers.Tiers,
                    notices: Sequence[Notice]) -> list[Published | Exception]:
    """Publish many notices (a feed's), in one transaction when all go through.

    One transaction per notice costs more than the notice itself; when any notice of the
    batch fails, the batch is rolled back and each is published alone, so a bad notice
    still never costs the good ones. Failures come back as the exception, in order.
    """
    try:
        with write(engine) as conn:
            return [_publish(conn, signer, tier_map, notice, None) for notice in notices]
    except Exception:  # find the bad one(s): one transaction each
        results: list[Published | Exception] = []
        for notice in notices:
            try:
                results.append(publish_notice(engine, signer, tier_map, notice))
            except Exception as exc:
                results.append(exc)
        return results


def _publish(conn, signer: Signer, tier_map: tiers.Tiers, notice: Notice,
             publisher: access.Principal | None) -> Published:
    if not notice.source_id:
        notice = replace(notice, source_id=str(uuid.uuid4()))
    object_store.lock(conn)
    existing = notice_store.by_source(conn, notice.source, notice.source_id)
    objs = convert.convert(notice, _stamp(existing, {}))
    stored = {i: json.loads(raw) for i, raw in
              object_store.latest_raw(conn, [o["id"] for o in objs]).items()}
    if stored:
        created = {i: o["created"] for i, o in stored.items()}
        objs = convert.convert(notice, _stamp(existing, created))
    changed = [o for o in objs if o["id"] not in stored
               or _comparable(stored[o["id"]]) != _comparable(o)]
    audience = notice_audience(notice)
    added = object_store.insert(conn, [_new_object(signer, o, audience) for o in changed])
    routing.route(conn, [routing.Group(
        audience, notice.kind, SEVERITY_RANK.get(notice.severity, 0), frozenset(notice.labels),
        tuple((d, o["type"]) for d, o in zip(added, changed, strict=True) if d))], tier_map)
    report = objs[0]
    if changed or existing is None:
        notice_store.save(conn, _notice_row(notice, report, objs, publisher))
        action = "revoke" if notice.revoked else ("publish" if existing is None else "update")
        audit.record(conn, publisher.name if publisher else "service", action, report["id"],
                     title=notice.title, source=notice.source, objects=len(changed))
    return Published(report["id"], [o["id"] for o in objs],
                     report["modified"] if changed else (existing.version if existing else ""),
                     len(changed), len(objs) - len(changed), existing is None)


def _new_object(signer: Signer, obj: dict, audience: access.Audience,
                everywhere: bool = False) -> object_store.NewObject:
    version = obj.get("modified", obj.get("created"))
    return object_store.NewObject(
        id=obj["id"], type=obj["type"], spec_version="2.1", version=version,
        version_us=timestamps.parse_us(version) if version else None,
        raw=sign_object(signer, obj), audience=audience, everywhere=everywhere)


def _notice_row(notice: Notice, report: dict, objs: list[dict],
                publisher: access.Principal | None) -> dict:
    modified_us = timestamps.parse_us(report["modified"])
    return {
        "report_id": report["id"], "source": notice.source, "source_id": notice.source_id,
        "title": notice.title, "kind": notice.kind, "tlp": notice.tlp,
        "severity": notice.severity, "sector_mask": sectors.mask(notice.sectors),
        "all_sectors": notice.all_sectors, "revoked": notice.revoked,
        "published_by": publisher.pk if publisher else None,
        "created_us": timestamps.parse_us(report["created"]), "modified_us": modified_us,
        "version": report["modified"], "object_ids": [o["id"] for o in objs],
        "document": schemas.dump_notice(notice),
    }


class UnknownNotice(LookupError):
    pass



def revoke_notice(engine: Engine, signer: Signer, tier_map: tiers.Tiers,
                  principal: access.Principal | None, report_id: str,
                  known_compartments) -> Published:
    """Publish a revoked version of every object of a notice the principal may see."""
    with read(engine) as conn:
        row = (notice_store.get(conn, principal, report_id) if principal
               else notice_store.by_report(conn, report_id))
    if row is None:
        raise UnknownNotice(report_id)
    notice = schemas.load_bulletin(row.document, known_compartments, source=row.source)
    notice = replace(notice, source_id=row.source_id, revoked=True)
    return publish_notice(engine, signer, tier_map, notice, principal)


def ensure_definitions(engine: Engine, settings: Settings, signer: Signer) -> int:
    """Store the service's own definitions if missing; returns how many were new."""
    own, oasis = definitions.service_objects(settings.taxii.title, settings.compartments)
    items = [_new_object(signer, o, access.OPEN, everywhere=True) for o in own]
    items += [object_store.NewObject(
        id=o["id"], type=o["type"], spec_version="2.1", version=o["created"],
        version_us=timestamps.parse_us(o["created"]), raw=signed.serialise(o),
        audience=access.OPEN, everywhere=True) for o in oasis]
    with write(engine) as conn:
        added = object_store.insert(conn, items)
    return sum(1 for a in added if a is not None)
