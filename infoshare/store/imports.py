"""Checkpoints of `infoshare import`: where the import of each file stands.

A checkpoint is written in the transaction that stores a batch (publish.ingest's `finish`),
so it never claims a batch that was not committed, nor misses one that was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import timestamps
from .schema import import_checkpoints as table


@dataclass(frozen=True)
class Key:
    """One file imported into one collection as one principal."""

    collection_id: str
    principal_pk: int
    source: str  # the absolute path

    @property
    def source_key(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8", "surrogateescape")).hexdigest()

    def where(self):
        return sa.and_(table.c.collection_id == self.collection_id,
                       table.c.principal_pk == self.principal_pk,
                       table.c.source_key == self.source_key)


@dataclass
class Checkpoint:
    identity: str
    form: str
    done: int = 0  # objects read and committed, rejected ones included
    position: dict = field(default_factory=dict)  # sources.Position as a dict
    counts: dict = field(default_factory=lambda: {"stored": 0, "duplicates": 0,
                                                  "rejected": 0})
    finished: bool = False


def get(conn: Connection, key: Key) -> Checkpoint | None:
    row = conn.execute(sa.select(table).where(key.where())).first()
    if row is None:
        return None
    return Checkpoint(row.identity, row.form, row.done, dict(row.position),
                      dict(row.counts), row.finished)


def save(conn: Connection, key: Key, point: Checkpoint) -> None:
    values = {"identity": point.identity, "form": point.form, "done": point.done,
              "position": point.position, "counts": point.counts,
              "finished": point.finished, "updated_us": timestamps.now_us()}
    if not conn.execute(table.update().where(key.where()).values(**values)).rowcount:
        conn.execute(table.insert().values(
            collection_id=key.collection_id, principal_pk=key.principal_pk,
            source_key=key.source_key, source=key.source, **values))
