"""Deterministic STIX ids, in the installation's own id space.

Where a source has its own id, every object made from it gets UUIDv5(namespace, source,
organisation, source id, role, key): a re-sent notice lands on the same objects (a new
version), and a cancelled one revokes them instead of leaving orphans.

The namespace is a per-installation secret (made at `infoshare init`, see
installation.py), so nobody outside can compute the id a bulletin will get, plant an
object under it first, or test guesses against it; it also gives each installation its own
service identity id. Notices published before the namespace existed keep their ids: they
were made in LEGACY_NAMESPACE from (source, source id, role, key), and their notice row
says so (notices.id_namespace), so updates and revokes still land on the same objects.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

LEGACY_NAMESPACE = uuid.UUID("3c1ed0a8-7f0e-4b5e-9d2a-6b8f4e2c1a90")


@dataclass(frozen=True)
class IdSpace:
    namespace: uuid.UUID

    def stix_id(self, object_type: str, *parts: str) -> str:
        return f"{object_type}--{uuid.uuid5(self.namespace, '|'.join(parts))}"

    def identity_id(self) -> str:
        """The service's own producer identity."""
        return self.stix_id("identity", "service")

    def sector_identity_id(self, code: str) -> str:
        return self.stix_id("identity", "sector", code)

    @property
    def legacy(self) -> bool:
        return self.namespace == LEGACY_NAMESPACE

    def notice_parts(self, source: str, org: str, source_id: str) -> tuple[str, ...]:
        """What names a notice: ids are per organisation, except in the legacy space."""
        return (source, source_id) if self.legacy else (source, org, source_id)


LEGACY = IdSpace(LEGACY_NAMESPACE)
