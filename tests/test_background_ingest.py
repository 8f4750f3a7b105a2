"""Large TAXII envelopes are answered `pending` and stored in the background, whole or not
at all (issue 12: readers must not starve while partners POST 10 MiB envelopes)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
import uuid

import pytest
import requests
import sqlalchemy as sa
from taxii2client.common import TokenAuth
from taxii2client.v21 import Collection

from infoshare import submissions, timestamps
from infoshare.app import create_app
from infoshare.server import prepare
from infoshare.settings import load_settings
from infoshare.store import ingest_jobs, leases
from infoshare.store.engine import connect_engine, read, write
from infoshare.store.schema import ingest_jobs as jobs_table
from infoshare.store.schema import objects, statuses

from .live import LiveServer, cli, service_env
from .test_taxii import SUBMISSIONS, TAXII, indicator

BACKGROUND_BYTES = "4096"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"background-{request.param}")
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres").new_database()
    env = service_env(data_dir, url, INFOSHARE_TAXII_BACKGROUND_BYTES=BACKGROUND_BYTES)
    server = LiveServer(env, workers=2)
    server.database_url = url or f"sqlite:///{data_dir}/infoshare.db"
    server.keys = {name: server.add_principal(name, *args)["api_key"] for name, args in {
        "admin": ["--org", "Ops", "--tier", "trusted", "--all-sectors", "--role", "admin"],
        "member": ["--org", "Member Org", "--tier", "member", "--all-sectors"],
    }.items()}
    server.engine = connect_engine(server.database_url)
    yield server
    server.engine.dispose()
    server.stop()


def _post(live, objs: list) -> requests.Response:
    return requests.post(f"{live.api_root}collections/{SUBMISSIONS}/objects/",
                         headers={"Accept": TAXII, "Content-Type": TAXII,
                                  "Authorization": f"Bearer {live.keys['admin']}"},
                         data=json.dumps({"objects": objs}), timeout=60)


def _status(live, status_id: str) -> dict:
    response = requests.get(f"{live.api_root}status/{status_id}/", timeout=30, headers={
        "Accept": TAXII, "Authorization": f"Bearer {live.keys['admin']}"})
    assert response.status_code == 200, response.text
    return response.json()


def _completed(live, status_id: str, seconds: float = 300) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = _status(live, status_id)
        if status["status"] == "complete":
            return status
        time.sleep(0.2)
    raise AssertionError(f"status {status_id} still pending: {live.read_log()}")


def _stored(live, ids: list[str]) -> int:
    with read(live.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(objects)
                            .where(objects.c.id.in_(ids))).scalar()


def _indicators(count: int) -> list[dict]:
    return [indicator(f"203.0.{n // 250}.{n % 250}") for n in range(count)]


def test_large_envelope_is_pending_then_stored_whole(live):
    objs = _indicators(120)
    response = _post(live, objs)
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "pending"
    assert (pending["total_count"], pending["pending_count"]) == (120, 120)
    assert (pending["success_count"], pending["failure_count"]) == (0, 0)
    assert [p["id"] for p in pending["pendings"]] == [o["id"] for o in objs]
    assert "successes" not in pending and "failures" not in pending  # no empty lists
    done = _completed(live, pending["id"])
    assert (done["total_count"], done["success_count"], done["pending_count"]) == (120, 120, 0)
    assert "pendings" not in done
    assert _stored(live, [o["id"] for o in objs]) == 120
    with read(live.engine) as conn:
        assert conn.execute(sa.select(jobs_table.c.status_id)).first() is None


def test_taxii2_client_waits_for_the_same_verdicts_as_a_small_post(live):
    bad = [dict(indicator("198.51.100.7"), pattern="[ipv4-addr:value = "),
           {"type": "indicator", "spec_version": "2.1", "id": "indicator--not-a-uuid"}]
    small = _post(live, bad).json()
    assert small["status"] == "complete" and small["failure_count"] == 2
    good = _indicators(60)
    collection = Collection(f"{live.api_root}collections/{SUBMISSIONS}/",
                            auth=TokenAuth(live.keys["admin"]))
    status = collection.add_objects(json.dumps({"objects": good + bad}),
                                    wait_for_completion=True, poll_interval=0.5, timeout=300)
    assert status.status == "complete"
    assert (status.success_count, status.failure_count) == (60, 2)
    assert status.failures == small["failures"]  # same words, same order


def test_a_killed_background_store_leaves_nothing_then_completes(live):
    objs = _indicators(2000)
    pending = _post(live, objs).json()
    assert pending["status"] == "pending"
    holder = _claimed(live, pending["id"])
    host, _, pid = holder.rpartition(":")
    assert host == socket.gethostname()
    os.kill(int(pid), signal.SIGKILL)
    assert _stored(live, [o["id"] for o in objs]) == 0  # rolled back whole
    assert _status(live, pending["id"])["status"] == "pending"
    done = _completed(live, pending["id"])
    assert (done["success_count"], done["failure_count"]) == (2000, 0)
    with read(live.engine) as conn:
        per_id = conn.execute(sa.select(objects.c.id, sa.func.count()).where(
            objects.c.id.in_([o["id"] for o in objs])).group_by(objects.c.id)).all()
    assert len(per_id) == 2000 and {n for _, n in per_id} == {1}


def _claimed(live, status_id: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with read(live.engine) as conn:
            holder = conn.execute(sa.select(jobs_table.c.claimed_by).where(
                jobs_table.c.status_id == status_id)).scalar()
        if holder:
            return holder
        time.sleep(0.02)
    raise AssertionError("nobody claimed the envelope")


# --- the queue in one process: the submitter's rights, slots, poison envelopes ------------

def _env(data_dir):
    return service_env(data_dir, INFOSHARE_TAXII_BACKGROUND_BYTES="0",
                       INFOSHARE_TAXII_MAX_PENDING="2")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("queue-template") / "data"
    env = _env(data_dir)
    cli(env, "init")
    cli(env, "principals", "add", "partner", "--org", "P", "--tier", "partner",
        "--all-sectors")
    return data_dir


@pytest.fixture
def svc(template, tmp_path):
    """The service of a fresh installation, copied from the module's template."""
    shutil.copytree(template, tmp_path / "data")
    env = _env(tmp_path / "data")
    settings = load_settings(environ=env)
    prepare(settings)
    app = create_app(settings)
    services = app.extensions["infoshare"]
    services.env, services.app = env, app
    yield services
    services.engine.dispose()


