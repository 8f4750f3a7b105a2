"""A relaying `taxii` feed's run: its pinned keys and rules, and how what it keeps is stored.

feeds/relay.py decides per object (pure); this module binds those rules to the service
(its keys, compartments, the data directory's pins) and stores what is relayed through
publish.ingest, as received, with its provenance.
"""

from __future__ import annotations

from collections.abc import Callable

from infoshare import publish
from infoshare.settings import FeedSpec
from infoshare.stix import markings

from . import peers, relay
from .base import FeedError, ItemError, StixObjects, count_outcomes, feed_collection


def rules_for(services, spec: FeedSpec, get: Callable) -> relay.Rules | None:
    """The feed's relay rules; None for a feed without `jwks`. The first run pins the
    upstream's keys; later runs use the pin (`infoshare feeds pin` renews it)."""
    source = spec.options.get("jwks")
    if not source:
        return None
    data_dir = services.settings.data_dir
    pin = peers.load(data_dir, spec.name)
    if pin is None:
        pin = _fetched(spec, get)
        peers.save(data_dir, pin)
    known = markings.known_marking_ids(services.settings.compartments, services.ids)
    return relay.Rules(
        feed=spec.name, pin=pin, pinned=pin.public_keys(),
        own_keys=services.keyring.public_keys(),
        require_signatures=bool(spec.options.get("require_signatures", True)),
        max_tlp=spec.options.get("relay_max_tlp", "green"),
        relay_to=tuple(spec.options.get("relay_to", ())), default_tlp=spec.tlp,
        known_marking=known.__contains__)


def pin(services, spec: FeedSpec, get: Callable) -> tuple[list[str], list[str]]:
    """Fetch the upstream's keys again, deliberately: (kids added, kids retired)."""
    if not spec.options.get("jwks"):
        raise FeedError(f"feed {spec.name} has no jwks option: nothing to pin")
    old = peers.load(services.settings.data_dir, spec.name)
    new = _fetched(spec, get)
    peers.save(services.settings.data_dir, new)
    return peers.difference(old, new)


def _fetched(spec: FeedSpec, get: Callable) -> peers.Pin:
    return peers.fetch(spec.name, spec.options["jwks"], lambda url: get(url).body)


def ingest(rules: relay.Rules):
    """The runner's store step for a relaying feed."""
    def store(services, spec: FeedSpec, item: StixObjects, counts: dict, errors: list) -> None:
        kept, judgements = [], []
        for index, obj in enumerate(item.objects):
            judgement = relay.judge(obj, rules)
            if judgement.action == "relay":
                kept.append(index)
                judgements.append(judgement)
            elif judgement.action == "reject":
                counts["rejected"] += 1
                errors.append(ItemError(_id_of(obj), judgement.message))
            else:
                counts["withheld" if judgement.action == "withhold" else "echoes"] += 1
        if not kept:
            return
        objects = [item.objects[i] for i in kept]
        outcomes = publish.ingest(
            services.engine, services.settings, services.ids, feed_collection(spec), None,
            objects, actor=f"feed:{spec.name}", sector_codes=spec.sectors,
            keys=rules.pinned,
            relay=publish.Relay(
                raws=[item.raws[i] for i in kept] if item.raws else (),
                audiences=_restricted(services, spec, objects, judgements, rules),
                provenance={n: j.provenance for n, j in enumerate(judgements) if j.provenance},
                feed=spec.name))
        count_outcomes(outcomes, counts, errors)
    return store


def _restricted(services, spec: FeedSpec, objects: list, judgements: list,
                rules: relay.Rules) -> dict:
    compartments = tuple(services.settings.compartments)
    return {n: relay.restricted_audience(obj, publish.third_party_audience(
                obj, spec.tlp, None, compartments, services.ids, spec.sectors), rules.relay_to)
            for n, (obj, j) in enumerate(zip(objects, judgements, strict=True))
            if j.restricted}


def _id_of(obj: object) -> str:
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else "(no id)"
