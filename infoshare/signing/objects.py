"""Signing and verifying STIX objects.

The signature travels in the service's property-extension, under `extensions`. The signed
bytes are the RFC 8785 form of the object with that one extension removed (and
`extensions` removed too when nothing else is left in it), so a verifier needs only the
object and the public key: no knowledge of how the object was serialised on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import canonical, jws

# The extension-definition the service publishes for its signatures (stix/definitions.py).
SIGNATURE_EXTENSION_ID = "extension-definition--2f1a7a0e-6a8e-5c3b-9d7e-0c4b8f1e2a61"


def unsigned(obj: Mapping) -> dict:
    """The object as it was before signing."""
    clean = dict(obj)
    extensions = dict(clean.get("extensions") or {})
    extensions.pop(SIGNATURE_EXTENSION_ID, None)
    if extensions:
        clean["extensions"] = extensions
    else:
        clean.pop("extensions", None)
    return clean


def signing_payload(obj: Mapping) -> bytes:
    return canonical.dumps(unsigned(obj))


def attach(obj: dict, signature: str) -> dict:
    extensions = dict(obj.get("extensions") or {})
    extensions[SIGNATURE_EXTENSION_ID] = {"extension_type": "property-extension",
                                          "jws": signature}
    return {**obj, "extensions": extensions}


def signature_of(obj: Mapping) -> str | None:
    extension = (obj.get("extensions") or {}).get(SIGNATURE_EXTENSION_ID)
    if isinstance(extension, Mapping) and isinstance(extension.get("jws"), str):
        return extension["jws"]
    return None


@dataclass(frozen=True)
class Verdict:
    id: str
    ok: bool
    status: str  # verified | missing | unknown-key | bad
    kid: str | None = None
    message: str = ""


def verify(obj: Mapping, key_for: Callable[[str], Ed25519PublicKey | None]) -> Verdict:
    object_id = str(obj.get("id", "(no id)"))
    signature = signature_of(obj)
    if signature is None:
        return Verdict(object_id, False, "missing", message="no signature")
    try:
        kid = jws.verify(signature, signing_payload(obj), key_for)
    except jws.UnknownKey as exc:
        return Verdict(object_id, False, "unknown-key", message=str(exc))
    except jws.BadSignature as exc:
        return Verdict(object_id, False, "bad", message=str(exc))
    return Verdict(object_id, True, "verified", kid)


def serialise(obj: Mapping) -> bytes:
    """The stored and served bytes of a signed object."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def verify_all(objects: list, keys: Mapping[str, Ed25519PublicKey],
               unsigned_ok: Callable[[Mapping], bool] = lambda _: False) -> list[Verdict]:
    """A verdict per object, for a whole collection or bundle.

    - verified / bad / unknown-key: the object carries the service's signature extension;
    - standard: unsigned by design (`unsigned_ok`: the OASIS TLP markings, the service's
      extension definitions, on which STIX allows no extensions);
    - unsigned-service: no signature, but made by the service (its created_by_ref is an
      identity whose signature verified here): a failure;
    - unsigned-third-party: no signature and not the service's: reported, and a failure
      only when the caller requires signatures.
    """
    service_ids = {str(o.get("id")) for o in objects if isinstance(o, Mapping)
                   and o.get("type") == "identity" and signature_of(o) is not None
                   and verify(o, keys.get).ok}
    verdicts = []
    for obj in objects:
        if not isinstance(obj, Mapping):
            verdicts.append(Verdict("(not an object)", False, "bad", message="not a JSON object"))
        elif signature_of(obj) is not None:
            verdicts.append(verify(obj, keys.get))
        elif unsigned_ok(obj):
            verdicts.append(Verdict(str(obj.get("id")), True, "standard",
                                    message="a definition served unsigned by design"))
        elif obj.get("created_by_ref") in service_ids:
            verdicts.append(Verdict(str(obj.get("id")), False, "unsigned-service",
                                    message="made by the service but not signed"))
        else:
            verdicts.append(Verdict(str(obj.get("id")), True, "unsigned-third-party",
                                    message="a third party's object, not signed by the service"))
    return verdicts