def _queue(svc, objs: list[dict]) -> str:
    from infoshare.store import principals as principal_store

    with read(svc.engine) as conn:
        principal = principal_store.to_principal(principal_store.by_name(conn, "partner"),
                                                 svc.settings.tiers)
    body = json.dumps({"objects": objs}).encode()
    return submissions.submit(svc, svc.settings.collection(SUBMISSIONS), principal, body, objs)


def _row(svc, status_id: str):
    with read(svc.engine) as conn:
        return conn.execute(sa.select(statuses).where(statuses.c.id == status_id)).first()


def test_a_submitter_disabled_while_queued_gets_nothing_stored(svc):
    objs = _indicators(3)
    status_id = _queue(svc, objs)
    assert _row(svc, status_id).status == "pending"
    cli(svc.env, "principals", "disable", "partner")
    assert submissions.run_queued(svc) == 1
    row = _row(svc, status_id)
    assert (row.status, row.success_count, row.failure_count) == ("complete", 0, 3)
    assert {f["message"] for f in row.details["failures"]} == {
        "the submitter was disabled before the envelope was stored"}
    with read(svc.engine) as conn:
        assert conn.execute(sa.select(objects.c.pk).where(
            objects.c.id == objs[0]["id"])).first() is None


def test_slots_bound_the_background_stores(svc):
    status_id = _queue(svc, _indicators(2))
    other = "elsewhere.invalid:1"  # a live holder on another host
    assert leases.acquire(svc.engine, submissions.SLOT_LEASE.format(0), other, 60)
    assert submissions.run_queued(svc) == 0  # taxii.ingest_workers = 1: the slot is taken
    assert _row(svc, status_id).status == "pending"
    leases.release(svc.engine, submissions.SLOT_LEASE.format(0), other)
    assert submissions.run_queued(svc) == 1
    assert _row(svc, status_id).success_count == 2


def test_a_claim_held_elsewhere_is_left_alone_until_it_lapses(svc):
    status_id = _queue(svc, _indicators(1))
    now = timestamps.now_us()
    with write(svc.engine) as conn:
        assert ingest_jobs.claim(conn, "elsewhere.invalid:1", now, now + 60_000_000)
    assert submissions.run_queued(svc) == 0
    with write(svc.engine) as conn:  # the other host stopped renewing
        conn.execute(jobs_table.update().values(claimed_until_us=now - 1))
    assert submissions.run_queued(svc) == 1
    assert _row(svc, status_id).success_count == 1


def test_an_envelope_that_keeps_killing_its_worker_is_failed(svc):
    status_id = _queue(svc, _indicators(2))
    with write(svc.engine) as conn:
        conn.execute(jobs_table.update().values(attempts=submissions.MAX_ATTEMPTS))
    assert submissions.run_queued(svc) == 1
    row = _row(svc, status_id)
    assert (row.status, row.failure_count) == ("complete", 2)
    assert "send it again" in row.details["failures"][0]["message"]


def test_an_empty_or_small_envelope_is_stored_before_the_answer(svc):
    status_id = _queue(svc, [])
    row = _row(svc, status_id)
    assert (row.status, row.total_count) == ("complete", 0)
    assert uuid.UUID(status_id)


def test_a_partner_may_not_queue_without_end(svc):
    cli(svc.env, "principals", "add", "flood", "--org", "F", "--tier", "partner",
        "--all-sectors")
    key = json.loads(cli(svc.env, "principals", "new-key", "flood").stdout)["api_key"]
    client = svc.app.test_client()
    headers = {"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {key}"}
    url = f"/taxii2/infoshare/collections/{SUBMISSIONS}/objects/"
    answers = [client.post(url, headers=headers,
                           data=json.dumps({"objects": _indicators(2)})) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].headers["Retry-After"] == "30"
    assert "still pending" in answers[2].get_json()["description"]
    with read(svc.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(statuses)).scalar() == 2
    assert submissions.run_queued(svc) == 2
    again = client.post(url, headers=headers, data=json.dumps({"objects": _indicators(2)}))
    assert again.status_code == 202
