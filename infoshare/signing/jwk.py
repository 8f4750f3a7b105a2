"""Ed25519 public keys as JWKs (RFC 8037) and their RFC 7638 thumbprints."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .jws import ALG, b64url, unb64url


def thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without white space."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _x(public_key)}
    return b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"),
                                            sort_keys=True).encode()).digest())


def _x(public_key: Ed25519PublicKey) -> str:
    return b64url(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def to_jwk(public_key: Ed25519PublicKey, status: str = "active") -> dict:
    return {"kty": "OKP", "crv": "Ed25519", "x": _x(public_key), "kid": thumbprint(public_key),
            "alg": ALG, "use": "sig", "status": status}


def from_jwks(jwks: Mapping) -> dict[str, Ed25519PublicKey]:
    """kid -> public key for every Ed25519 key of a JWKS; the kid is recomputed, never
    trusted from the document, so a JWKS cannot claim a thumbprint it does not have."""
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in jwks.get("keys", []) if isinstance(jwks, Mapping) else []:
        if not isinstance(entry, Mapping):
            continue
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519" or "x" not in entry:
            continue
        try:
            key = Ed25519PublicKey.from_public_bytes(unb64url(entry["x"]))
        except (ValueError, TypeError):
            continue
        keys[thumbprint(key)] = key
    return keys
