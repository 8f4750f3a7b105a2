"""The service's own STIX definitions: its producer identity, the extension definitions it
uses (signature, hazard, sector), the sector identities, and the marking definitions.

These are published once, into every collection, with fixed ids and timestamps, so
publishing them again at each start is a no-op (the same version is a duplicate).
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import sectors, tiers
from ..signing.objects import SIGNATURE_EXTENSION_ID
from . import markings
from .ids import IdSpace

DEFINED = "2024-01-01T00:00:00.000Z"
HAZARD_EXTENSION_ID = "extension-definition--9b2f6c1e-4d7a-5e3b-8c0f-1a2b3c4d5e6f"
SECTOR_EXTENSION_ID = "extension-definition--5c8e2a47-1f3b-5d6e-9a0c-7b4d2e1f3a58"
KEV_EXTENSION_ID = "extension-definition--0d7c3b52-8e4a-5f61-9b2d-6a1e4c7f8d93"


def identity(name: str, ids: IdSpace, contact: str = "") -> dict:
    """The hub itself: the identity every object it signs names as its producer, named
    and reachable as configured (taxii.title, taxii.contact), so relayed objects name
    their true origin."""
    obj = {
        "type": "identity", "spec_version": "2.1", "id": ids.identity_id(),
        "created": DEFINED, "modified": DEFINED, "name": name,
        "identity_class": "organization",
        "description": "The infoshare service that converted, signed and published this.",
    }
    if contact:
        obj["contact_information"] = contact
    return obj


# Extension definitions are served unsigned: STIX 2.1 allows no `extensions` on them, so
# the signature extension cannot ride on them (strict parsers refused them). Their content
# is fixed and public (this module), and their first, signed versions were replaced by
# these unsigned ones dated EXTENSIONS_UNSIGNED.
EXTENSIONS_UNSIGNED = "2026-11-30T00:00:00.000Z"
# The hazard extension's schema grew the source's own CAP facts and circles.
HAZARD_REVISED = "2026-11-30T12:00:00.000Z"


def _extension(ext_id: str, name: str, description: str, schema: str, ids: IdSpace,
               modified: str = EXTENSIONS_UNSIGNED, version: str = "1.0.0") -> dict:
    return {
        "type": "extension-definition", "spec_version": "2.1", "id": ext_id,
        "created": DEFINED, "modified": modified,
        "created_by_ref": ids.identity_id(),
        "name": name, "description": description, "schema": schema, "version": version,
        "extension_types": ["property-extension"],
    }


SIGNATURE_SCHEMA = (
    "Property extension with one property, jws: a detached JWS (RFC 7515 appendix F, "
    "'header..signature') whose protected header names alg Ed25519 (RFC 9864) and kid, the "
    "RFC 7638 thumbprint of the signing key. The signed payload is the RFC 8785 canonical "
    "JSON of the object without this extension (and without 'extensions' when this was its "
    "only member). Public keys: the service's JWKS at /.well-known/jwks.json."
)
HAZARD_SCHEMA = (
    "Property extension carrying CAP 1.2 hazard facts: kind (cyber, physical, natural, "
    "technological, health), category, urgency, severity, certainty (CAP vocabularies), "
    "effective, onset and expires (STIX timestamps); from the source, where it states "
    "them: event, event_codes and parameters ([{name, value}], every CAP eventCode and "
    "parameter: VTEC, NWSheadline, CMAMtext, ...), sender_name, response_types, "
    "instruction, web; areas: a list of {name, polygon: [[lat, lon], ...], circle: "
    "{center: [lat, lon], radius_km}, geocodes: [{name, value}]}."
)
KEV_SCHEMA = (
    "Property extension on a vulnerability listed in the CISA Known Exploited "
    "Vulnerabilities catalog, with the catalog's facts as it states them: vendor_project, "
    "product, date_added and due_date (YYYY-MM-DD), required_action, "
    "known_ransomware_campaign_use (Known, Unknown), notes. The entry's CWEs are the "
    "vulnerability's external_references (source_name cwe)."
)
SECTOR_SCHEMA = (
    "Property extension on a sector identity with sector_code: one of the 16 US critical "
    "infrastructure sector codes (chemical, commercial-facilities, communications, "
    "critical-manufacturing, dams, defense-industrial-base, emergency-services, energy, "
    "financial-services, food-agriculture, government-facilities, healthcare-public-health, "
    "information-technology, nuclear, transportation, water)."
)


def extension_definitions(ids: IdSpace) -> list[dict]:
    return [
        _extension(SIGNATURE_EXTENSION_ID, "infoshare signature",
                   "Ed25519 detached JWS over the object's RFC 8785 form.", SIGNATURE_SCHEMA,
                   ids),
        _extension(HAZARD_EXTENSION_ID, "infoshare hazard",
                   "Hazard facts from CAP alerts and bulletins.", HAZARD_SCHEMA, ids,
                   HAZARD_REVISED, "1.1.0"),
        _extension(SECTOR_EXTENSION_ID, "infoshare sector",
                   "The exact critical-infrastructure sector code.", SECTOR_SCHEMA, ids),
        _extension(KEV_EXTENSION_ID, "infoshare kev",
                   "CISA Known Exploited Vulnerabilities catalog facts.", KEV_SCHEMA, ids,
                   HAZARD_REVISED),
    ]


def sector_identity(code: str, ids: IdSpace) -> dict:
    sector = sectors.BY_CODE[code]
    return {
        "type": "identity", "spec_version": "2.1", "id": ids.sector_identity_id(code),
        "created": DEFINED, "modified": DEFINED, "created_by_ref": ids.identity_id(),
        "name": f"{sector.title} Sector", "identity_class": "class",
        "sectors": list(sector.industry_sectors),
        "extensions": {SECTOR_EXTENSION_ID: {"extension_type": "property-extension",
                                             "sector_code": code}},
    }


def service_objects(name: str, compartments: Mapping[str, str], ids: IdSpace,
                    contact: str = "") -> tuple[list[dict], list[dict]]:
    """(objects the service signs, definitions it serves unsigned: the OASIS TLP markings
    exactly as OASIS publishes them, and its extension definitions)."""
    own = [identity(name, ids, contact)]
    own += [sector_identity(code, ids) for code in sectors.CODES]
    own += [markings.compartment_marking(n, s, ids) for n, s in sorted(compartments.items())]
    unsigned = [markings.tlp_marking(level) for level in tiers.TLP_LEVELS]
    return own, unsigned + extension_definitions(ids)


EXTENSION_IDS = frozenset({SIGNATURE_EXTENSION_ID, HAZARD_EXTENSION_ID, SECTOR_EXTENSION_ID,
                           KEV_EXTENSION_ID})


def is_unsigned_definition(obj: Mapping) -> bool:
    """Served unsigned by design: an OASIS TLP marking, or one of the service's extension
    definitions (`infoshare verify` reports these as standard definitions)."""
    return markings.is_oasis_tlp(obj) or (obj.get("type") == "extension-definition"
                                          and obj.get("id") in EXTENSION_IDS)


def reserved(name: str, compartments: Mapping[str, str], ids: IdSpace, contact: str = ""
             ) -> dict[str, dict]:
    """The definitions every collection carries, by id, unsigned: nobody else may publish
    under these ids, or a reader would meet two different TLP:RED definitions with one id."""
    own, oasis = service_objects(name, compartments, ids, contact)
    return {o["id"]: o for o in [*own, *oasis]}
