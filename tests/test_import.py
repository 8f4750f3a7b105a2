"""`infoshare import FILE|DIR|-`: the real command on a real store, then a real server.

Each input form, a directory, standard input, rejected objects (bad STIX, bad JSON, an id
another origin owns), a principal who may not write, kill -9 in the middle and the resume
that follows (each object stored exactly once), and the imported objects served over
TAXII to a reader who may see them and not to one who may not.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from taxii2client.common import TokenAuth
from taxii2client.v21 import Collection, as_pages

from infoshare.importing import run, sources
from infoshare.store import imports as checkpoints
from infoshare.store import leases
from infoshare.store.engine import connect_engine

from .live import BIN, LiveServer, cli, service_env

SUBMISSIONS = "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a04"
TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
STAMP = "2026-01-05T10:00:00.000Z"


def indicator(n: int, **changes) -> dict:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": STAMP, "modified": STAMP, "valid_from": STAMP,
            "name": f"Imported indicator {n}", "indicator_types": ["malicious-activity"],
            "pattern": f"[ipv4-addr:value = '10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}']",
            "pattern_type": "stix", "object_marking_refs": [TLP_GREEN], **changes}


def indicators(count: int) -> list[dict]:
    return [indicator(n) for n in range(count)]


def jsonl(objects: list[dict]) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def setup_store(env: dict) -> dict:
    """The installation, an importer (a water publisher), another publisher and a
    principal who may read but not write the submissions collection."""
    cli(env, "init")
    made = {}
    for name, *args in (
            ("importer", "--org", "Water Co", "--tier", "partner", "--sector", "water",
             "--role", "publisher"),
            ("other", "--org", "Other Co", "--tier", "partner", "--sector", "water",
             "--role", "publisher"),
            ("public", "--org", "Public", "--tier", "public", "--sector", "water"),
            ("water-reader", "--org", "W", "--tier", "partner", "--sector", "water"),
            ("energy-reader", "--org", "E", "--tier", "partner", "--sector", "energy")):
        made[name] = json.loads(cli(env, "principals", "add", name, *args).stdout)
    return made


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    data = tmp_path_factory.mktemp("template") / "data"
    made = setup_store(service_env(data))
    return data, made


@pytest.fixture
def store(template, tmp_path):
    """(env, principals) of a fresh SQLite store, copied from the module's template."""
    data = tmp_path / "data"
    shutil.copytree(template[0], data)
    return service_env(data), template[1]


def run_import(env, *args, input: str | None = None):
    """(exit code, summary or None, stderr) of one `infoshare import`."""
    result = subprocess.run([str(BIN / "infoshare"), "import", *args], env=env, input=input,
                            capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    summary = json.loads(result.stdout) if result.stdout.strip() else None
    return result.returncode, summary, result.stderr


def database_url(env) -> str:
    return env["INFOSHARE_DATABASE_URL"] or (
        f"sqlite:///{Path(env['INFOSHARE_DATA_DIR']) / 'infoshare.db'}")


def stored_rows(env, principal_id: str) -> dict[str, int]:
    """id -> number of stored versions, of what the principal's origin owns."""
    engine = connect_engine(database_url(env))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, count(*) FROM objects WHERE origin = :origin GROUP BY id"),
                {"origin": f"principal:{principal_id}"})
            return dict(rows.all())
    finally:
        engine.dispose()


def audit_of(env, actor: str) -> list[dict]:
    lines = cli(env, "audit", "--limit", "1000", "--action", "submit").stdout.splitlines()
    return [e for e in map(json.loads, lines) if e["actor"] == actor]


def read_all(data: bytes, name: str = "x.json", **options):
    import io

    form, items = sources.read(io.BytesIO(data), name, **options)
    return form, list(items)


