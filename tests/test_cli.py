"""The real `infoshare` console script, run as a subprocess against a temporary data dir."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from .live import BIN, cli, service_env


def fails(result, *words: str) -> str:
    """Assert a clean failure: non-zero exit, a message naming `words`, no traceback."""
    assert result.returncode != 0, result.stdout
    message = result.stderr
    assert "Traceback" not in message, message
    for word in words:
        assert word in message, message
    return message


def listed(env) -> dict[str, dict]:
    lines = cli(env, "principals", "list").stdout.splitlines()
    return {row["name"]: row for row in map(json.loads, lines)}


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory):
    """A data dir whose schema is in place (made once, copied per test: each call costs ~1 s)."""
    data = tmp_path_factory.mktemp("template") / "data"
    cli(service_env(data), "db", "upgrade")
    return data


@pytest.fixture
def env(upgraded, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(upgraded, data)
    return service_env(data)


def test_db_upgrade_is_idempotent(tmp_path):
    env = service_env(tmp_path / "data")
    first = json.loads(cli(env, "db", "upgrade").stdout)
    second = json.loads(cli(env, "db", "upgrade").stdout)
    assert first["schema_version_before"] == 0
    assert first["schema_version"] >= 1
    assert second["schema_version"] == first["schema_version"]
    assert second["schema_version_before"] == first["schema_version"]
    assert (tmp_path / "data" / "infoshare.db").exists()


def test_principals_add_prints_json(env):
    result = cli(env, "principals", "add", "alice", "--org", "Water Co", "--tier", "partner",
                 "--sector", "water", "--sector", "energy")
    answer = json.loads(result.stdout)
    assert answer["name"] == "alice"
    assert answer["id"]
    assert answer["api_key"].startswith("isk_")
    assert len(answer["api_key"]) > 30
    row = listed(env)["alice"]
    assert row["id"] == answer["id"]
    assert row["org"] == "Water Co"
    assert row["tier"] == "partner"
    assert sorted(row["sectors"]) == ["energy", "water"]
    assert row["roles"] == ["reader"]
    assert row["disabled"] is False
    assert row["has_password"] is False
    assert answer["api_key"] not in json.dumps(row)


def test_principals_add_duplicate_name_fails(env):
    first = json.loads(cli(env, "principals", "add", "alice", "--org", "A",
                           "--tier", "public").stdout)
    result = cli(env, "principals", "add", "alice", "--org", "B", "--tier", "member",
                 check=False)
    fails(result, "alice", "exists")
    rows = listed(env)
    assert list(rows) == ["alice"]
    assert rows["alice"]["id"] == first["id"]
    assert rows["alice"]["org"] == "A"


def test_principals_add_unknown_tier_fails(env):
    result = cli(env, "principals", "add", "bob", "--org", "B", "--tier", "sekrit",
                 check=False)
    fails(result, "sekrit", "tier")
    assert "bob" not in listed(env)


def test_principals_add_password_stdin(env):
    cli(env, "principals", "add", "carol", "--org", "C", "--tier", "member",
        "--password-stdin", input="s3cret pass\n")
    assert listed(env)["carol"]["has_password"] is True


def test_principals_add_password_stdin_empty_fails(env):
    result = cli(env, "principals", "add", "dave", "--org", "D", "--tier", "member",
                 "--password-stdin", input="\n", check=False)
    fails(result, "--password-stdin")
    assert "dave" not in listed(env)


def test_principals_disable(env):
    cli(env, "principals", "add", "erin", "--org", "E", "--tier", "partner")
    result = cli(env, "principals", "disable", "erin")
    assert json.loads(result.stdout) == {"name": "erin", "disabled": True}
    assert listed(env)["erin"]["disabled"] is True
    fails(cli(env, "principals", "disable", "nobody", check=False), "nobody")


def test_invalid_env_setting_fails_cleanly(env):
    bad = dict(env, INFOSHARE_TAXII_MAX_PAGE_SIZE="abc")
    for args in (("principals", "list"), ("db", "upgrade")):
        message = fails(cli(bad, *args, check=False), "taxii.max_page_size",
                        "INFOSHARE_TAXII_MAX_PAGE_SIZE")
        assert "abc" in message


def test_principals_add_before_upgrade_fails_cleanly(tmp_path):
    (tmp_path / "data").mkdir()
    env = service_env(tmp_path / "data")
    result = cli(env, "principals", "add", "x", "--org", "X", "--tier", "public", check=False)
    fails(result, "db upgrade")


def test_commands_need_an_installation_and_never_make_one(tmp_path):
    env = service_env(tmp_path / "absent")
    fails(cli(env, "principals", "list", check=False), "infoshare init", "INFOSHARE_DATA_DIR")
    assert not (tmp_path / "absent").exists()
    (tmp_path / "a-file").write_text("")
    fails(cli(service_env(tmp_path / "a-file"), "init", check=False))
    unreachable = service_env(tmp_path / "pg", "postgresql+psycopg://u@127.0.0.1:1/x")
    fails(cli(unreachable, "db", "upgrade", check=False), "database")


def test_a_relative_data_dir_belongs_to_the_config_file_that_set_it(tmp_path):
    config = tmp_path / "site" / "infoshare.toml"
    config.parent.mkdir()
    config.write_text('data_dir = "state"\n')
    env = {k: v for k, v in service_env(tmp_path / "unused").items()
           if k != "INFOSHARE_DATA_DIR"}
    env["INFOSHARE_CONFIG"] = str(config)
    cli(env, "db", "upgrade")
    assert (tmp_path / "site" / "state" / "infoshare.db").exists()
    elsewhere = subprocess.run([str(BIN / "infoshare"), "principals", "list"], env=env,
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert elsewhere.returncode == 0, elsewhere.stderr


def test_help_shows_the_projects_commands_only():
    result = subprocess.run([str(BIN / "infoshare"), "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "principals" in result.stdout
    assert "--app" not in result.stdout and "--env-file" not in result.stdout


def test_keys_rotate_with_a_wrong_passphrase_fails_and_changes_nothing(tmp_path):
    right = service_env(tmp_path / "data", INFOSHARE_KEY_PASSPHRASE="the right one")
    cli(right, "init")
    before = json.loads(cli(right, "keys", "export-jwks").stdout)
    wrong = service_env(tmp_path / "data", INFOSHARE_KEY_PASSPHRASE="a wrong one")
    fails(cli(wrong, "keys", "rotate", check=False), "passphrase")
    missing = service_env(tmp_path / "data")
    fails(cli(missing, "keys", "rotate", check=False), "passphrase")
    assert json.loads(cli(right, "keys", "export-jwks").stdout) == before
    rotated = json.loads(cli(right, "keys", "rotate").stdout)  # the right one still works
    assert rotated["active"] != rotated["retired"]
