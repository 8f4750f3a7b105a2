"""What a relaying `taxii` feed (one with `jwks`) does with each object it receives.

Pure rules, no database: the runner stores what is relayed through publish.ingest.

- An object signed by one of this hub's own keys is an echo (a loop brought it back):
  skipped, never stored.
- A signed object must verify against the keys pinned for the feed (feeds/peers.py);
  otherwise it is rejected, named in the feed's status. An unsigned one is rejected too
  while `require_signatures` holds (the default with `jwks`), except the OASIS TLP
  markings and the extension definitions, which are unsigned by design.
- TLP holds across the hop: up to `relay_max_tlp` (default green, at most amber) an
  object reaches this hub's readers by tier, as its markings say. AMBER+STRICT and RED go
  only to the principals named in `relay_to` (as TLP:RED naming them), and only one hop:
  an object the upstream itself relayed is never passed further at those levels. A
  marking this hub does not know (another hub's compartment) could mean anything, so an
  object carrying one is withheld.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from infoshare import access, tiers
from infoshare.signing import objects as signed
from infoshare.stix import markings
from infoshare.stix.definitions import is_unsigned_definition

from .peers import Origin, Pin

RESTRICTED = frozenset({"amber+strict", "red"})
RELAYABLE = ("clear", "green", "amber")  # relay_max_tlp's choices


@dataclass(frozen=True)
class Rules:
    feed: str
    pin: Pin
    pinned: Mapping[str, Ed25519PublicKey]  # pin.public_keys(), built once per run
    own_keys: Mapping[str, Ed25519PublicKey]
    require_signatures: bool
    max_tlp: str
    relay_to: tuple[str, ...]
    default_tlp: str
    known_marking: Callable[[str], bool]  # a TLP marking or one of this hub's compartments


@dataclass(frozen=True)
class Judgement:
    action: str  # relay | echo | reject | withhold
    message: str = ""
    kid: str | None = None
    origin: Origin | None = None
    hops: int = 0
    restricted: bool = False  # for the relay_to principals only

    @property
    def provenance(self) -> dict | None:
        if self.kid is None or self.origin is None:
            return None
        return {"kid": self.kid, "origin_identity": self.origin.identity,
                "origin_name": self.origin.name, "hops": self.hops}


def judge(obj: object, rules: Rules) -> Judgement:
    if not isinstance(obj, Mapping):
        return Judgement("reject", "not a JSON object")
    if signed.signature_of(obj) is not None:
        if signed.verify(obj, rules.own_keys.get).ok:
            return Judgement("echo", "signed by this hub: it came back through a loop")
        verdict = signed.verify(obj, rules.pinned.get)
        if not verdict.ok:
            return Judgement("reject", f"signature {verdict.status}: {verdict.message} "
                             f"(checked against the keys pinned for feed {rules.feed})")
        signer = Judgement("relay", kid=verdict.kid, origin=rules.pin.origin_of(verdict.kid),
                           hops=rules.pin.hops_of(verdict.kid) or 0)
    elif is_unsigned_definition(obj):
        return Judgement("relay")
    elif rules.require_signatures:
        return Judgement("reject", "unsigned: this feed relays only objects signed by a "
                                   "pinned key (require_signatures)")
    else:
        signer = Judgement("relay")
    return _within_tlp(obj, rules, signer)


# Types that carry no markings by nature and are for everyone: a hub's identities, its
# marking and extension definitions.
OPEN_TYPES = frozenset({"identity", "marking-definition", "extension-definition"})


def _within_tlp(obj: Mapping, rules: Rules, signer: Judgement) -> Judgement:
    refs = markings.marking_refs(obj)
    unknown = [r for r in refs if not rules.known_marking(r)]
    if unknown:
        return Judgement("withhold", f"carries a marking this hub does not know "
                         f"({unknown[0]}): relaying it could share it wider than it allows")
    tlp = tiers.tlp_of_markings(refs)
    if tlp is None and obj.get("type") not in OPEN_TYPES:
        return Judgement("withhold", "carries no TLP marking: the upstream shared it under "
                         "its collection's default, which this hub cannot know")
    tlp = tlp or rules.default_tlp
    if tlp in RESTRICTED:
        if not rules.relay_to:
            return Judgement("withhold", f"TLP:{tlp.upper()} is relayed only to the "
                             "principals named in relay_to (none)")
        if signer.hops:
            return Judgement("withhold", f"TLP:{tlp.upper()} is relayed one hop only, and "
                             f"{signer.origin.name if signer.origin else 'its origin'} is "
                             "not this feed's upstream")
        return Judgement("relay", kid=signer.kid, origin=signer.origin, hops=signer.hops,
                         restricted=True)
    if tiers.rank(tlp) > tiers.rank(rules.max_tlp):
        return Judgement("withhold", f"TLP:{tlp.upper()} is above relay_max_tlp "
                         f"({rules.max_tlp})")
    return signer


def restricted_audience(obj: Mapping, base: access.Audience, relay_to: tuple[str, ...]
                        ) -> access.Audience:
    """For the relay_to principals only, whatever their sectors: TLP:RED naming them."""
    return access.Audience(tlp="red", all_sectors=True, sector_mask=base.sector_mask,
                           compartments=base.compartments,
                           recipient_principals=frozenset(relay_to))