def test_reading_resumes_inside_a_line_that_holds_a_bundle():
    """Pure: each object's `after` is where reading starts again once it is committed;
    inside a bundle line that is the line itself (its earlier objects are skipped by
    ordinal), after the line's last object the next line."""
    a, b, c, d = (indicator(n) for n in range(4))
    data = (json.dumps(a) + "\n\n" + json.dumps({"type": "bundle", "id": "bundle--x",
                                                   "objects": [b, c]}) + "\n"
            + json.dumps(d) + "\n").encode()
    form, items = read_all(data)
    assert form == "json lines"
    assert [(i.ordinal, i.where, i.obj["id"]) for i in items] == [
        (0, "line 1", a["id"]), (1, "line 3", b["id"]), (2, "line 3", c["id"]),
        (3, "line 4", d["id"])]
    line3 = data.index(b'{"type": "bundle"')
    assert items[1].after == sources.Position(line3, 1, 3)
    assert items[2].after == sources.Position(data.index(b"\n", line3) + 1, 3, 4)
    _, again = read_all(data, form="json lines", start=items[1].after)
    assert [i.ordinal for i in again] == [1, 2, 3]
    assert [i.obj["id"] for i in again] == [b["id"], c["id"], d["id"]]


def test_reading_documents_and_refusing_what_is_neither():
    objects = indicators(2)
    form, items = read_all(json.dumps({"objects": objects}, indent=2).encode())
    assert form == "envelope" and [i.obj for i in items] == objects
    big = json.dumps({"type": "bundle", "id": "bundle--x", "objects": objects}, indent=2)
    with pytest.raises(sources.Unrecognised, match="larger than one document"):
        read_all(big.encode(), max_bytes=100)
    for data, words in ((b"", "empty"), (b"[\n1, 2]\n", "neither a STIX bundle"),
                        (b'{\n"a": NaN}\n', "NaN is not JSON")):
        with pytest.raises(sources.Unrecognised, match=words):
            read_all(data)
    _, items = read_all(b'{"x": 1}\n{"y": Infinity}\n', name="odd.ndjson")
    assert [i.problem.startswith("not strict JSON") for i in items] == [False, True]


def test_bundle_envelope_and_json_lines_each_stored_as_a_post_would(store, tmp_path):
    env, made = store
    objects = indicators(9)
    bundle, envelope, lines = tmp_path / "b.json", tmp_path / "e.json", tmp_path / "l.jsonl"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                  "objects": objects[:3]}, indent=2))
    envelope.write_text(json.dumps({"objects": objects[3:6], "more": False}, indent=1))
    lines.write_text("\n" + jsonl(objects[6:8]) + "\n   \n" + json.dumps(objects[8]) + "\n")
    code, summary, err = run_import(env, str(bundle), str(envelope), str(lines),
                                    "--collection", "submissions", "--as", "importer",
                                    "--batch", "2")
    assert code == 0, err
    assert [(i["form"], i["stored"]) for i in summary["inputs"]] == [
        ("bundle", 3), ("envelope", 3), ("json lines", 3)]
    assert (summary["read"], summary["stored"], summary["rejected"]) == (9, 9, 0)
    assert stored_rows(env, made["importer"]["id"]) == {o["id"]: 1 for o in objects}
    assert f"done {lines}: read 3, stored 3" in err
    # One audit entry per batch (2 objects each), by the import, naming the principal.
    entries = audit_of(env, "import:importer")
    assert len(entries) == 2 + 2 + 2
    assert sum(e["details"]["stored"] for e in entries) == 9
    assert {e["target"] for e in entries} == {"submissions"}


def test_a_directory_in_sorted_order_and_an_unrecognised_file_named(store, tmp_path):
    env, made = store
    objects = indicators(5)
    folder = tmp_path / "export"
    (folder / "nested").mkdir(parents=True)
    (folder / "b.jsonl").write_text(jsonl(objects[:2]))
    (folder / "a.json").write_text(json.dumps({"objects": objects[2:3]}, indent=2))
    (folder / "nested" / "c.ndjson").write_text(jsonl(objects[3:]))
    (folder / "notes.txt").write_text("not an input")
    (folder / "junk.json").write_text("<html>not json</html>\n")
    code, summary, err = run_import(env, str(folder), "--collection", SUBMISSIONS,
                                    "--as", "importer")
    assert code == 1  # one input could not be read
    assert [Path(i["source"]).name for i in summary["inputs"]] == [
        "a.json", "b.jsonl", "junk.json", "c.ndjson"]
    junk = summary["inputs"][2]
    assert junk["stored"] == 0 and "neither" in junk["error"]
    assert f"not imported {folder / 'junk.json'}: it is neither" in err
    assert summary["stored"] == 5 and summary["unreadable"] == 1
    assert set(stored_rows(env, made["importer"]["id"])) == {o["id"] for o in objects}


