"""Detached JWS with Ed25519 (JOSE algorithm name "Ed25519", RFC 9864).

Compact serialisation with the payload left out (RFC 7515 appendix F):
`BASE64URL(header)..BASE64URL(signature)`, where the signature covers
`BASE64URL(header) "." BASE64URL(payload)` as in any JWS. The payload is the RFC 8785
canonical JSON of the object, which the verifier recomputes from the object itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG = "Ed25519"


class BadSignature(ValueError):
    """The signature is malformed or does not verify."""


class UnknownKey(ValueError):
    """The signature names a key the verifier does not have."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def protected_header(kid: str) -> str:
    """The encoded protected header; constant per key, so callers may cache it."""
    return b64url(json.dumps({"alg": ALG, "kid": kid}, separators=(",", ":")).encode())


def sign(private_key: Ed25519PrivateKey, header: str, payload: bytes) -> str:
    signing_input = header.encode() + b"." + b64url(payload).encode()
    return f"{header}..{b64url(private_key.sign(signing_input))}"


def header_of(jws: str) -> dict:
    header, sep, rest = jws.partition("..")
    if not sep or not header or not rest or "." in rest:
        raise BadSignature("not a detached JWS (expected 'header..signature')")
    try:
        decoded = json.loads(unb64url(header))
    except (ValueError, TypeError):
        raise BadSignature("the JWS header is not base64url JSON") from None
    if not isinstance(decoded, dict) or decoded.get("alg") != ALG or not decoded.get("kid"):
        raise BadSignature(f"the JWS header must name alg {ALG} and a kid")
    return decoded


def verify(jws: str, payload: bytes, key_for: Callable[[str], Ed25519PublicKey | None]) -> str:
    """The kid that signed `payload`; raises BadSignature or UnknownKey."""
    kid = header_of(jws)["kid"]
    public_key = key_for(kid)
    if public_key is None:
        raise UnknownKey(f"no key {kid!r} in the key set")
    header, _, signature = jws.partition("..")
    try:
        public_key.verify(unb64url(signature), header.encode() + b"." + b64url(payload).encode())
    except (InvalidSignature, ValueError):
        raise BadSignature("the signature does not match the object") from None
    return kid
