"""The pure parts of relaying: envelope bytes, the per-object rules, the feed options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import envelope, peers, registry, relay
from infoshare import tiers
from infoshare.settings import ConfigError, load_settings
from infoshare.signing import jwk, jws
from infoshare.signing import objects as signed

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53 + 1, 2**53 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(st.dictionaries(st.text(max_size=8), JSON, max_size=5), max_size=5),
       indent=st.sampled_from([None, 1, 2]), before=st.booleans(),
       ascii_only=st.booleans())
def test_envelope_bytes_are_exactly_each_object_as_sent(objects, indent, before, ascii_only):
    document = {"more": False, "objects": objects} if before else {"objects": objects, "x": 1}
    body = json.dumps(document, indent=indent, ensure_ascii=ascii_only).encode()
    texts = envelope.object_texts(body)
    assert texts is not None and [json.loads(t) for t in texts] == objects
    assert all(t in body for t in texts)


def test_envelope_bytes_refuse_what_is_not_an_envelope():
    for body in (b"[]", b'{"objects": 3}', b"\xff\xfe", b'{"objects": [1,]}', b"{}"):
        assert not envelope.object_texts(body)


class Hub:
    def __init__(self, name: str):
        self.key = Ed25519PrivateKey.generate()
        self.kid = jwk.thumbprint(self.key.public_key())
        self.name = name

    def sign(self, obj: dict) -> dict:
        signature = jws.sign(self.key, jws.protected_header(self.kid),
                             signed.signing_payload(obj))
        return signed.attach(obj, signature)


def _pin(*hubs: tuple[Hub, int]) -> peers.Pin:
    keys = [jwk.to_jwk(h.key.public_key(), status="pinned") | {
        "origin": {"identity": f"identity--{h.name}", "name": h.name}, "hops": hops}
        for h, hops in hubs]
    return peers.Pin("up", "jwks.json", "2026-01-01T00:00:00.000000Z", tuple(keys))


def _rules(pin: peers.Pin, own: Hub, **overrides) -> relay.Rules:
    values = {"feed": "up", "pin": pin, "pinned": pin.public_keys(),
              "own_keys": {own.kid: own.key.public_key()},
              "require_signatures": True, "max_tlp": "green", "relay_to": (),
              "default_tlp": "green",
              "known_marking": frozenset(tiers.LEVEL_BY_MARKING_ID).__contains__}
    return relay.Rules(**(values | overrides))


def _indicator(tlp: str | None = "green", *extra_markings: str) -> dict:
    obj = {"type": "indicator", "spec_version": "2.1", "id": "indicator--0b4c7f3e-8f1e-4c2a-"
           "9d5b-3a6e7f8091a2", "created": "2026-01-01T00:00:00.000Z",
           "modified": "2026-01-01T00:00:00.000Z", "pattern": "[ipv4-addr:value = '1.2.3.4']",
           "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"}
    refs = ([tiers.TLP2_MARKING_IDS[tlp]] if tlp else []) + list(extra_markings)
    return obj | ({"object_marking_refs": refs} if refs else {})


def test_each_rule_of_the_hop():
    upstream, further, me = Hub("A"), Hub("Z"), Hub("me")
    rules = _rules(_pin((upstream, 0), (further, 1)), me)
    judge = relay.judge
    assert judge(upstream.sign(_indicator()), rules).action == "relay"
    assert judge(upstream.sign(_indicator()), rules).origin.name == "A"
    assert judge(me.sign(_indicator()), rules).action == "echo"
    tampered = upstream.sign(_indicator()) | {"pattern": "[ipv4-addr:value = '6.6.6.6']"}
    assert "signature bad" in judge(tampered, rules).message
    stranger = Hub("stranger").sign(_indicator())
    assert judge(stranger, rules).action == "reject"
    assert "unsigned" in judge(_indicator(), rules).message
    assert judge(_indicator(), _rules(rules.pin, me, require_signatures=False)).action == "relay"
    assert judge(upstream.sign(_indicator("amber")), rules).action == "withhold"
    assert judge(upstream.sign(_indicator("amber")), _rules(rules.pin, me, max_tlp="amber")
                 ).action == "relay"
    red = upstream.sign(_indicator("red"))
    assert judge(red, rules).action == "withhold"  # nobody named in relay_to
    named = _rules(rules.pin, me, relay_to=("ops",))
    assert judge(red, named).restricted
    assert judge(further.sign(_indicator("red")), named).action == "withhold"  # one hop
    unmarked = upstream.sign(_indicator(None))  # its upstream's default TLP is unknown here
    assert "no TLP marking" in judge(unmarked, rules).message
    other = "marking-definition--3f0c2a1e-7b6d-4e5f-8a9b-0c1d2e3f4a5b"  # another hub's
    assert "does not know" in judge(upstream.sign(_indicator("green", other)), rules).message


def test_relay_options_are_checked_at_start(tmp_path: Path):
    base = {"name": "up", "kind": "taxii", "url": "https://hub.example/taxii2/c/"}
    for options, words in (({"relay_max_tlp": "red"}, "relay_max_tlp"),
                           ({"relay_to": ["ops"]}, "need jwks"),
                           ({"jwks": "k.json", "relay_to": [""]}, "relay_to"),
                           ({"jwks": "k.json"}, "sectors")):
        settings_ = load_settings(environ={"INFOSHARE_DATA_DIR": str(tmp_path)},
                                  overlay={"feeds": [base | options]})
        with pytest.raises(ConfigError, match=words):
            registry.validate(settings_)


def _jwks_document(hub: Hub, **about) -> bytes:
    return json.dumps({"keys": [jwk.to_jwk(hub.key.public_key())],
                       "infoshare": {"identity": "identity--x", "name": hub.name, **about}
                       }).encode()


def test_pinning_takes_nothing_an_upstream_should_not_decide():
    up = Hub("Up")
    source = "https://up.example/.well-known/jwks.json"
    served = {source: _jwks_document(up, peers="file:///etc/hostname")}
    with pytest.raises(peers.FeedError, match="not on its own origin"):
        peers.fetch("up", source, served.__getitem__)
    served[source] = _jwks_document(up, peers="https://elsewhere.example/p.json")
    with pytest.raises(peers.FeedError, match="not on its own origin"):
        peers.fetch("up", source, served.__getitem__)
    further = Hub("Z")
    peers_url = "https://up.example/.well-known/infoshare-peers.json"
    served[source] = _jwks_document(up, peers="/.well-known/infoshare-peers.json")
    for hops in (-1, "x", 1.5, True):
        served[peers_url] = json.dumps({"peers": [{"name": "Z", "hops": hops, "keys": [
            jwk.to_jwk(further.key.public_key())]}]}).encode()
        with pytest.raises(peers.FeedError, match="hops"):
            peers.fetch("up", source, served.__getitem__)
    served[peers_url] = json.dumps({"peers": [{"name": "Z", "hops": 0, "keys": [
        jwk.to_jwk(further.key.public_key())]}]}).encode()
    pin = peers.fetch("up", source, served.__getitem__)
    assert pin.hops_of(up.kid) == 0 and pin.hops_of(further.kid) == 1
    many = {"keys": [jwk.to_jwk(Ed25519PrivateKey.generate().public_key())
                     for _ in range(peers.MAX_KEYS_PER_HUB + 1)]}
    with pytest.raises(peers.FeedError, match="at most"):
        peers.fetch("up", source, {source: json.dumps(many).encode()}.__getitem__)


def test_received_bytes_must_say_what_was_validated():
    from infoshare.publish import _received_bytes
    from infoshare.stix.validate import InvalidObject

    obj = {"id": "x", "revoked": True, "n": 1}
    assert _received_bytes(obj, b'{"id": "x", "revoked": true, "n": 1.0}')
    for raw in (b'{"id": "x", "revoked": 1, "n": 1}', b'{"id": "x", "id": "x", '
                b'"revoked": true, "n": 1}'):
        with pytest.raises(InvalidObject):
            _received_bytes(obj, raw)
