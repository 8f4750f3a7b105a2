"""Markings: TLP 2.0 marking definitions and compartment statement markings.

The stix2 library has no TLP 2.0 constants, so the OASIS definitions are written out here
exactly as published (same id, created, name and extension), and serialised once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from .. import tiers
from .ids import LEGACY, IdSpace

TLP2_CREATED = "2022-10-01T00:00:00.000Z"


def tlp_marking(level: str) -> dict:
    """The OASIS TLP 2.0 marking-definition for `level`."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": tiers.TLP2_MARKING_IDS[level],
        "created": TLP2_CREATED,
        "name": f"TLP:{level.upper()}",
        "extensions": {
            tiers.TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level}
        },
    }


def compartment_marking_id(name: str, ids: IdSpace) -> str:
    """In the installation's id space: nobody can plant a definition under the id of a
    compartment before the operator configures it."""
    return ids.stix_id("marking-definition", f"compartment:{name}")


def compartment_marking(name: str, statement: str, ids: IdSpace) -> dict:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": compartment_marking_id(name, ids),
        "created": TLP2_CREATED,
        "name": name,
        "definition_type": "statement",
        "definition": {"statement": statement},
    }


def marking_refs(obj: Mapping) -> list[str]:
    """Every marking an object carries, object-level and granular alike.

    Granular markings count as if they marked the whole object: the most restrictive wins,
    and serving part of an object is not something a TAXII server can do.
    """
    refs = list(obj.get("object_marking_refs") or ())
    for granular in obj.get("granular_markings") or ():
        if isinstance(granular, Mapping) and isinstance(granular.get("marking_ref"), str):
            refs.append(granular["marking_ref"])
    return [r for r in refs if isinstance(r, str)]


def compartments_of(obj: Mapping, compartment_names: list[str] | tuple[str, ...],
                    ids: IdSpace) -> set[str]:
    """The compartments an object's markings name: by the installation's marking ids, or
    by the public ids markings had before (a partner may still mark with those; it only
    ever narrows who reads its object)."""
    by_id = _compartments_by_id(compartment_names, ids)
    return {by_id[r] for r in marking_refs(obj) if r in by_id}


def _compartments_by_id(compartment_names, ids: IdSpace) -> Mapping[str, str]:
    return _compartment_ids(tuple(compartment_names), ids)


@functools.lru_cache(maxsize=16)
def _compartment_ids(compartment_names: tuple[str, ...], ids: IdSpace) -> Mapping[str, str]:
    """Marking id -> compartment, made once per configuration: two UUIDv5 per compartment
    for every received object were a tenth of a TAXII POST's cost."""
    return MappingProxyType({compartment_marking_id(n, space): n for n in compartment_names
                             for space in (ids, LEGACY)})


def known_marking_ids(compartment_names, ids: IdSpace) -> frozenset[str]:
    """The markings this installation understands: the OASIS TLP levels and its own
    compartments. Another hub's compartment marking is not among them."""
    return frozenset(tiers.LEVEL_BY_MARKING_ID) | frozenset(
        _compartments_by_id(compartment_names, ids))


def is_oasis_tlp(obj: Mapping) -> bool:
    """Whether `obj` is exactly one of the OASIS TLP 2.0 marking definitions."""
    level = tiers.LEVEL_BY_MARKING_ID.get(str(obj.get("id")))
    return level is not None and dict(obj) == tlp_marking(level)
