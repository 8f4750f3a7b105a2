"""TAXII POSTs: stored at once, or queued and stored in the background (docs/ARCHITECTURE.md,
"Ingest in the background").

A small envelope is validated and stored while the client waits, and its status is
complete in the answer. A large one (over `taxii.background_bytes`) is checked to be an
envelope, queued with its status `pending`, and answered at once: validating thousands of
objects inside a request worker would take the CPU that the readers of that worker need.
Queued envelopes are stored by at most `taxii.ingest_workers` processes across every
worker and host, each run at a lower CPU priority (`infoshare ingest-queue`), which the
request workers start when something waits.

Either way an envelope is stored by one `publish.ingest` call, whose transaction also
completes its status (and deletes its job): the status is never ahead of or behind the
store, and a crash leaves all of an envelope or none of it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from . import access, publish, strictjson, timestamps
from .settings import CollectionSpec
from .store import ingest_jobs, leases
from .store import principals as principal_store
from .store import statuses as status_store
from .store.engine import read, write

log = logging.getLogger(__name__)

CLAIM_SECONDS = 60  # a claim lapses unless renewed (at once if its process died here)
RENEW_SECONDS = 10
MAX_ATTEMPTS = 3  # an envelope that killed its worker this often is failed, not retried
SLOT_LEASE = "ingest-slot-{}"
NICE = 10  # background stores yield the CPU to request workers


class QueueFull(RuntimeError):
    """The submitter has `taxii.max_pending` envelopes waiting already: 429. Queued bodies
    take disk, and unbounded they would let one partner fill it."""

    RETRY_AFTER = 30

    def __init__(self, limit: int):
        super().__init__(f"{limit} envelopes of yours are still pending; poll their status "
                         "and send more when they are complete")


def detail(outcome: publish.Outcome) -> dict:
    """A TAXII status-details entry."""
    entry = {"id": outcome.id, "version": outcome.version}
    if outcome.message:
        entry["message"] = outcome.message
    return entry


def _pending(obj: object) -> dict:
    """What a queued object says it is (checked only when it is stored)."""
    object_id, version = publish.claimed(obj)
    return {"id": object_id, "version": version}


def submit(svc, spec: CollectionSpec, principal: access.Principal, body: bytes,
           received: Sequence[object]) -> str:
    """Store or queue one envelope; the id of its status resource."""
    status_id, request_us = str(uuid.uuid4()), timestamps.now_us()
    retention_us = svc.settings.taxii.status_retention_hours * 3_600_000_000

    def save(conn: Connection, successes=(), failures=(), pendings=()) -> None:
        status_store.purge(conn, request_us - retention_us)
        status_store.save(conn, status_id=status_id, principal_pk=principal.pk,
                          collection_id=spec.id, request_us=request_us,
                          successes=list(successes), failures=list(failures),
                          pendings=list(pendings))

    if len(body) > svc.settings.taxii.background_bytes and received:
        with write(svc.engine) as conn:
            if ingest_jobs.queued_by(conn, principal.pk) >= svc.settings.taxii.max_pending:
                raise QueueFull(svc.settings.taxii.max_pending)
            save(conn, pendings=[_pending(obj) for obj in received])
            ingest_jobs.enqueue(conn, status_id=status_id, principal_pk=principal.pk,
                                collection_id=spec.id, body=body, queued_us=request_us)
        return status_id

    def finish(conn: Connection, outcomes: list[publish.Outcome]) -> None:
        save(conn, successes=[detail(o) for o in outcomes if o.ok],
             failures=[detail(o) for o in outcomes if not o.ok])

    publish.ingest(svc.engine, svc.settings, svc.ids, spec, principal, received,
                   keys=svc.keyring.public_keys(), finish=finish)
    return status_id


def _complete(conn: Connection, status_id: str, outcomes: Sequence[publish.Outcome]) -> None:
    status_store.complete(conn, status_id,
                          successes=[detail(o) for o in outcomes if o.ok],
                          failures=[detail(o) for o in outcomes if not o.ok])


# --- the background: `infoshare ingest-queue` ---------------------------------------------

class LostClaim(RuntimeError):
    """The job's claim lapsed and another worker holds it: this worker's work is undone."""


@dataclass
class _Claims:
    """The slot and the job this process holds, renewed while it works."""

    svc: object
    holder: str
    slot: str
    job: str | None = None

    def renew(self) -> None:
        until = timestamps.now_us() + CLAIM_SECONDS * 1_000_000
        leases.acquire(self.svc.engine, self.slot, self.holder, CLAIM_SECONDS)
        if self.job is not None:
            with write(self.svc.engine) as conn:
                ingest_jobs.renew(conn, self.job, self.holder, until)


def run_queued(svc, max_jobs: int | None = None) -> int:
    """Store queued envelopes until none waits (or `max_jobs`); how many were done.

    Returns 0 at once when every slot (`taxii.ingest_workers`) is held by a live process.
    """
    holder = leases.holder()
    slot = _take_slot(svc, holder)
    if slot is None:
        return 0
    claims, done = _Claims(svc, holder, slot), 0
    stop = threading.Event()
    keeper = threading.Thread(target=_keep, args=(claims, stop), daemon=True)
    keeper.start()
    try:
        while max_jobs is None or done < max_jobs:
            job = _claim(svc, holder)
            if job is None:
                break
            claims.job = job.status_id
            _run(svc, job, holder)
            claims.job, done = None, done + 1
    finally:
        stop.set()
        keeper.join()
        leases.release(svc.engine, slot, holder)
    return done


def _keep(claims: _Claims, stop: threading.Event) -> None:
    while not stop.wait(RENEW_SECONDS):
        try:
            claims.renew()
        except Exception:  # a database hiccup: the next renewal may succeed
            log.exception("cannot renew the ingest claims")


def _take_slot(svc, holder: str) -> str | None:
    for number in range(svc.settings.taxii.ingest_workers):
        name = SLOT_LEASE.format(number)
        if leases.acquire(svc.engine, name, holder, CLAIM_SECONDS):
            return name
    return None


def _claim(svc, holder: str):
    now = timestamps.now_us()
    with write(svc.engine) as conn:
        return ingest_jobs.claim(conn, holder, now, now + CLAIM_SECONDS * 1_000_000)


def waiting(svc) -> int:
    with read(svc.engine) as conn:
        return ingest_jobs.waiting(conn, timestamps.now_us())


def _run(svc, job, holder: str) -> None:
    """Store one queued envelope whole, or fail it whole with a reason."""
    received = strictjson.loads(job.body)["objects"]  # checked when it was queued
    principal, spec, refusal = _submitter(svc, job)
    if refusal is None and job.attempts > MAX_ATTEMPTS:
        refusal = f"the envelope stopped its worker {MAX_ATTEMPTS} times; send it again"
    if refusal is not None:
        _fail(svc, job, holder, received, refusal)
        return

    def finish(conn: Connection, outcomes: list[publish.Outcome]) -> None:
        if not ingest_jobs.held_by(conn, job.status_id, holder):
            raise LostClaim(job.status_id)
        _complete(conn, job.status_id, outcomes)
        ingest_jobs.delete(conn, job.status_id)

    try:
        publish.ingest(svc.engine, svc.settings, svc.ids, spec, principal, received,
                       keys=svc.keyring.public_keys(), finish=finish)
    except LostClaim:
        log.warning("envelope %s was taken over by another worker", job.status_id)


def _submitter(svc, job):
    """The principal and collection as they are now: a partner disabled or a collection
    closed since the POST does not get its queued objects stored."""
    with read(svc.engine) as conn:
        row = principal_store.by_pk(conn, job.principal_pk)
    spec = svc.settings.collection(job.collection_id)
    if row is None or row.disabled:
        return None, spec, "the submitter was disabled before the envelope was stored"
    principal = principal_store.to_principal(row, svc.settings.tiers)
    if spec is None or not access.can_write(principal, spec, svc.settings.tiers):
        return principal, spec, "the submitter may no longer write to this collection"
    return principal, spec, None


def _fail(svc, job, holder: str, received: Sequence[object], reason: str) -> None:
    with write(svc.engine) as conn:
        if not ingest_jobs.held_by(conn, job.status_id, holder):
            return
        status_store.complete(conn, job.status_id, successes=[],
                              failures=[{**_pending(o), "message": reason} for o in received])
        ingest_jobs.delete(conn, job.status_id)


class Spawner:
    """In each request worker: starts `infoshare ingest-queue` when envelopes wait and this
    worker runs none. The child takes a slot or exits at once, so however many workers
    start one, at most `taxii.ingest_workers` store at a time."""

    def __init__(self, svc):
        self.svc = svc
        self.child: subprocess.Popen | None = None

    def tick(self) -> None:
        if self.child is not None and self.child.poll() is None:
            return
        self.child = None
        if waiting(self.svc) and self._slot_free():
            self.child = subprocess.Popen([sys.executable, "-m", "infoshare", "ingest-queue"],
                                          stdin=subprocess.DEVNULL)
            try:  # at once, so even its start-up yields to the request workers
                os.setpriority(os.PRIO_PROCESS, self.child.pid, NICE)
            except OSError:  # it has already exited
                pass

    def _slot_free(self) -> bool:
        return any(leases.free(self.svc.engine, SLOT_LEASE.format(n))
                   for n in range(self.svc.settings.taxii.ingest_workers))

    def stop(self) -> None:
        """A clean shutdown stops the child too: its envelope is rolled back whole and
        taken up again by the next worker to start."""
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.child.kill()
