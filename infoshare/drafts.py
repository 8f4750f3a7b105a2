"""A notice's next versions, prepared off the store's write lock (publish.py stores them).

Converting a notice and signing its objects is most of a publish (issue 12: 79% of it).
Done inside the write transaction it serialised every publisher behind the store's one
write lock, so `prepare` does it in a read transaction instead, against one snapshot: the
notice row, the CVEs other notices share, and the latest stored version of every id the
notice has or had. A Draft remembers what it read; once publish.py has claimed its
`names` (store/objects.py), `moved` tells whether any of that changed since (another
publish of the same notice, a CVE claimed), in which case the draft is stale and
publish.py prepares it again.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection, Row

from . import access, schemas, sectors, timestamps
from .geo import areas as geo_areas
from .notices import Notice
from .signing import objects as signed
from .signing.keys import Signer
from .stix import convert
from .stix.ids import IdSpace
from .store import cves as cve_store
from .store import notices as notice_store
from .store import objects as object_store

if TYPE_CHECKING:
    from .publish import Authority


@dataclass(frozen=True)
class Draft:
    """What one publish will store, and the snapshot it was prepared against."""

    notice: Notice
    audience: access.Audience
    existing: Row | None  # the notice's row as read (None: a new notice)
    shared: dict[str, str]  # cve -> public vulnerability id, as read
    seen: dict[str, int | None]  # id -> latest stored version_us as read (None: none)
    objs: list[dict]  # every object of the notice, the report first
    changed: list[dict]  # the new versions: changed objects, then dropped ones revoked
    items: list[object_store.NewObject]  # `changed`, signed
    unchanged: int  # objects of the notice whose content and audience had not changed
    claims: dict[str, str]  # cve -> vulnerability id this open notice minted
    place: BaseGeometry | None  # where the notice is, for routing (geo/areas.py)
    row: dict  # the notice's row to save, but for who published it


def notice_audience(notice: Notice) -> access.Audience:
    recipients = frozenset(notice.recipients)
    return access.Audience(
        tlp=notice.tlp, all_sectors=notice.all_sectors,
        sector_mask=sectors.mask(notice.sectors), compartments=frozenset(notice.compartments),
        recipient_orgs=recipients if notice.tlp == "amber+strict" else frozenset(),
        recipient_principals=recipients if notice.tlp == "red" else frozenset(),
    )


def prepare(conn: Connection, authority: Authority, notice: Notice) -> Draft:
    """Convert, compare and sign one notice against what `conn` reads (a read transaction,
    or the write transaction of a last-resort publish). `notice` has its source_id."""
    existing = notice_store.by_source(conn, notice.source, notice.org, notice.source_id)
    space = (IdSpace(uuid.UUID(existing.id_namespace))
             if existing is not None and existing.id_namespace else authority.ids)
    shared = cve_store.shared(conn, notice.vulnerabilities)
    objs = convert.convert(notice, _stamp(existing, {}, {}), authority.ids, space, shared)
    ids = [o["id"] for o in objs]
    had = list(existing.object_ids) if existing is not None else []
    stored = object_store.latest_stored(conn, ids + had)
    before = {i: json.loads(s.raw) for i, s in stored.items()}
    if stored:  # again, keeping each id's first `created`, after every stored version
        created = {i: o["created"] for i, o in before.items() if "created" in o}
        objs = convert.convert(notice, _stamp(existing, stored, created), authority.ids,
                               space, shared)
    audience = notice_audience(notice)
    # Audience is content: a narrower or wider audience re-versions every object.
    changed = [o for o in objs if o["id"] not in stored or stored[o["id"]].audience != audience
               or _comparable(before[o["id"]]) != _comparable(o)]
    unchanged = len(objs) - len(changed)
    changed += _dropped(stored, before, had, objs, audience, objs[0]["modified"])
    return Draft(notice, audience, existing, shared,
                 {i: stored[i].version_us if i in stored else None for i in {*ids, *had}},
                 objs, changed, [new_object(authority.signer, o, audience) for o in changed],
                 unchanged, _claims(notice, audience, objs),
                 geo_areas.notice_place(notice.locations), _notice_row(notice, objs, existing))


def names(draft: Draft) -> tuple[set[str], set[str]]:
    """What `moved` checks, to claim before checking it (store/claims.py): the names the
    publish changes (the notice, every id it has or had, the CVEs it mints), and those it
    only relies on (the other CVEs it names, the shared vulnerabilities it references).
    Whoever could move any of these claims it to change it: a publish of the same notice
    its ids, an open notice minting a CVE that CVE, the owner of a shared vulnerability
    its id."""
    notice = draft.notice
    writes = ({f"notice\0{notice.source}\0{notice.org}\0{notice.source_id}"} | set(draft.seen)
              | {f"cve\0{cve}" for cve in draft.claims})
    reads = {f"cve\0{cve}" for cve in notice.vulnerabilities} | set(draft.shared.values())
    return writes, reads - writes


def moved(conn: Connection, draft: Draft) -> bool:
    """Whether what the draft was prepared against changed since; call with its names
    claimed, so nothing can change between this answer and the draft's insert."""
    row = notice_store.by_source(conn, draft.notice.source, draft.notice.org,
                                 draft.notice.source_id)
    if (row is None) != (draft.existing is None) or (
            row is not None and row.version != draft.existing.version):
        return True
    if cve_store.shared(conn, draft.notice.vulnerabilities) != draft.shared:
        return True
    latest = object_store.latest_versions(conn, list(draft.seen))
    return any(latest.get(i) != version for i, version in draft.seen.items())


