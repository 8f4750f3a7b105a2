"""`infoshare import`: third-party STIX from files into a collection, as a POST would.

Import is one more entry into publish.ingest, the one write path for third-party STIX:
each batch is one ingest call, so one transaction with the same validation, ownership
rule (the submitter's origin owns what it stores first), default TLP, routing and audit
entry as a TAXII POST of those objects by that principal (the audit's actor says
"import:<principal>"). The same transaction records the file's checkpoint
(store/imports.py), so an import stopped at any point (Ctrl-C, kill -9, a power cut)
leaves whole batches, and the same command again resumes after the last one committed.
Standard input cannot be sought, so it is never checkpointed: sent again, what was
committed comes back as duplicates and is stored once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from .. import access, publish
from ..settings import CollectionSpec
from ..store import imports as checkpoints
from ..store import leases
from ..store import principals as principal_store
from ..store.engine import read, write
from . import sources

LEASE_SECONDS = 600  # an import that died on another host frees its file after this


class Refused(Exception):
    """The import may not start (an unknown collection or principal, no right to write)."""


@dataclass(frozen=True)
class Target:
    """What is imported into, as whom, and how."""

    svc: object  # app.Services
    collection: CollectionSpec
    submitter: access.Principal
    batch: int = 1000
    max_bytes: int = sources.DEFAULT_MAX_BYTES
    restart: bool = False
    keys: dict = field(default_factory=dict)  # the service's public keys, read once

    @property
    def actor(self) -> str:
        return f"import:{self.submitter.name}"[:200]  # the audit's actor column


def target(svc, collection: str, principal: str, **options) -> Target:
    """The target, when `principal` may write `collection` by the rule a TAXII POST
    follows (access.can_read and access.can_write); Refused otherwise."""
    spec = svc.settings.collection(collection)
    if spec is None:
        raise Refused(f"no collection {collection!r} (an id or alias of [[collections]])")
    with read(svc.engine) as conn:
        row = principal_store.by_name(conn, principal)
    if row is None:
        raise Refused(f"no principal named {principal!r}")
    if row.disabled:
        raise Refused(f"principal {principal!r} is disabled: its POSTs would be refused too")
    submitter = principal_store.to_principal(row, svc.settings.tiers)
    if not (access.can_read(submitter, spec)
            and access.can_write(submitter, spec, svc.settings.tiers)):
        raise Refused(f"principal {principal!r} may not write to collection {spec.alias!r} "
                      "(the rule of a TAXII POST: the collection's write_roles or "
                      "write_min_tier)")
    return Target(svc, spec, submitter, keys=svc.keyring.public_keys(), **options)


@dataclass
class Tally:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values(),
                                              strict=True)))

    def counts(self) -> dict:
        return {"stored": self.stored, "duplicates": self.duplicates,
                "rejected": self.rejected}


@dataclass
class Report:
    """One input: what this run did, and in total with the runs it resumed."""

    source: str
    form: str = ""
    resumed_at: int = 0
    run: Tally = field(default_factory=Tally)
    total: Tally = field(default_factory=Tally)
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error or self.total.rejected)

    def describe(self) -> dict:
        described = {"source": self.source, "form": self.form, "resumed_at": self.resumed_at,
                     **asdict(self.run), "total": {"objects": self.total.read,
                                                   **self.total.counts()}}
        return {**described, "error": self.error} if self.error else described


Say = Callable[[str], None]


def import_source(target: Target, source: str, say: Say) -> Report:
    """Import one FILE or '-' (standard input); problems with the input are in the
    Report, never raised."""
    if source == sources.STDIN:
        stdin = os.fdopen(0, "rb", closefd=False)
        return _import(target, Report("-"), sources.STDIN, stdin, None, None, say)
    path = os.path.abspath(source)
    if os.path.isdir(path):
        return Report(source, error="a directory holding no *.json, *.jsonl or *.ndjson file")
    try:
        identity = sources.identity(path)
        stream = open(path, "rb")  # noqa: SIM115 (closed by _import)
    except OSError as exc:
        return Report(source, error=f"cannot read it: {exc.strerror or exc}")
    key = checkpoints.Key(target.collection.id, target.submitter.pk, path)
    point = _checkpoint(target, key, identity, source, say)
    report = Report(source)
    if point.done:
        report.resumed_at = point.done
        report.total = Tally(point.done, **point.counts)
        report.form = point.form
    if point.finished:
        stream.close()
        say(f"{source}: imported already ({point.done} objects); skipping "
            "(--restart reads it again)")
        return report
    if not leases.acquire(target.svc.engine, _lease(key), leases.holder(), LEASE_SECONDS):
        stream.close()
        return Report(source, error="another `infoshare import` of this file into this "
                                    "collection as this principal is running")
    try:
        if point.done:
            say(f"resuming {source} at object {point.done}")
        return _import(target, report, path, stream, key, point, say)
    finally:
        leases.release(target.svc.engine, _lease(key), leases.holder())


def _lease(key) -> str:
    """One import of a file at a time: two would race for its checkpoint."""
    return f"import:{key.collection_id}:{key.principal_pk}:{key.source_key[:40]}"


def _checkpoint(target: Target, key, identity: str, source: str,
                say: Say) -> checkpoints.Checkpoint:
    """Where the file's import stands; a fresh start when it changed or --restart."""
    with read(target.svc.engine) as conn:
        point = checkpoints.get(conn, key)
    if point is not None and point.identity != identity:
        say(f"{source} changed since its import stopped at object {point.done}: starting "
            "over (objects stored already come back as duplicates)")
        point = None
    if point is None or target.restart:
        return checkpoints.Checkpoint(identity, "")
    return point