def test_standard_input_again_gives_duplicates_stored_once(store):
    env, made = store
    objects = indicators(4)
    bundle_line = json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                              "objects": objects[2:]})
    text = jsonl(objects[:2]) + bundle_line + "\n"
    code, summary, err = run_import(env, "-", "--collection", "submissions", "--as",
                                    "importer", input=text)
    assert code == 0, err
    assert summary["inputs"][0]["source"] == "-" and summary["stored"] == 4
    code, summary, err = run_import(env, "-", "--collection", "submissions", "--as",
                                    "importer", input=text)
    assert code == 0, err
    assert (summary["stored"], summary["duplicates"]) == (0, 4)
    assert "resuming" not in err
    assert stored_rows(env, made["importer"]["id"]) == {o["id"]: 1 for o in objects}


def test_rejected_objects_listed_by_id_the_rest_stored(store, tmp_path):
    env, made = store
    theirs = indicator(900)
    (tmp_path / "theirs.jsonl").write_text(jsonl([theirs]))
    assert run_import(env, str(tmp_path / "theirs.jsonl"), "--collection", "submissions",
                      "--as", "other")[0] == 0
    good = indicators(3)
    no_spec = {k: v for k, v in indicator(901).items() if k != "spec_version"}
    bad_pattern = indicator(902, pattern="[ipv4-addr:value = ")
    planted = {**theirs, "modified": "2026-02-01T00:00:00.000Z", "name": "mine now"}
    lines = [json.dumps(good[0]), json.dumps(no_spec), json.dumps(bad_pattern),
             '{"type": "indicator", "id": "indicator--1", "x": NaN}',
             json.dumps(planted), '{"type": "indicator", "spec_version": ',
             json.dumps(good[1]), json.dumps(good[2])]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    code, summary, err = run_import(env, str(tmp_path / "mixed.jsonl"), "--collection",
                                    "submissions", "--as", "importer", "--batch", "3")
    assert code == 1
    assert (summary["stored"], summary["rejected"]) == (3, 5)
    rejected = [line for line in err.splitlines() if line.startswith("rejected")]
    assert len(rejected) == 5
    assert any(no_spec["id"] in line and "spec_version" in line for line in rejected)
    assert any(bad_pattern["id"] in line and "line 3" in line for line in rejected)
    assert any("line 4" in line and "NaN is not JSON" in line for line in rejected)
    assert any(theirs["id"] in line and "belongs to another publisher" in line
               for line in rejected)
    assert any("line 6" in line and "not valid JSON" in line for line in rejected)
    assert stored_rows(env, made["importer"]["id"]) == {o["id"]: 1 for o in good}
    assert stored_rows(env, made["other"]["id"]) == {theirs["id"]: 1}


def test_a_principal_who_may_not_write_is_refused(store, tmp_path):
    env, made = store
    (tmp_path / "x.jsonl").write_text(jsonl(indicators(2)))
    for args, words in (
            (("--as", "public", "--collection", "submissions"), "may not write"),
            (("--as", "importer", "--collection", "all-hazards"), "may not write"),
            (("--as", "nobody", "--collection", "submissions"), "no principal"),
            (("--as", "importer", "--collection", "nowhere"), "no collection")):
        code, summary, err = run_import(env, str(tmp_path / "x.jsonl"), *args)
        assert code != 0 and summary is None and words in err, err
    cli(env, "principals", "disable", "importer")
    code, _, err = run_import(env, str(tmp_path / "x.jsonl"), "--as", "importer",
                              "--collection", "submissions")
    assert code != 0 and "disabled" in err
    assert stored_rows(env, made["importer"]["id"]) == {}
    assert stored_rows(env, made["public"]["id"]) == {}


def test_a_changed_file_starts_over(store, tmp_path):
    env, made = store
    objects = indicators(4)
    path = tmp_path / "grows.jsonl"
    path.write_text(jsonl(objects[:3]))
    assert run_import(env, str(path), "--collection", "submissions", "--as", "importer")[0] == 0
    code, summary, err = run_import(env, str(path), "--collection", "submissions", "--as",
                                    "importer")
    assert code == 0 and summary["read"] == 0 and "imported already" in err
    path.write_text(jsonl(objects))
    code, summary, err = run_import(env, str(path), "--collection", "submissions", "--as",
                                    "importer")
    assert code == 0 and "changed since" in err
    assert (summary["stored"], summary["duplicates"]) == (1, 3)
    assert stored_rows(env, made["importer"]["id"]) == {o["id"]: 1 for o in objects}


