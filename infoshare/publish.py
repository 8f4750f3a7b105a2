"""The one write path (docs/ARCHITECTURE.md, "The one path of data").

Everything that enters the store comes through here, inside one write transaction per
call: a crash leaves all of a call's objects or none. Two entries, one store:

- `publish_notice`: the service's own notices (bulletins, feed notices): convert to STIX
  and sign each object as the last step off the write lock (drafts.py), then store those
  bytes and route by the notice's audience under it, if nothing the draft was prepared
  from has moved meanwhile.
- `ingest`: third-party STIX (TAXII POST, upstream feeds): validate, give a default TLP to
  what has none, route by the object's own markings and the submitter, and store the
  object as received. The service never edits or re-signs someone else's object.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Connection, Engine

from distribution import routing

from . import access, drafts, schemas, sectors, strictjson, tiers, timestamps
from .notices import SEVERITY_RANK, Notice
from .settings import CollectionSpec, Settings
from .signing import canonical
from .signing import objects as signed
from .signing.keys import Signer
from .stix import definitions, markings
from .stix.ids import IdSpace
from .stix.validate import InvalidObject, check
from .store import audit, claims, provenance
from .store import cves as cve_store
from .store import notices as notice_store
from .store import objects as object_store
from .store.engine import read, write
from .turns import publishing


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
                         compartment_names: Sequence[str], ids: IdSpace,
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
        compartments=frozenset(markings.compartments_of(obj, compartment_names, ids)),
        recipient_orgs=orgs, recipient_principals=names,
    )


@dataclass(frozen=True)
class Relay:
    """What a relaying feed adds to ingest, per received object (by index): the exact
    bytes received, an audience narrower than the markings give (relay_to), and where the
    object came from (feeds/relay.py)."""

    raws: Sequence[bytes | None] = ()
    audiences: Mapping[int, access.Audience] = field(default_factory=dict)
    provenance: Mapping[int, dict] = field(default_factory=dict)
    feed: str = ""


@publishing
def ingest(engine: Engine, settings: Settings, ids: IdSpace, collection: CollectionSpec,
           submitter: access.Principal | None, received: Sequence[object],
           actor: str | None = None, sector_codes: Sequence[str] = (),
           keys: Mapping[str, Ed25519PublicKey] | None = None,
           relay: Relay | None = None,
           finish: Callable[[Connection, list[Outcome]], None] | None = None,
           ) -> list[Outcome]:
    """Validate and store third-party objects; one Outcome per received object, in order.

    `finish` runs in the transaction that stores the objects, with their outcomes (a TAXII
    status is completed there, so it can never disagree with what was stored).

    An id belongs to whoever stored it first (store/objects.py): an object under an id
    another origin owns is a failure, worded the same whether or not the submitter may
    see the owner's object.

    An object carrying the service's signature extension is checked against `keys` (the
    service's JWKS) and the result recorded with it and reported in its Outcome.
    """
    relay = relay or Relay()
    default_tlp = collection.default_tlp or settings.taxii.default_tlp
    compartments = tuple(settings.compartments)
    origin = f"principal:{submitter.id}" if submitter else (actor or "service")
    outcomes: list[Outcome | None] = []
    batch: list[object_store.NewObject] = []
    batch_at: list[int] = []
    reserved = definitions.reserved(settings.taxii.title, settings.compartments, ids,
                                    settings.taxii.contact)
    for index, obj in enumerate(received):
        try:
            checked = check(obj)
            if checked.id in reserved:
                outcomes.append(_own_definition(obj, checked, reserved[checked.id]))
                continue
            as_received = relay.raws[index] if index < len(relay.raws) else None
            raw = (_received_bytes(obj, as_received) if as_received is not None
                   else _strict_bytes(obj, parsed_strictly=submitter is not None))
        except InvalidObject as exc:
            outcomes.append(_rejected(obj, str(exc)))
            continue
        outcomes.append(None)
        batch_at.append(index)
        signature = _signature_check(obj, keys or {})
        batch.append(object_store.NewObject(
            id=checked.id, type=checked.type, spec_version=checked.spec_version,
            version=checked.version, version_us=checked.version_us, raw=raw,
            audience=relay.audiences.get(index) or third_party_audience(
                obj, default_tlp, submitter, compartments, ids, sector_codes),
            submitted_by=submitter.pk if submitter else None,
            collection_id=collection.id if collection.kind == "submitted" else None,
            origin=origin, signature=signature,
        ))
    if batch:
        with write(engine) as conn:
            added = object_store.insert(conn, batch, reader=submitter)
            routing.route(conn, _groups_of_received(batch, added, received, batch_at),
                          settings.tiers)
            stored = [i.id for i, a in zip(batch, added, strict=True) if isinstance(a, int)]
            provenance.record(conn, relay.feed, [
                (a, relay.provenance[index]) for index, a in zip(batch_at, added, strict=True)
                if isinstance(a, int) and index in relay.provenance])
            audit.record(conn, actor or (submitter.name if submitter else "service"),
                         "submit", collection.alias, stored=len(stored), ids=stored[:100])
            for index, item, date_added in zip(batch_at, batch, added, strict=True):
                outcomes[index] = _outcome(item, date_added, item.id in added.earlier)
            if finish is not None:
                finish(conn, outcomes)
    elif finish is not None:
        with write(engine) as conn:
            finish(conn, outcomes)
    return outcomes



def _received_bytes(obj: dict, raw: bytes) -> bytes:
    """Bytes as an upstream served them, kept only when they are strict JSON (no repeated
    member names) and their RFC 8785 form is the validated object's: Python's == takes 1
    for true, which a signature does not."""
    try:
        same = canonical.dumps(strictjson.loads(raw)) == canonical.dumps(obj)
    except ValueError as exc:
        raise InvalidObject(f"not strict JSON: {exc}") from None
    if not same:
        raise InvalidObject("the received bytes do not match the parsed object")
    return raw


def _strict_bytes(obj: dict, parsed_strictly: bool) -> bytes:
    """The bytes to store: strict JSON only (no NaN or Infinity, no lone surrogates, no
    integers beyond STIX's range), whatever path the object came by. A TAXII POST body was
    parsed strictly at the door; a feed's upstream JSON was not, so its bytes are read
    back strictly once."""
    try:
        raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                         allow_nan=False).encode()
        if not parsed_strictly:
            strictjson.loads(raw)
    except ValueError as exc:  # UnicodeEncodeError and StrictJSONError are ValueErrors
        raise InvalidObject(f"not strict JSON: {exc}") from None
    return raw


FOREIGN_ID = ("this id belongs to another publisher; only the origin that first stored it "
              "adds versions (choose a new id for your object)")


def _outcome(item: object_store.NewObject, date_added, existed: bool) -> Outcome:
    if date_added == object_store.FOREIGN:
        return Outcome(item.id, item.version or "", False, FOREIGN_ID)
    stored = isinstance(date_added, int)
    version = item.version or (timestamps.format_us(date_added) if stored else "")
    message = "" if stored else "this version was stored already"
    if item.signature:
        message = "; ".join(filter(None, [message, f"signature: {item.signature}"]))
    return Outcome(item.id, version, stored=stored, duplicate=not stored,
                   new_version=stored and existed, message=message)


def _groups_of_received(batch, added, received, batch_at) -> list[routing.Group]:
    """Third-party objects grouped by what subscriptions filter on (audience, labels)."""
    groups: dict[tuple, list[tuple[int, str]]] = {}
    for item, date_added, index in zip(batch, added, batch_at, strict=True):
        if not isinstance(date_added, int):
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
    carries the same ones) is a duplicate; anything else under that id is refused.

    Extension definitions have fixed ids everywhere but name their installation as
    producer (created_by_ref), so another installation's copy differs only there.
    """
    if _definition_content(signed.unsigned(obj)) == _definition_content(ours):
        return Outcome(checked.id, checked.version or "", False, duplicate=True,
                       message="one of the service's own definitions")
    raise InvalidObject(f"{checked.id} is one of the service's own definitions")


def _definition_content(obj: dict) -> dict:
    """What must match: not the version (a renamed hub's identity has a later one), and
    for extension definitions not the producer."""
    ignored = {"modified"} | ({"created_by_ref"} if obj.get("type") == "extension-definition"
                              else set())
    return {k: v for k, v in obj.items() if k not in ignored}


def claimed(obj: object) -> tuple[str, str]:
    """The id and version a received object says it has, before anything is checked."""
    fields = obj if isinstance(obj, dict) else {}
    object_id = fields.get("id") if isinstance(fields.get("id"), str) else "(no id)"
    version = fields.get("modified", fields.get("created"))
    return object_id, version if isinstance(version, str) else ""


def _rejected(obj: object, message: str) -> Outcome:
    return Outcome(*claimed(obj), False, message)


# --- the service's own notices: prepare off the lock, then store and route -------------

@dataclass(frozen=True)
class Authority:
    """The service's voice: the id space it names its objects in, the key it signs with."""

    signer: Signer
    ids: IdSpace


@dataclass(frozen=True)
class Published:
    report_id: str
    object_ids: list[str]
    version: str
    stored: int  # new object versions written
    unchanged: int  # objects whose content had not changed
    created: bool  # a new notice (else an update or a revoke)
    attempts: int = 1  # drafts prepared: more than 1 when what one read moved (REDO_LIMIT)


class UnknownNotice(LookupError):
    """No such notice, or not one the principal may see: both answer 404."""


class NotYours(PermissionError):
    """A notice the principal may see but not change: 403."""


class IdTaken(RuntimeError):
    """An id a notice needs is owned by another origin (possible only for notices whose ids
    predate the installation's secret namespace); nothing was stored."""


def may_manage(principal: access.Principal, row) -> bool:
    """The ownership rule for notices: admins, and publishers of the organisation a
    bulletin belongs to. Feed notices belong to the service (org ""): admins only."""
    if principal.has_role("admin"):
        return True
    return (principal.has_role("publisher") and bool(row.org)
            and row.org == principal.org)


def manageable(engine: Engine, principal: access.Principal, report_id: str):
    """The notice row `principal` may update or revoke; UnknownNotice when it may not see
    it (like one that does not exist), NotYours when it may see but not change it."""
    with read(engine) as conn:
        row = notice_store.get(conn, principal, report_id)
    if row is None:
        raise UnknownNotice(report_id)
    if not may_manage(principal, row):
        raise NotYours(report_id)
    return row


# How many times a publish prepares its draft again when what it read moved before it
# took the lock (another publish of the same notice, a CVE claimed); then, last resort,
# it prepares under the lock, where nothing moves.
REDO_LIMIT = 3


@publishing
def publish_notice(engine: Engine, authority: Authority, tier_map: tiers.Tiers,
                   notice: Notice, publisher: access.Principal | None = None) -> Published:
    """Convert, sign, store and route one notice; all of its objects or none.

    Converting and signing happen in a read transaction (drafts.prepare), off the store's
    write lock; the write transaction only checks that nothing the draft was prepared
    from has moved, then stamps date_added, inserts, routes and records. Publishing a
    notice again (same organisation, source and source_id) makes new versions of the
    objects whose content or audience changed and leaves the others alone. Callers check
    the ownership rule (may_manage) before updating someone's notice.
    """
    notice = _with_source_id(notice)
    for attempt in range(1, REDO_LIMIT + 1):
        with read(engine) as conn:
            draft = drafts.prepare(conn, authority, notice)
        with write(engine) as conn:
            claims.claim(conn, *drafts.names(draft))
            if not drafts.moved(conn, draft):
                return _store(conn, draft, tier_map, publisher, attempt)
    with write(engine) as conn:  # its names are known only once prepared: claim all
        claims.claim_all(conn)
        return _store(conn, drafts.prepare(conn, authority, notice), tier_map, publisher,
                      REDO_LIMIT + 1)


@publishing
def publish_notices(engine: Engine, authority: Authority, tier_map: tiers.Tiers,
                    notices: Sequence[Notice]) -> list[Published | Exception]:
    """Publish many notices (a feed's), in one transaction when all go through.

    One transaction per notice costs more than the notice itself. The drafts are prepared
    together off the lock; under it, a draft whose snapshot moved (a concurrent publish,
    or an earlier notice of the same batch with the same source_id) is prepared again
    there. When any notice of the batch fails, the batch is rolled back and each is
    published alone, so a bad notice still never costs the good ones. Failures come back
    as the exception, in order.
    """
    notices = [_with_source_id(n) for n in notices]
    try:
        with read(engine) as conn:
            prepared = [drafts.prepare(conn, authority, n) for n in notices]
        with write(engine) as conn:
            names = [drafts.names(draft) for draft in prepared]
            claims.claim(conn, set().union(*(w for w, _ in names)),
                               set().union(*(r for _, r in names)))
            return [_store(conn, _current(conn, authority, draft), tier_map, None, 1)
                    for draft in prepared]
    except Exception:  # find the bad one(s): one transaction each
        results: list[Published | Exception] = []
        for notice in notices:
            try:
                results.append(publish_notice(engine, authority, tier_map, notice))
            except Exception as exc:
                results.append(exc)
        return results


def _with_source_id(notice: Notice) -> Notice:
    return notice if notice.source_id else replace(notice, source_id=str(uuid.uuid4()))


def _current(conn, authority: Authority, draft: drafts.Draft) -> drafts.Draft:
    """The draft, or a new one when its snapshot moved: an earlier notice of the batch
    with the same source_id, whose names the batch claimed too. A new draft that needs
    names the batch did not claim (another publish changed the notice meanwhile) raises
    Unclaimed, and the batch falls back to one transaction per notice."""
    if drafts.moved(conn, draft):
        fresh = drafts.prepare(conn, authority, draft.notice)
        claims.claim(conn, *drafts.names(fresh))
        if drafts.moved(conn, fresh):  # what it read moved before its new names were ours
            raise claims.Unclaimed("a batch's notice moved under another publish")
        return fresh
    return draft


def _store(conn, draft: drafts.Draft, tier_map: tiers.Tiers,
           publisher: access.Principal | None, attempts: int) -> Published:
    """With a draft that has not moved and its names claimed: claim CVEs, save the notice
    row, audit, then insert (which takes the store clock to stamp) and route. The order
    matters on PostgreSQL: what needs no date_added is written before the clock, which
    every writer queues for. Nothing here converts or signs."""
    cve_store.claim(conn, draft.claims, draft.shared)
    report, existing = draft.objs[0], draft.existing
    if draft.changed or existing is None:
        _record(conn, draft, publisher)
    added = object_store.insert(conn, draft.items)
    taken = [i.id for i, d in zip(draft.items, added, strict=True) if d == object_store.FOREIGN]
    if taken:
        raise IdTaken(f"ids of this notice belong to another publisher: {', '.join(taken)}")
    _route(conn, draft, added, tier_map)
    return Published(report["id"], [o["id"] for o in draft.objs],
                     report["modified"] if draft.changed else
                     (existing.version if existing else ""),
                     len(draft.changed), draft.unchanged, existing is None, attempts)


def _route(conn, draft: drafts.Draft, added, tier_map: tiers.Tiers) -> None:
    notice = draft.notice
    stored = tuple((d, i.type) for d, i in zip(added, draft.items, strict=True)
                   if isinstance(d, int))
    routing.route(conn, [routing.Group(
        draft.audience, notice.kind, SEVERITY_RANK.get(notice.severity, 0),
        frozenset(notice.labels), stored, draft.place)], tier_map)


def _record(conn, draft: drafts.Draft, publisher: access.Principal | None) -> None:
    """The notice row (for updates, revokes and the bulletin list) and the audit entry."""
    notice, report, existing = draft.notice, draft.objs[0], draft.existing
    notice_store.save(conn, {**draft.row, "published_by": publisher.pk if publisher else None},
                      exists=existing is not None)
    action = "revoke" if notice.revoked else ("publish" if existing is None else "update")
    audit.record(conn, publisher.name if publisher else "service", action, report["id"],
                 title=notice.title, source=notice.source, org=notice.org,
                 objects=len(draft.changed))


def revoke_notice(engine: Engine, authority: Authority, tier_map: tiers.Tiers,
                  actor: access.Principal | None, row, known_compartments) -> Published:
    """Publish a revoked version of every object of a notice (a row from manageable(), or
    the service's own lookup for a feed's cancel)."""
    notice = schemas.load_bulletin(row.document, known_compartments, source=row.source)
    notice = replace(notice, source_id=row.source_id, org=row.org, revoked=True)
    return publish_notice(engine, authority, tier_map, notice, actor)


def _renewed(obj: dict, stored: object_store.Stored | None) -> dict:
    """A definition whose content changed since it was stored (the hub renamed in
    taxii.title, a new contact) gets a new version; an unchanged one keeps the stored
    version, so a restart stores nothing."""
    if stored is None or "modified" not in obj:
        return obj
    old = signed.unsigned(json.loads(stored.raw))
    if {**old, "modified": obj["modified"]} == obj:
        return {**obj, "modified": old["modified"]}
    return {**obj, "modified": timestamps.format_stix(timestamps.now_us())}


def ensure_definitions(engine: Engine, settings: Settings, authority: Authority) -> int:
    """Store the service's own definitions if missing; returns how many were new."""
    own, unsigned = definitions.service_objects(settings.taxii.title, settings.compartments,
                                                authority.ids, settings.taxii.contact)
    with read(engine) as conn:
        stored = object_store.latest_stored(conn, [o["id"] for o in own])
    own = [_renewed(o, stored.get(o["id"])) for o in own]
    items = [drafts.new_object(authority.signer, o, access.OPEN, everywhere=True)
             for o in own]
    items += [object_store.NewObject(
        id=o["id"], type=o["type"], spec_version="2.1",
        version=o.get("modified", o["created"]),
        version_us=timestamps.parse_us(o.get("modified", o["created"])),
        raw=signed.serialise(o), audience=access.OPEN, everywhere=True) for o in unsigned]
    with write(engine) as conn:
        added = object_store.insert(conn, items)
    taken = [i.id for i, a in zip(items, added, strict=True) if a == object_store.FOREIGN]
    if taken:  # a reader would meet someone else's object where ours should be
        raise IdTaken(f"the service's definitions are stored by another origin: "
                      f"{', '.join(taken)}")
    return sum(1 for a in added if isinstance(a, int))
