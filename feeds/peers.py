"""Pinned keys of upstream hubs: what a relaying `taxii` feed verifies against.

A feed with `jwks` (a URL or a file of the upstream's JWKS) takes the upstream's keys
once, on its first run, and keeps them in `<data_dir>/peers/<feed>.json`; only `infoshare
feeds pin NAME` fetches them again, deliberately. Keys never come from the objects or
the pages a feed receives: a hub that relays could otherwise sign anything in another's
name. An infoshare JWKS names its hub (`infoshare.identity`, `infoshare.name`) and links
the keys that hub itself pinned (`infoshare.peers`): pinning takes those too, tagged with
the hub they belong to, so a chain A -> B -> C verifies A's objects at C with what C
pinned from B. This hub serves the union of its pins at /.well-known/infoshare-peers.json
so its own consumers can do the same.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from infoshare import timestamps
from infoshare.signing import jwk

from .base import FeedError

log = logging.getLogger(__name__)
PEERS_PATH = "/.well-known/infoshare-peers.json"
MAX_KEYS_PER_HUB = 64  # an upstream offering more is refusing to be pinned
MAX_HUBS = 64


@dataclass(frozen=True)
class Origin:
    """Whose key: the hub's identity id and name as its JWKS states them."""

    identity: str
    name: str


@dataclass(frozen=True)
class Pin:
    feed: str
    source: str
    pinned_at: str
    keys: tuple[dict, ...]  # JWKs, each with "origin": {"identity", "name"} and "hops"

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return jwk.from_jwks({"keys": list(self.keys)})

    def origin_of(self, kid: str) -> Origin | None:
        for entry in self.keys:
            if entry.get("kid") == kid:
                return Origin(**entry["origin"])
        return None

    def hops_of(self, kid: str) -> int | None:
        """0: the upstream's own key; 1 and more: a key the upstream itself pinned."""
        return next((int(e.get("hops", 0)) for e in self.keys if e.get("kid") == kid), None)

    def document(self) -> dict:
        return {"feed": self.feed, "source": self.source, "pinned_at": self.pinned_at,
                "keys": list(self.keys)}


def path(data_dir: Path, feed: str) -> Path:
    """Any feed name settings accept names one file: quoted, so it cannot leave peers/."""
    return data_dir / "peers" / f"{quote(feed, safe='')[:200]}.json"


def load(data_dir: Path, feed: str) -> Pin | None:
    try:
        document = json.loads(path(data_dir, feed).read_text())
        return Pin(document["feed"], document["source"], document["pinned_at"],
                   tuple(document["keys"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FeedError(f"the pinned keys of {feed} cannot be read: {exc}") from None


def save(data_dir: Path, pin: Pin) -> None:
    """Atomically: a half-written pin would make every later run refuse everything."""
    target = path(data_dir, pin.feed)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".pin-")
    with os.fdopen(fd, "w") as out:
        json.dump(pin.document(), out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, target)


def fetch(feed: str, source: str, read: Callable[[str], bytes]) -> Pin:
    """The upstream's keys and the keys it pinned, from `source` (its JWKS, a URL the
    operator configured, or a file). `read(url)` fetches through the outbound rule.

    The peers document an upstream links is read only from the upstream's own origin
    (never a file, never another host), and each of its hubs is at least one hop away
    whatever it says. Names and identities are what the upstream claims: the pin keeps
    each key with the hub it was claimed for, and never merges it into another pin's."""
    document = _json(read(source), source)
    about = document.get("infoshare") if isinstance(document.get("infoshare"), Mapping) else {}
    origin = {"identity": str(about.get("identity", ""))[:200],
              "name": str(about.get("name", ""))[:200]}
    keys = [_tagged(entry, origin, 0) for entry in _jwks_entries(document, source)]
    link = about.get("peers")
    if isinstance(link, str) and link:
        keys += _peer_keys(source, link, read)
    if not keys:
        raise FeedError(f"{source} holds no Ed25519 key")
    distinct = {entry["kid"]: entry for entry in reversed(keys)}  # own keys win
    return Pin(feed, source, timestamps.format_us(timestamps.now_us()),
               tuple(sorted(distinct.values(), key=lambda e: (e["hops"], e["kid"]))))


def _peer_keys(source: str, link: str, read: Callable[[str], bytes]) -> list[dict]:
    url = urljoin(source, link)
    if (urlsplit(url).scheme not in ("http", "https")
            or urlsplit(url)[:2] != urlsplit(source)[:2]):
        raise FeedError(f"{source} links peer keys at {link!r}, which is not on its own "
                        "origin: refused")
    peers = _json(read(url), url).get("peers")
    keys: list[dict] = []
    for peer in (peers if isinstance(peers, list) else [])[:MAX_HUBS]:
        if not isinstance(peer, Mapping):
            continue
        hops = peer.get("hops", 0)
        if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops < 100:
            raise FeedError(f"{url}: a peer's hops must be a whole number from 0")
        origin = {"identity": str(peer.get("identity", ""))[:200],
                  "name": str(peer.get("name", ""))[:200]}
        keys += [_tagged(entry, origin, hops + 1) for entry in _jwks_entries(peer, url)]
    return keys


def _json(body: bytes, where: str) -> dict:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedError(f"{where} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise FeedError(f"{where} is not a JSON object")
    return document


def _jwks_entries(document: Mapping, where: str) -> list[dict]:
    """Ed25519 keys only, each with its kid recomputed (a document cannot claim one), at
    most MAX_KEYS_PER_HUB: a hub has a few keys, retired ones included."""
    found = jwk.from_jwks(document)
    if len(found) > MAX_KEYS_PER_HUB:
        raise FeedError(f"{where} offers {len(found)} keys for one hub; at most "
                        f"{MAX_KEYS_PER_HUB} are pinned")
    return [jwk.to_jwk(key, status="pinned") | {"kid": kid} for kid, key in found.items()]


def _tagged(entry: dict, origin: dict, hops: int) -> dict:
    return {**entry, "origin": dict(origin), "hops": hops}


def difference(old: Pin | None, new: Pin) -> tuple[list[str], list[str]]:
    """(kids added, kids retired) between two pins."""
    before = {e["kid"] for e in old.keys} if old else set()
    after = {e["kid"] for e in new.keys}
    return sorted(after - before), sorted(before - after)


def all_pins(data_dir: Path, feeds: list[str]) -> list[Pin]:
    """The readable pins of these feeds; an unreadable one is logged and left out."""
    pins = []
    for name in feeds:
        try:
            pin = load(data_dir, name)
        except FeedError as exc:
            log.warning("%s", exc)
            continue
        if pin is not None:
            pins.append(pin)
    return pins


def served(pins: list[Pin]) -> dict:
    """/.well-known/infoshare-peers.json: every pinned key, grouped by pin and by the hub
    it was claimed for (a pin's claims never join another pin's group). Public like the
    JWKS, so it names hubs and keys only, never the feeds' names or URLs."""
    groups: list[dict] = []
    for pin in pins:
        by_origin: dict[tuple[str, str, int], dict] = {}
        for entry in pin.keys:
            origin = entry["origin"]
            key = (origin["identity"], origin["name"], entry["hops"])
            group = by_origin.setdefault(key, {
                "identity": origin["identity"], "name": origin["name"],
                "hops": entry["hops"], "keys": []})
            group["keys"].append({k: v for k, v in entry.items()
                                  if k not in ("origin", "hops")})
        groups += by_origin.values()
    return {"peers": groups}