def kill_mid_import_then_resume(env, made, tmp_path, form: str):
    """kill -9 after the first committed batch; the same command again resumes at the
    checkpoint and stores the rest: every object exactly once, no duplicate re-sent."""
    objects = indicators(3000)
    if form == "json lines":
        path = tmp_path / "big.jsonl"
        path.write_text(jsonl(objects))
    else:
        path = tmp_path / "big.json"
        path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                    "objects": objects}, indent=1))
    args = [str(BIN / "infoshare"), "import", str(path), "--collection", "submissions",
            "--as", "importer", "--batch", "100"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        for line in process.stderr:
            if line.startswith("progress"):
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    committed = len(stored_rows(env, made["importer"]["id"]))
    assert 100 <= committed < 3000 and committed % 100 == 0
    code, summary, err = run_import(env, *args[2:])
    assert code == 0, err
    assert f"resuming {path} at object {committed}" in err
    entry = summary["inputs"][0]
    assert entry["resumed_at"] == committed and entry["form"] == form
    assert (entry["read"], entry["stored"], entry["duplicates"]) == (
        3000 - committed, 3000 - committed, 0)
    assert entry["total"] == {"objects": 3000, "stored": 3000, "duplicates": 0, "rejected": 0}
    assert stored_rows(env, made["importer"]["id"]) == {o["id"]: 1 for o in objects}


def test_kill_9_then_resume_json_lines(store, tmp_path):
    kill_mid_import_then_resume(*store, tmp_path, "json lines")


def test_kill_9_then_resume_bundle(store, tmp_path):
    kill_mid_import_then_resume(*store, tmp_path, "bundle")


def test_kill_9_then_resume_on_postgres(postgres, tmp_path):
    env = service_env(tmp_path / "data", postgres.new_database())
    kill_mid_import_then_resume(env, setup_store(env), tmp_path, "json lines")


def test_imported_objects_served_over_taxii_to_who_may_see_them(store, tmp_path):
    env, made = store
    objects = indicators(5)
    red = indicator(99, object_marking_refs=[
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"])
    (tmp_path / "in.jsonl").write_text(jsonl([*objects, red]))
    code, _, err = run_import(env, str(tmp_path / "in.jsonl"), "--collection",
                              "submissions", "--as", "importer")
    assert code == 0, err
    live = LiveServer(env)
    try:
        def seen_by(name: str) -> set[str]:
            collection = Collection(f"{live.api_root}collections/{SUBMISSIONS}/",
                                    auth=TokenAuth(key=made[name]["api_key"]))
            return {o["id"] for page in as_pages(collection.get_objects, per_request=50)
                    for o in page.get("objects", []) if o["type"] == "indicator"}
        # TLP:RED names the importer, but its tier reads up to GREEN: as for a POST.
        assert seen_by("water-reader") == seen_by("importer") == {o["id"] for o in objects}
        assert seen_by("energy-reader") == set()  # another sector
        assert red["id"] in stored_rows(env, made["importer"]["id"])
    finally:
        live.stop()


def test_a_second_import_of_the_same_file_at_once_is_refused(store, tmp_path):
    """Another live import holds the file's lease (this test's own process stands in for
    it, so the outcome does not hang on which process is faster)."""
    env, made = store
    path = tmp_path / "small.jsonl"
    path.write_text(jsonl(indicators(5)))
    args = [str(path), "--collection", "submissions", "--as", "importer"]
    engine = connect_engine(database_url(env))
    try:
        with engine.connect() as conn:
            pk = conn.execute(sa.text("SELECT pk FROM principals WHERE name = 'importer'")
                              ).scalar()
        key = checkpoints.Key(SUBMISSIONS, pk, str(path.resolve()))
        assert leases.acquire(engine, run._lease(key), leases.holder(), 60)
        code, summary, _ = run_import(env, *args)
        assert code == 1 and summary["read"] == 0
        assert "another `infoshare import` of this file" in summary["inputs"][0]["error"]
        leases.release(engine, run._lease(key), leases.holder())
    finally:
        engine.dispose()
    code, summary, _ = run_import(env, *args)
    assert code == 0 and summary["stored"] == 5
