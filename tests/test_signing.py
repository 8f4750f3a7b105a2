"""Signing and verifying STIX objects (signing/*), without a server.

One test checks a signature with nothing but `cryptography`, `rfc8785` and the standard
library, following the published description of the signature extension, so the format is
checked against the spec rather than against the project's own verifier.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import stat

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from infoshare.drafts import sign_object
from infoshare.signing import jwk
from infoshare.signing import objects as signed
from infoshare.signing.keys import KeyRing, KeyringError
from infoshare.tiers import TLP2_MARKING_IDS

SIG_EXT = "extension-definition--2f1a7a0e-6a8e-5c3b-9d7e-0c4b8f1e2a61"
HAZARD_EXT = "extension-definition--9b2f6c1e-4d7a-5e3b-8c0f-1a2b3c4d5e6f"


def indicator(**extra) -> dict:
    obj = {
        "type": "indicator", "spec_version": "2.1",
        "id": "indicator--0f7d2a1c-3b4e-4f5a-8b6c-7d8e9f0a1b2c",
        "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
        "name": "caf\u00e9 \u2603 192.0.2.1", "pattern": "[ipv4-addr:value = '192.0.2.1']",
        "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00.000Z",
        "confidence": 85, "object_marking_refs": [TLP2_MARKING_IDS["green"]],
    }
    obj.update(extra)
    return obj


def sign(ring: KeyRing, obj: dict) -> dict:
    """What the store keeps for `obj`, parsed back."""
    return json.loads(sign_object(ring.signer(), obj))


def check(obj: dict, jwks: dict) -> signed.Verdict:
    return signed.verify(obj, jwk.from_jwks(jwks).get)


@pytest.fixture
def ring(tmp_path):
    return KeyRing(tmp_path)


def test_sign_and_verify(ring):
    obj = sign(ring, indicator())
    verdict = check(obj, ring.jwks())
    assert verdict.ok and verdict.status == "verified"
    assert verdict.kid == ring.active_kid() == ring.signer().kid
    assert verdict.id == obj["id"]
    # The signature sits in the property extension; the rest of the object is untouched.
    assert obj["extensions"][SIG_EXT]["extension_type"] == "property-extension"
    assert signed.unsigned(obj) == indicator()


def test_other_extensions_are_kept_and_signed(ring):
    hazard = {HAZARD_EXT: {"extension_type": "property-extension", "kind": "natural"}}
    obj = sign(ring, indicator(extensions=hazard))
    assert set(obj["extensions"]) == {HAZARD_EXT, SIG_EXT}
    assert check(obj, ring.jwks()).ok
    tampered = copy.deepcopy(obj)
    tampered["extensions"][HAZARD_EXT]["kind"] = "cyber"
    assert check(tampered, ring.jwks()).status == "bad"


def test_tampered_property_is_bad(ring):
    obj = sign(ring, indicator())
    tampered = obj | {"pattern": "[ipv4-addr:value = '192.0.2.2']"}
    verdict = check(tampered, ring.jwks())
    assert (verdict.ok, verdict.status) == (False, "bad")
    added = obj | {"revoked": True}
    assert check(added, ring.jwks()).status == "bad"


def test_changed_marking_is_bad(ring):
    obj = sign(ring, indicator())
    widened = obj | {"object_marking_refs": [TLP2_MARKING_IDS["clear"]]}
    assert check(widened, ring.jwks()).status == "bad"
    dropped = {k: v for k, v in obj.items() if k != "object_marking_refs"}
    assert check(dropped, ring.jwks()).status == "bad"


def test_key_order_and_whitespace_do_not_matter(ring):
    obj = sign(ring, indicator())
    reordered = json.loads(json.dumps(dict(reversed(list(obj.items()))), indent=3))
    assert check(reordered, ring.jwks()).ok


def test_missing_signature(ring):
    obj = sign(ring, indicator())
    stripped = signed.unsigned(obj)
    assert "extensions" not in stripped
    verdict = check(stripped, ring.jwks())
    assert (verdict.ok, verdict.status) == (False, "missing")


def test_unknown_key(ring, tmp_path):
    obj = sign(ring, indicator())
    other = KeyRing(tmp_path / "other")
    other.ensure()
    verdict = check(obj, other.jwks())
    assert (verdict.ok, verdict.status) == (False, "unknown-key")
    assert check(obj, {"keys": []}).status == "unknown-key"


def test_jwks_cannot_claim_a_kid_it_does_not_have(ring, tmp_path):
    """from_jwks recomputes kids: an entry with our kid but someone else's key is no match."""
    obj = sign(ring, indicator())
    other = KeyRing(tmp_path / "other")
    other.ensure()
    forged = other.jwks()
    forged["keys"][0]["kid"] = ring.active_kid()
    assert check(obj, forged).status == "unknown-key"


