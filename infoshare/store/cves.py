"""The public vulnerability object of each CVE, shared by every notice that mentions it.

A CVE is one fact: a KEV entry, an RSS advisory and three bulletins that name
CVE-2024-3400 should point at one vulnerability object, not mint five. The first notice
that publishes it openly (TLP:CLEAR, every sector, no compartment) owns it; later notices
reference it, whatever their own audience, since every reader may see it. An entry whose
object is no longer open (revoked, or narrowed by its notice) is not shared, and the next
open notice takes the CVE over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .schema import objects, public_cves

# Built once: every publish runs it, under its claim of the CVEs (see claims.py).
_SHARED = (sa.select(public_cves.c.cve, objects.c.id, objects.c.raw)
           .join(objects, objects.c.id == public_cves.c.object_id)
           .where(public_cves.c.cve.in_(sa.bindparam("cves", expanding=True)),
                  objects.c.is_latest, objects.c.origin == "service",
                  objects.c.tlp_rank == 0, objects.c.all_sectors,
                  ~objects.c.has_compartments))


def shared(conn: Connection, cves: Iterable[str]) -> dict[str, str]:
    """cve -> the id of its public vulnerability object, for those that have one."""
    wanted = sorted(set(cves))
    if not wanted:
        return {}
    rows = conn.execute(_SHARED, {"cves": wanted})
    return {row.cve: row.id for row in rows if b'"revoked":true' not in row.raw}


def claim(conn: Connection, minted: Mapping[str, str], current: Mapping[str, str]) -> None:
    """Record the vulnerabilities an open notice minted, for CVEs without a public one."""
    for cve, object_id in minted.items():
        if cve in current:
            continue
        conn.execute(public_cves.delete().where(public_cves.c.cve == cve))
        conn.execute(public_cves.insert().values(cve=cve, object_id=object_id))
