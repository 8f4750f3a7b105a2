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
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from infoshare import timestamps
from infoshare.signing import jwk

from .base import FeedError

PEERS_PATH = "/.well-known/infoshare-peers.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


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
    if not _NAME.match(feed):
        raise FeedError(f"feed name {feed!r} cannot name a file of pinned keys")
    return data_dir / "peers" / f"{feed}.json"


def load(data_dir: Path, feed: str) -> Pin | None:
    try:
        document = json.loads(path(data_dir, feed).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FeedError(f"the pinned keys of {feed} cannot be read: {exc}") from None
    return Pin(document["feed"], document["source"], document["pinned_at"],
               tuple(document["keys"]))


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
    """The upstream's keys and the keys it pinned, from `source` (its JWKS). `read(url)`
    fetches through the outbound rule (a file path is read as a file)."""
    document = _json(read(source), source)
    about = document.get("infoshare") if isinstance(document.get("infoshare"), Mapping) else {}
    origin = {"identity": str(about.get("identity", "")), "name": str(about.get("name", feed))}
    keys = [_tagged(entry, origin, 0) for entry in _jwks_entries(document)]
    link = about.get("peers")
    if isinstance(link, str) and link and "://" in source:
        peers = _json(read(urljoin(source, link)), link)
        for peer in peers.get("peers", []) if isinstance(peers.get("peers"), list) else []:
            if not isinstance(peer, Mapping):
                continue
            peer_origin = {"identity": str(peer.get("identity", "")),
                           "name": str(peer.get("name", ""))}
            keys += [_tagged(entry, peer_origin, int(peer.get("hops", 0)) + 1)
                     for entry in _jwks_entries(peer)]
    if not keys:
        raise FeedError(f"{source} holds no Ed25519 key")
    distinct = {entry["kid"]: entry for entry in reversed(keys)}  # own keys win
    return Pin(feed, source, timestamps.format_us(timestamps.now_us()),
               tuple(sorted(distinct.values(), key=lambda e: (e["hops"], e["kid"]))))


def _json(body: bytes, where: str) -> dict:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedError(f"{where} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise FeedError(f"{where} is not a JSON object")
    return document


def _jwks_entries(document: Mapping) -> list[dict]:
    """Ed25519 keys only, each with its kid recomputed (a document cannot claim one)."""
    found = jwk.from_jwks(document)
    return [jwk.to_jwk(key, status="pinned") | {"kid": kid} for kid, key in found.items()]


def _tagged(entry: dict, origin: dict, hops: int) -> dict:
    return {**entry, "origin": dict(origin), "hops": hops}


def difference(old: Pin | None, new: Pin) -> tuple[list[str], list[str]]:
    """(kids added, kids retired) between two pins."""
    before = {e["kid"] for e in old.keys} if old else set()
    after = {e["kid"] for e in new.keys}
    return sorted(after - before), sorted(before - after)


def all_pins(data_dir: Path, feeds: list[str]) -> list[Pin]:
    return [pin for name in feeds if (pin := load(data_dir, name)) is not None]


def served(pins: list[Pin]) -> dict:
    """/.well-known/infoshare-peers.json: every pinned key grouped by the hub it is of.
    Public like the JWKS, so it names hubs and keys only, never the feeds' names or
    URLs (the operator's configuration)."""
    by_origin: dict[tuple[str, str], dict] = {}
    for pin in pins:
        for entry in pin.keys:
            origin = entry["origin"]
            group = by_origin.setdefault((origin["identity"], origin["name"]), {
                "identity": origin["identity"], "name": origin["name"],
                "hops": entry["hops"], "keys": []})
            group["hops"] = min(group["hops"], entry["hops"])
            if entry["kid"] not in {k["kid"] for k in group["keys"]}:
                group["keys"].append({k: v for k, v in entry.items()
                                      if k not in ("origin", "hops")})
    return {"peers": list(by_origin.values())}
