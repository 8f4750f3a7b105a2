"""Deterministic STIX ids.

Where a source has its own id, every object made from it gets UUIDv5(namespace, source,
source id, role, key): a re-sent notice lands on the same objects (a new version), and a
cancelled one revokes them instead of leaving orphans.
"""

from __future__ import annotations

import uuid

NAMESPACE = uuid.UUID("3c1ed0a8-7f0e-4b5e-9d2a-6b8f4e2c1a90")


def stix_id(object_type: str, *parts: str) -> str:
    return f"{object_type}--{uuid.uuid5(NAMESPACE, '|'.join(parts))}"
