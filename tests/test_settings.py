"""settings.load_settings: the default file, the INFOSHARE_CONFIG overlay, the environment."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from infoshare.settings import ConfigError, load_settings

# Pinned on purpose: sector collection ids are public (clients bookmark them), so they must
# not change between releases or installations.
WATER_COLLECTION_ID = "7bc8c655-0d39-5865-9d0f-f376521bdf97"
ENERGY_COLLECTION_ID = "a0e39cc9-622a-5a98-8335-1a25586be95b"


def overlay(tmp_path: Path, text: str, name: str = "overlay.toml") -> dict[str, str]:
    path = tmp_path / name
    path.write_text(text)
    return {"INFOSHARE_CONFIG": str(path)}


def config_error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    return str(info.value)


# --- defaults ----------------------------------------------------------------------------

def test_defaults_load():
    s = load_settings(environ={})
    assert s.server.port == 8080
    assert s.server.host == "127.0.0.1"
    assert s.taxii.max_page_size == 1000
    assert s.taxii.default_tlp == "amber"
    assert s.taxii.sector_collections is True
    assert s.webhooks.max_attempts == 8
    assert s.webhooks.retry_base_seconds == 30.0
    assert s.webhooks.allow_http_hosts == ()
    assert s.auth.scrypt_log2_n == 14
    assert dict(s.tiers.max_level) == {
        "public": "clear", "partner": "green", "member": "amber", "trusted": "red"}
    assert set(s.compartments) == {"LES", "PCII"}
    assert s.data_dir.is_absolute()
    assert s.database_url == f"sqlite:///{s.data_dir / 'infoshare.db'}"
    aliases = [c.alias for c in s.collections]
    for alias in ("all-hazards", "indicators", "vulnerabilities", "submissions"):
        assert alias in aliases


# --- the overlay file --------------------------------------------------------------------

def test_overlay_merges_tables_key_by_key(tmp_path):
    env = overlay(tmp_path, """
        [taxii]
        title = "Regional ISAC"
        max_page_size = 50

        [webhooks]
        max_attempts = 3

        [tiers]
        secret = "red"
    """)
    s = load_settings(environ=env)
    assert s.taxii.title == "Regional ISAC"
    assert s.taxii.max_page_size == 50
    # keys of the same tables that the overlay did not set keep their defaults
    assert s.taxii.api_root == "infoshare"
    assert s.taxii.default_tlp == "amber"
    assert s.webhooks.max_attempts == 3
    assert s.webhooks.timeout_seconds == 10.0
    # tiers is an operator-chosen table: new names are allowed and old ones stay
    assert s.tiers.max_level["secret"] == "red"
    assert s.tiers.max_level["partner"] == "green"
    # untouched tables are untouched
    assert s.server.port == 8080


def test_overlay_unknown_key_is_named(tmp_path):
    message = config_error(overlay(tmp_path, "[taxii]\ntitel = 'typo'\n"))
    assert "taxii.titel" in message
    assert "unknown" in message
    assert "overlay.toml" in message


def test_overlay_unknown_table_is_named(tmp_path):
    message = config_error(overlay(tmp_path, "[webhook]\nmax_attempts = 2\n"))
    assert "webhook" in message and "unknown" in message


def test_overlay_bad_value_names_key_and_file(tmp_path):
    message = config_error(overlay(tmp_path, "[server]\nport = 70000\n"))
    assert "server.port" in message
    assert "overlay.toml" in message


def test_overlay_bad_toml_names_the_file(tmp_path):
    message = config_error(overlay(tmp_path, "[taxii\ntitle = \n", name="broken.toml"))
    assert "broken.toml" in message
    assert "TOML" in message


def test_overlay_missing_file_is_an_error(tmp_path):
    message = config_error({"INFOSHARE_CONFIG": str(tmp_path / "absent.toml")})
    assert "absent.toml" in message


def test_overlay_unknown_key_in_collection_entry_is_named(tmp_path):
    env = overlay(tmp_path, """
        [[collections]]
        id = "5d4d1a3c-6b0e-4d55-9a44-0c5f2d8e7a01"
        alias = "inbox"
        title = "Inbox"
        kind = "submitted"
        write_role = ["admin"]
    """)
    message = config_error(env)
    assert "write_role" in message


# --- the environment ---------------------------------------------------------------------

def test_env_int():
    s = load_settings(environ={"INFOSHARE_WEBHOOKS_MAX_ATTEMPTS": "3"})
    assert s.webhooks.max_attempts == 3


def test_env_wins_over_overlay(tmp_path):
    env = overlay(tmp_path, "[webhooks]\nmax_attempts = 5\n")
    env["INFOSHARE_WEBHOOKS_MAX_ATTEMPTS"] = "2"
    assert load_settings(environ=env).webhooks.max_attempts == 2


def test_env_list_comma_separated():
    s = load_settings(environ={"INFOSHARE_WEBHOOKS_ALLOW_HTTP_HOSTS": "a.test, b.test,,"})
    assert s.webhooks.allow_http_hosts == ("a.test", "b.test")


def test_env_list_json():
    s = load_settings(environ={"INFOSHARE_WEBHOOKS_ALLOW_HTTP_HOSTS": '["a.test", "b,c"]'})
    assert s.webhooks.allow_http_hosts == ("a.test", "b,c")


def test_env_list_bad_json_is_named():
    message = config_error({"INFOSHARE_WEBHOOKS_ALLOW_HTTP_HOSTS": '["a.test"'})
    assert "webhooks.allow_http_hosts" in message
    assert "INFOSHARE_WEBHOOKS_ALLOW_HTTP_HOSTS" in message


def test_env_list_json_of_non_strings_is_refused():
    message = config_error({"INFOSHARE_WEBHOOKS_ALLOW_HTTP_HOSTS": "[1, 2]"})
    assert "webhooks.allow_http_hosts" in message


@pytest.mark.parametrize("text, expected", [
    ("false", False), ("0", False), ("off", False), ("no", False),
    ("true", True), ("1", True), ("ON", True), ("yes", True),
])
def test_env_bool(text, expected):
    s = load_settings(environ={"INFOSHARE_TAXII_SECTOR_COLLECTIONS": text})
    assert s.taxii.sector_collections is expected
    has_sector = any(c.alias == "sector-water" for c in s.collections)
    assert has_sector is expected


def test_env_bool_invalid():
    message = config_error({"INFOSHARE_TAXII_SECTOR_COLLECTIONS": "maybe"})
    assert "taxii.sector_collections" in message
    assert "INFOSHARE_TAXII_SECTOR_COLLECTIONS" in message


def test_env_data_dir_and_default_database(tmp_path):
    s = load_settings(environ={"INFOSHARE_DATA_DIR": str(tmp_path / "data")})
    assert s.data_dir == (tmp_path / "data").resolve()
    assert s.database_url == f"sqlite:///{(tmp_path / 'data').resolve() / 'infoshare.db'}"


def test_env_database_url(tmp_path):
    url = "postgresql+psycopg://u:p@db.test/infoshare"
    s = load_settings(environ={"INFOSHARE_DATA_DIR": str(tmp_path),
                               "INFOSHARE_DATABASE_URL": url})
    assert s.database_url == url


def test_env_database_url_other_engine_refused():
    message = config_error({"INFOSHARE_DATABASE_URL": "mysql://u@db.test/x"})
    assert "database_url" in message
    assert "INFOSHARE_DATABASE_URL" in message


@pytest.mark.parametrize("value", ["abc", "1.5", ""])
def test_env_int_not_a_number(value):
    message = config_error({"INFOSHARE_WEBHOOKS_MAX_ATTEMPTS": value})
    assert "webhooks.max_attempts" in message
    assert "INFOSHARE_WEBHOOKS_MAX_ATTEMPTS" in message


@pytest.mark.parametrize("value", ["0", "101", "-3"])
def test_env_int_out_of_range(value):
    message = config_error({"INFOSHARE_WEBHOOKS_MAX_ATTEMPTS": value})
    assert "webhooks.max_attempts" in message
    assert "INFOSHARE_WEBHOOKS_MAX_ATTEMPTS" in message


def test_env_choice_invalid():
    message = config_error({"INFOSHARE_TAXII_DEFAULT_TLP": "purple"})
    assert "taxii.default_tlp" in message
    assert "INFOSHARE_TAXII_DEFAULT_TLP" in message


def test_env_float_setting_takes_an_integer():
    assert load_settings(
        environ={"INFOSHARE_WEBHOOKS_RETRY_BASE_SECONDS": "5"}).webhooks.retry_base_seconds == 5.0


def test_env_float_setting_takes_a_fraction():
    s = load_settings(environ={"INFOSHARE_WEBHOOKS_RETRY_BASE_SECONDS": "0.5",
                               "INFOSHARE_WEBHOOKS_TIMEOUT_SECONDS": "2.5"})
    assert s.webhooks.retry_base_seconds == 0.5
    assert s.webhooks.timeout_seconds == 2.5


# --- collections -------------------------------------------------------------------------

def test_sector_collections_exist_with_stable_ids():
    first = load_settings(environ={})
    second = load_settings(environ={})
    sector_specs = [c for c in first.collections if c.kind == "sector" and c.sector]
    assert len(sector_specs) == 16
    for spec in sector_specs:
        assert spec.alias == f"sector-{spec.sector}"
        assert uuid.UUID(spec.id).version == 5
        assert second.collection(spec.alias).id == spec.id
    assert first.collection("sector-water").id == WATER_COLLECTION_ID
    assert first.collection("sector-energy").id == ENERGY_COLLECTION_ID
    assert first.collection(WATER_COLLECTION_ID).alias == "sector-water"
    assert first.collection("no-such-collection") is None
    ids = [c.id for c in first.collections]
    assert len(ids) == len(set(ids))


def test_sector_collections_can_be_switched_off():
    s = load_settings(environ={"INFOSHARE_TAXII_SECTOR_COLLECTIONS": "false"})
    assert [c for c in s.collections if c.kind == "sector"] == []
    assert s.collection("all-hazards") is not None


def test_configured_collection_ids_are_fixed():
    s = load_settings(environ={})
    assert s.collection("all-hazards").id == "5d4d1a3c-6b0e-4d55-9a44-0c5f2d8e7a01"
    submissions = s.collection("submissions")
    assert submissions.kind == "submitted"
    assert submissions.write_min_tier == "partner"
    assert "indicator" in s.collection("indicators").types


def test_duplicate_alias_is_an_error(tmp_path):
    env = overlay(tmp_path, """
        [[collections]]
        id = "11111111-1111-4111-8111-111111111111"
        alias = "feed"
        title = "One"
        kind = "all"

        [[collections]]
        id = "22222222-2222-4222-8222-222222222222"
        alias = "feed"
        title = "Two"
        kind = "all"
    """)
    message = config_error(env)
    assert "collections" in message
    assert "'feed'" in message


def test_alias_clashing_with_a_sector_collection_is_an_error(tmp_path):
    env = overlay(tmp_path, """
        [[collections]]
        id = "11111111-1111-4111-8111-111111111111"
        alias = "sector-water"
        title = "Mine"
        kind = "all"
    """)
    assert "sector-water" in config_error(env)


def test_collection_bad_id_names_the_entry(tmp_path):
    env = overlay(tmp_path, """
        [[collections]]
        id = "not-a-uuid"
        alias = "x"
        title = "X"
        kind = "all"
    """)
    message = config_error(env)  # the entry's place in the merged list (the built-ins first)
    assert re.search(r"collections\[\d+\]\.id", message), message
    assert "UUID" in message


def test_overlay_collections_merge_by_id(tmp_path):
    env = overlay(tmp_path, """
        [[collections]]
        id = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
        alias = "inbox"
        title = "Inbox"
        kind = "submitted"
        write_roles = ["admin"]

        [[collections]]
        id = "0b7f4d6e-2a39-4c1b-8f0e-9d3c7b5a6e02"
        remove = true

        [[collections]]
        id = "a9c3e1f2-7d48-4b6a-b0c5-3e2f1d9a8b03"
        alias = "vulns"
        title = "Vulnerabilities, renamed"
        kind = "types"
        types = ["vulnerability"]
    """)
    aliases = [c.alias for c in load_settings(environ=env).collections]
    assert {"all-hazards", "submissions", "inbox", "vulns"} <= set(aliases)
    assert "indicators" not in aliases and "vulnerabilities" not in aliases


def test_overlay_removing_an_unknown_collection_is_named(tmp_path):
    env = overlay(tmp_path, """
        [[collections]]
        id = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
        remove = true
    """)
    assert "collections[0]" in config_error(env)