def is_open(audience: access.Audience) -> bool:
    """Every reader may see it: TLP:CLEAR, every sector, no compartment."""
    return audience.tlp == "clear" and audience.all_sectors and not audience.compartments


def _claims(notice: Notice, audience: access.Audience, objs: list[dict]) -> dict[str, str]:
    if not is_open(audience) or notice.revoked:
        return {}
    return {o["name"]: o["id"] for o in objs if o["type"] == "vulnerability"}


def _stamp(existing, stored: dict[str, object_store.Stored],
           created: dict[str, str]) -> convert.Stamp:
    """The new versions' `modified`: now, to the millisecond, but always after the notice's
    version and every stored version of its ids, even within one millisecond; `moved`
    then guarantees nothing was stored in between, so `modified` grows strictly per id."""
    floor = [timestamps.parse_us(existing.version)] if existing is not None else []
    floor += [s.version_us for s in stored.values()]
    now = timestamps.now_us() // 1000 * 1000
    if floor:
        now = max(now, max(floor) // 1000 * 1000 + 1000)
    return convert.Stamp(timestamps.format_stix(now), created)


def _comparable(obj: dict) -> dict:
    """What must differ for a new version to be worth publishing."""
    clean = signed.unsigned(obj)
    clean.pop("modified", None)
    return clean


def _dropped(stored, before, had: list[str], objs: list[dict], audience: access.Audience,
             now: str) -> list[dict]:
    """Objects an earlier version of the notice had and this one has not: revoked, for
    the notice's new audience, so that they neither stay live nor stay visible to readers
    the notice no longer names."""
    kept = {o["id"] for o in objs}
    revoked = []
    for object_id in dict.fromkeys(i for i in had if i not in kept and i in stored):
        obj = signed.unsigned(before[object_id])
        if obj.get("revoked") and stored[object_id].audience == audience:
            continue
        revoked.append({**obj, "modified": max(now, obj.get("modified", now)),
                        "revoked": True})
    return revoked


def _notice_row(notice: Notice, objs: list[dict], existing) -> dict:
    report = objs[0]
    return {
        "report_id": report["id"], "source": notice.source, "source_id": notice.source_id,
        "org": notice.org, "id_namespace": existing.id_namespace if existing else None,
        "title": notice.title, "kind": notice.kind, "tlp": notice.tlp,
        "severity": notice.severity, "sector_mask": sectors.mask(notice.sectors),
        "all_sectors": notice.all_sectors, "revoked": notice.revoked,
        "created_us": timestamps.parse_us(report["created"]),
        "modified_us": timestamps.parse_us(report["modified"]),
        "issued_us": timestamps.parse_us(report["published"]),
        "version": report["modified"], "object_ids": [o["id"] for o in objs],
        "document": schemas.dump_notice(notice),
    }


def sign_object(signer: Signer, obj: dict) -> bytes:
    """The final step before storage: sign the canonical form, return the bytes to store."""
    return signed.serialise(signed.attach(obj, signer.sign(signed.signing_payload(obj))))


def new_object(signer: Signer, obj: dict, audience: access.Audience,
               everywhere: bool = False) -> object_store.NewObject:
    version = obj.get("modified", obj.get("created"))
    return object_store.NewObject(
        id=obj["id"], type=obj["type"], spec_version="2.1", version=version,
        version_us=timestamps.parse_us(version) if version else None,
        raw=sign_object(signer, obj), audience=audience, everywhere=everywhere)