def test_malformed_signature_is_bad(ring):
    obj = sign(ring, indicator())
    for jws in ("garbage", "a.b.c", obj["extensions"][SIG_EXT]["jws"].replace("..", ".x.")):
        broken = copy.deepcopy(obj)
        broken["extensions"][SIG_EXT]["jws"] = jws
        assert check(broken, ring.jwks()).status == "bad", jws


def test_rotation_keeps_old_signatures_verifiable(ring):
    old_kid = ring.ensure()
    old = sign(ring, indicator())
    new_kid = ring.rotate()
    assert new_kid != old_kid and ring.active_kid() == new_kid
    new = sign(ring, indicator(modified="2025-02-01T00:00:00.000Z"))
    jwks = ring.jwks()
    statuses = {entry["kid"]: entry["status"] for entry in jwks["keys"]}
    assert statuses == {old_kid: "retired", new_kid: "active"}
    assert set(jwk.from_jwks(jwks)) == {old_kid, new_kid}
    assert check(old, jwks).kid == old_kid
    assert check(new, jwks).kid == new_kid
    header = json.loads(unb64(new["extensions"][SIG_EXT]["jws"].split("..")[0]))
    assert header["kid"] == new_kid


def test_thumbprint_is_rfc7638(ring):
    public = ring.signer().private_key.public_key()
    x = b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))
    # RFC 7638 section 3: required members only, lexicographic order, no white space.
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'
    expected = b64(hashlib.sha256(canonical.encode()).digest())
    assert jwk.thumbprint(public) == expected == ring.active_kid()
    entry = jwk.to_jwk(public)
    assert (entry["kty"], entry["crv"], entry["x"], entry["kid"]) == (
        "OKP", "Ed25519", x, expected)


def test_rfc8037_example_thumbprint():
    """RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key."""
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    key = Ed25519PublicKey.from_public_bytes(unb64(x))
    assert jwk.thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_passphrase_encrypts_the_key_at_rest(tmp_path):
    ring = KeyRing(tmp_path, "a long passphrase")
    kid = ring.ensure()
    pem = (tmp_path / "keys" / f"{kid}.pem").read_text()
    assert "ENCRYPTED" in pem
    assert ring.signer().kid == kid
    with pytest.raises(KeyringError):
        KeyRing(tmp_path).signer()
    with pytest.raises(KeyringError):
        KeyRing(tmp_path, "the wrong passphrase").signer()
    # The public half is readable without the passphrase (the JWKS needs no secret).
    assert [e["kid"] for e in KeyRing(tmp_path).jwks()["keys"]] == [kid]


def test_unencrypted_key_and_modes(tmp_path):
    ring = KeyRing(tmp_path)
    first = ring.ensure()
    second = ring.rotate()
    for kid in (first, second):
        path = tmp_path / "keys" / f"{kid}.pem"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "ENCRYPTED" not in path.read_text()
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_ensure_is_idempotent(tmp_path):
    ring = KeyRing(tmp_path)
    kid = ring.ensure()
    assert ring.ensure() == kid and KeyRing(tmp_path).ensure() == kid
    assert len(ring.jwks()["keys"]) == 1


# --- independent verification --------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def independent_verify(obj: dict, jwks: dict) -> str:
    """Verify per the published description, with no infoshare code; returns the kid."""
    jws = obj["extensions"][SIG_EXT]["jws"]
    header_b64, empty, signature_b64 = jws.split(".")
    assert empty == ""
    header = json.loads(unb64(header_b64))
    assert header["alg"] == "Ed25519"
    entry = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert (entry["kty"], entry["crv"]) == ("OKP", "Ed25519")
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + entry["x"] + '"}'
    assert header["kid"] == b64(hashlib.sha256(canonical.encode()).digest())
    body = copy.deepcopy(obj)
    del body["extensions"][SIG_EXT]
    if not body["extensions"]:
        del body["extensions"]
    payload = rfc8785.dumps(body)
    signing_input = (header_b64 + "." + b64(payload)).encode()
    key = Ed25519PublicKey.from_public_bytes(unb64(entry["x"]))
    key.verify(unb64(signature_b64), signing_input)  # raises InvalidSignature
    return header["kid"]


@pytest.mark.parametrize("extra", [{}, {"extensions": {HAZARD_EXT: {
    "extension_type": "property-extension", "kind": "natural", "areas": [
        {"name": "Zone", "polygon": [[34.1, -118.2], [34.2, -118.1], [34.0, -118.0]]}]}}}],
    ids=["only-signature", "with-other-extension"])
def test_independent_verification(tmp_path, extra):
    ring = KeyRing(tmp_path, "passphrase")
    stored = sign_object(ring.signer(), indicator(**extra))
    obj = json.loads(stored)
    jwks = json.loads(json.dumps(ring.jwks()))  # as served
    assert independent_verify(obj, jwks) == ring.active_kid()
    tampered = copy.deepcopy(obj)
    tampered["confidence"] = 86
    with pytest.raises(InvalidSignature):
        independent_verify(tampered, jwks)