def _import(target: Target, report: Report, name: str, stream, key, point,
            say: Say) -> Report:
    with stream:
        start = sources.Position(**point.position) if point and point.position else None
        try:
            report.form, items = sources.read(
                stream, name, (point.form or None) if point else None,
                start or sources.Position(), target.max_bytes)
            _batches(target, report, items, key, point, say)
        except sources.Unrecognised as exc:
            report.error = str(exc)
            return report
    if key is not None:
        _finish(target, key, point, report)
    return report


def _batches(target: Target, report: Report, items: Iterator[sources.Item], key, point,
             say: Say) -> None:
    progress = _Progress(report, say)
    batch: list[sources.Item] = []
    for item in items:
        if item.ordinal < report.resumed_at:
            continue  # committed by the run this one resumes
        batch.append(item)
        if len(batch) >= target.batch:
            _commit(target, report, batch, key, point, say)
            progress.tick()
            batch = []
    if batch:
        _commit(target, report, batch, key, point, say)
    progress.tick(last=True)


def _commit(target: Target, report: Report, batch: list[sources.Item], key, point,
            say: Say) -> None:
    """One batch: one publish.ingest call, its checkpoint in the same transaction."""
    sent = [item for item in batch if not item.problem]
    unreadable = len(batch) - len(sent)

    def tally(outcomes: list[publish.Outcome]) -> Tally:
        return Tally(read=len(batch), stored=sum(o.stored for o in outcomes),
                     duplicates=sum(o.duplicate for o in outcomes),
                     rejected=unreadable + sum(not o.ok for o in outcomes))

    def checkpoint(conn, outcomes: list[publish.Outcome]) -> None:
        point.form, point.done = report.form, batch[-1].ordinal + 1
        point.position = asdict(batch[-1].after)
        point.counts = (report.total + tally(outcomes)).counts()
        checkpoints.save(conn, key, point)

    svc = target.svc
    outcomes = publish.ingest(svc.engine, svc.settings, svc.ids, target.collection,
                              target.submitter, [item.obj for item in sent],
                              actor=target.actor, keys=target.keys,
                              finish=checkpoint if key is not None else None)
    if key is not None:  # renewed once a batch, far within its term
        leases.acquire(svc.engine, _lease(key), leases.holder(), LEASE_SECONDS)
    done = tally(outcomes)
    report.run, report.total = report.run + done, report.total + done
    for item in batch:
        if item.problem:
            say(f"rejected {report.source} {item.where}: {item.problem}")
    for item, outcome in zip(sent, outcomes, strict=True):
        if not outcome.ok:
            say(f"rejected {report.source} {item.where} {outcome.id} "
                f"{outcome.version or '-'}: {outcome.message}")


def _finish(target: Target, key, point, report: Report) -> None:
    """Mark the file imported, so running the command again skips it."""

    point.finished, point.form = True, report.form
    point.counts = report.total.counts()
    point.done = report.total.read
    with write(target.svc.engine) as conn:
        checkpoints.save(conn, key, point)


class _Progress:
    """A line on stderr after the first batch, then at most once a second, and at the
    end of each input."""

    def __init__(self, report: Report, say: Say):
        self.report, self.say = report, say
        self.started = self.last = time.monotonic()
        self.lines = 0

    def tick(self, last: bool = False) -> None:
        now = time.monotonic()
        if not (last or self.lines == 0 or now - self.last >= 1.0):
            return
        self.last, self.lines = now, self.lines + 1
        run, total = self.report.run, self.report.total
        rate = run.read / max(now - self.started, 1e-6)
        self.say(f"{'done' if last else 'progress'} {self.report.source}: read {total.read}, "
                 f"stored {total.stored}, duplicates {total.duplicates}, rejected "
                 f"{total.rejected}; {rate:.0f} objects/s")
