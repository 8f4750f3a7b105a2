"""Unit tests of the small pure modules: no server, no database."""

from __future__ import annotations

import base64

import pytest
from werkzeug.datastructures import MultiDict

from infoshare import passwords, sectors, tiers, timestamps
from infoshare.access import Audience, Principal, may_see
from infoshare.stix.validate import InvalidObject, check
from infoshare.taxii import cursors, mediatypes, params
from infoshare.taxii.errors import TaxiiError

# --- timestamps --------------------------------------------------------------------------


@pytest.mark.parametrize("text, micros", [
    ("1970-01-01T00:00:00Z", 0),
    ("1970-01-01T00:00:00.000001Z", 1),
    ("2024-01-31T12:00:00Z", 1706702400_000000),
    ("2024-01-31T12:00:00.5Z", 1706702400_500000),
    ("2024-01-31T12:00:00.123456Z", 1706702400_123456),
    ("2024-02-29T23:59:59.999999Z", 1709251199_999999),
    ("1969-12-31T23:59:59.999999Z", -1),
])
def test_parse_us(text, micros):
    assert timestamps.parse_us(text) == micros


def test_same_instant_at_different_precisions():
    assert (timestamps.parse_us("2024-01-31T12:00:00Z")
            == timestamps.parse_us("2024-01-31T12:00:00.000Z")
            == timestamps.parse_us("2024-01-31T12:00:00.000000Z"))


def test_precision_beyond_microseconds_is_truncated():
    assert timestamps.parse_us("2024-01-31T12:00:00.1234569Z") == 1706702400_123456


@pytest.mark.parametrize("micros", [0, 1, 999_999, 1706702400_123456, 4102444799_999999, -1])
def test_format_us_round_trip(micros):
    text = timestamps.format_us(micros)
    assert len(text.rsplit(".", 1)[1]) == 7  # six digits and Z
    assert timestamps.parse_us(text) == micros


def test_format_us_and_stix():
    assert timestamps.format_us(1706702400_500000) == "2024-01-31T12:00:00.500000Z"
    assert timestamps.format_stix(1706702400_123456) == "2024-01-31T12:00:00.123Z"
    assert timestamps.format_us(0) == "1970-01-01T00:00:00.000000Z"


def test_now_us_is_recent():
    assert timestamps.now_us() > timestamps.parse_us("2024-01-01T00:00:00Z")


@pytest.mark.parametrize("text", [
    "", "yesterday", "2024-01-31", "2024-01-31T12:00:00", "2024-01-31T12:00:00+00:00",
    "2024-01-31 12:00:00Z", "2024-13-01T00:00:00Z", "2024-00-10T00:00:00Z",
    "2024-01-32T00:00:00Z", "2024-01-31T24:00:00Z", "2024-01-31T12:60:00Z",
    "2024-01-31T12:00:00.Z", "0000-01-01T00:00:00Z", None, 1706702400,
])
def test_parse_us_refuses(text):
    with pytest.raises(timestamps.BadTimestamp):
        timestamps.parse_us(text)


@pytest.mark.parametrize("text", ["2023-02-29T00:00:00Z", "2024-02-31T00:00:00Z",
                                  "2024-04-31T00:00:00Z"])
def test_parse_us_refuses_days_the_month_lacks(text):
    with pytest.raises(timestamps.BadTimestamp):
        timestamps.parse_us(text)


@pytest.mark.parametrize("text", ["2024-01-31T12:00:00Z\n",
                                  "\uff12\uff10\uff12\uff14-01-31T12:00:00Z"])
def test_parse_us_refuses_trailing_newline_and_non_ascii_digits(text):
    with pytest.raises(timestamps.BadTimestamp):
        timestamps.parse_us(text)


# --- sectors -----------------------------------------------------------------------------

def test_sixteen_sectors():
    assert len(sectors.CODES) == 16
    assert len(set(sectors.CODES)) == 16
    assert sectors.ALL_MASK == 0xFFFF
    assert sectors.mask(sectors.CODES) == sectors.ALL_MASK
    for code in sectors.CODES:
        assert sectors.BY_CODE[code].industry_sectors


def test_bit_order_is_fixed():
    # The mask is on disk: the first and last bits must never move.
    assert sectors.bit("chemical") == 1
    assert sectors.bit("water") == 1 << 15
    assert sectors.bit("energy") == 1 << 7


@pytest.mark.parametrize("codes", [
    [], ["water"], ["energy", "water"], ["chemical", "nuclear", "dams"], list(sectors.CODES),
])
def test_mask_codes_round_trip(codes):
    value = sectors.mask(codes)
    assert sorted(sectors.codes(value)) == sorted(codes)
    assert sectors.mask(sectors.codes(value)) == value


def test_mask_ignores_repeats():
    assert sectors.mask(["water", "water"]) == sectors.bit("water")


def test_unknown_sector():
    with pytest.raises(sectors.UnknownSector) as info:
        sectors.mask(["water", "wtaer"])
    assert "wtaer" in str(info.value)
    assert info.value.code == "wtaer"
    assert isinstance(info.value, ValueError)


# --- tiers -------------------------------------------------------------------------------

def test_tlp_ranks_are_ordered():
    ranks = [tiers.rank(level) for level in
             ("clear", "green", "amber", "amber+strict", "red")]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == 5


def test_unknown_tlp_level():
    with pytest.raises(ValueError, match="white"):
        tiers.rank("white")


T2, T1 = tiers.TLP2_MARKING_IDS, tiers.TLP1_MARKING_IDS


@pytest.mark.parametrize("refs, expected", [
    ([], None),
    (["marking-definition--00000000-0000-4000-8000-000000000000"], None),
    ([T2["green"]], "green"),
    ([T2["green"], T2["amber"]], "amber"),
    ([T2["red"], T2["clear"]], "red"),
    ([T2["amber"], T2["amber+strict"]], "amber+strict"),
    ([T1["clear"]], "clear"),  # TLP 1.0 WHITE reads as CLEAR
    ([T1["amber"], T2["green"]], "amber"),
    ([T2["amber+strict"], T1["red"]], "red"),
    ([T1["green"], "marking-definition--00000000-0000-4000-8000-000000000000"], "green"),
])
def test_tlp_of_markings_most_restrictive_wins(refs, expected):
    assert tiers.tlp_of_markings(refs) == expected


def test_tlp1_white_is_the_stix_constant():
    assert T1["clear"] == "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"


def test_tiers_object():
    t = tiers.Tiers(dict(tiers.DEFAULT_TIERS))
    assert t.names() == ["public", "partner", "member", "trusted"]
    assert t.max_rank("member") == tiers.rank("amber")
    assert t.at_least("trusted", "partner")
    assert not t.at_least("public", "partner")
    with pytest.raises(ValueError, match="boss"):
        t.max_rank("boss")


# --- passwords ---------------------------------------------------------------------------

def test_hash_and_verify():
    stored = passwords.hash_secret("correct horse", log2_n=10)
    assert stored.startswith("scrypt$10$8$1$")
    assert "correct horse" not in stored
    assert passwords.verify_secret("correct horse", stored)
    assert not passwords.verify_secret("correct hors", stored)
    assert not passwords.verify_secret("", stored)


def test_hashes_are_salted():
    assert passwords.hash_secret("same", 10) != passwords.hash_secret("same", 10)


def test_dummy_hash_matches_nothing_obvious_and_costs_what_real_ones_do():
    dummy = passwords.dummy_hash(10)
    assert not passwords.verify_secret("", dummy)
    assert dummy.split("$")[1] == "10"  # same cost as the configured hashes
    assert passwords.dummy_hash(10) == dummy


@pytest.mark.parametrize("stored", [
    "", "garbage", "bcrypt$10$8$1$AAAA$AAAA", "scrypt$ten$8$1$AAAA$AAAA",
    "scrypt$10$8$1$AAAA", "scrypt$-1$8$1$AAAA$AAAA", "scrypt$10$8$1$AAAA$AAAA$extra",
])
def test_malformed_stored_hash_is_false(stored):
    assert passwords.verify_secret("secret", stored) is False


def test_stored_hash_with_broken_digest_is_false():
    assert passwords.verify_secret("secret", "scrypt$10$8$1$AAAA$a") is False


def test_api_key_split():
    key, key_id, secret = passwords.new_api_key()
    assert key.startswith("isk_")
    assert passwords.split_api_key(key) == (key_id, secret)
    assert passwords.split_api_key("isk_abc_de_f") == ("abc", "de_f")


@pytest.mark.parametrize("token", ["", "isk", "isk_abc", "isk__secret", "isk_abc_",
                                   "xyz_abc_secret", "Bearer isk_abc_def"])
def test_api_key_split_refuses(token):
    assert passwords.split_api_key(token) is None


# --- cursors -----------------------------------------------------------------------------

SECRET = b"k" * 32
QUERY = cursors.fingerprint([("scope", ("all", "objects"))])
BOUND = {"added_after": None, "ids": [], "types": ["indicator"], "versions": ["last"],
         "spec_versions": []}


@pytest.mark.parametrize("position", [0, 1, 1706702400_123456, 2**62])
def test_cursor_round_trip(position):
    token = cursors.encode(SECRET, "p1", QUERY, position, BOUND)
    assert cursors.decode(SECRET, "p1", QUERY, token) == (position, BOUND)


def test_fingerprint_ignores_order_but_not_values():
    a = cursors.fingerprint([("types", ("indicator",)), ("ids", ())])
    assert a == cursors.fingerprint([("ids", ()), ("types", ("indicator",))])
    assert a != cursors.fingerprint([("types", ("malware",)), ("ids", ())])


def _refused(token, principal="p1", query=QUERY, secret=SECRET):
    with pytest.raises(cursors.CursorError):
        cursors.decode(secret, principal, query, token)


def _flip(text: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[len(raw) // 2] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_cursor_tampered_payload():
    """Neither the position nor the bound filters can be changed."""
    token = cursors.encode(SECRET, "p1", QUERY, 1706702400_123456, BOUND)
    payload, mac = token.split(".")
    _refused(f"{_flip(payload)}.{mac}")
    forged = cursors.encode(b"other secret", "p1", QUERY, 1, {**BOUND, "types": []})
    _refused(f"{forged.split('.')[0]}.{mac}")


def test_cursor_tampered_mac():
    token = cursors.encode(SECRET, "p1", QUERY, 12345, BOUND)
    payload, mac = token.split(".")
    _refused(f"{payload}.{_flip(mac)}")
    _refused(f"{payload}.{mac[:-4]}")
    _refused(f"{payload}.")
    _refused(payload)
    _refused(f"{payload}.!!!")
    _refused("")
    _refused("zz.AAAA")


def test_cursor_other_principal():
    _refused(cursors.encode(SECRET, "p1", QUERY, 12345, BOUND), principal="p2")


def test_cursor_other_endpoint():
    other = cursors.fingerprint([("scope", ("all", "manifest"))])
    _refused(cursors.encode(SECRET, "p1", QUERY, 12345, BOUND), query=other)


def test_cursor_other_secret():
    _refused(cursors.encode(SECRET, "p1", QUERY, 12345, BOUND), secret=b"x" * 32)


# --- media types -------------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    None, "", "application/taxii+json", "application/taxii+json;version=2.1",
    "application/taxii+json; version=2.1", 'application/taxii+json;version="2.1"',
    "*/*", "application/*", "text/html, */*;q=0.1", "APPLICATION/TAXII+JSON;VERSION=2.1",
    "application/taxii+json;version=2.1;q=0.5", "text/html, application/taxii+json",
])
def test_accepts_taxii(header):
    assert mediatypes.accepts_taxii(header) is True


@pytest.mark.parametrize("header", [
    "application/taxii+json;q=0", "application/taxii+json;version=2.1;q=0",
    "*/*;q=0", "application/taxii+json;version=2.0", "text/html", "application/json",
    "application/stix+json;version=2.1", "text/*",
])
def test_refuses_taxii(header):
    assert mediatypes.accepts_taxii(header) is False


def test_specific_refusal_beats_wildcard():
    assert mediatypes.accepts_taxii("*/*, application/taxii+json;q=0") is False


@pytest.mark.parametrize("content_type, expected", [
    ("application/taxii+json;version=2.1", True),
    ("application/taxii+json", True),
    ("application/taxii+json; version=2.1; charset=utf-8", True),
    ("Application/TAXII+JSON;Version=2.1", True),
    ("application/taxii+json;version=2.0", False),
    ("application/json", False),
    ("application/stix+json;version=2.1", False),
    ("application/taxii+json, application/json", False),
    ("", False),
    (None, False),
])
def test_is_taxii(content_type, expected):
    assert mediatypes.is_taxii(content_type) is expected


# --- TAXII query parameters --------------------------------------------------------------

def parse(pairs=(), max_page=100, **kw):
    return params.parse(MultiDict(list(pairs)), max_page, **kw)


def bad(pairs, *words, **kw):
    with pytest.raises(TaxiiError) as info:
        parse(pairs, **kw)
    assert info.value.status == 400
    for word in words:
        assert word in info.value.description
    return info.value.description


def test_params_defaults():
    q = parse()
    assert q.limit == 100
    assert q.next is None
    assert q.filters.versions == ("last",)
    assert q.filters.added_after is None
    assert q.filters.types == () and q.filters.ids == ()


def test_limit_clamped_to_max_page():
    assert parse([("limit", "5")]).limit == 5
    assert parse([("limit", "100")]).limit == 100
    assert parse([("limit", "100000")]).limit == 100


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "1.5", " 5"])
def test_limit_invalid(value):
    bad([("limit", value)], "limit")


def test_limit_superscript_digit_is_400():
    bad([("limit", "\u00b2")], "limit")


def test_repeated_parameter():
    bad([("limit", "5"), ("limit", "6")], "limit", "2 times")
    bad([("match[type]", "indicator"), ("match[type]", "malware")], "match[type]")


def test_added_after():
    q = parse([("added_after", "2024-01-31T12:00:00.5Z")])
    assert q.filters.added_after == 1706702400_500000
    bad([("added_after", "yesterday")], "added_after")
    bad([("added_after", "2024-01-31")], "added_after")


def test_match_version():
    t = "2024-01-31T12:00:00.000Z"
    assert parse([("match[version]", f"first, {t},last")]).filters.versions == (
        "first", 1706702400_000000, "last")
    assert parse([("match[version]", "all")]).filters.versions == ("all",)
    assert parse(default_versions=("all",)).filters.versions == ("all",)
    bad([("match[version]", "all,last")], "match[version]", "all")
    bad([("match[version]", f"{t},all")], "match[version]")
    bad([("match[version]", "newest")], "match[version]", "newest")


def test_unknown_match_filter():
    bad([("match[foo]", "x")], "match[foo]")
    bad([("match[type", "x")], "match[type")
    desc = bad([("match[version]", "all")], "match[version]", allowed_match=("id", "type"))
    assert "match[id]" in desc


def test_comma_lists():
    q = parse([("match[type]", "indicator, malware,indicator"),
               ("match[id]", "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
               ("match[spec_version]", "2.1,2.0")])
    assert q.filters.types == ("indicator", "malware")
    assert q.filters.ids == ("indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",)
    assert q.filters.spec_versions == ("2.1", "2.0")


@pytest.mark.parametrize("key, value", [
    ("match[type]", "Indicator"), ("match[type]", "indicator,"), ("match[id]", "indicator--1"),
    ("match[id]", "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"), ("match[spec_version]", "2"),
])
def test_bad_list_values(key, value):
    bad([(key, value)], key)


def test_next_passes_through():
    assert parse([("next", "abc.def")]).next == "abc.def"
    assert parse([("next", "")]).next is None


# --- stix.validate -----------------------------------------------------------------------

INDICATOR = {
    "type": "indicator",
    "spec_version": "2.1",
    "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
    "created": "2024-01-31T12:00:00.000Z",
    "modified": "2024-01-31T12:30:00.000Z",
    "name": "Scanner",
    "pattern": "[ipv4-addr:value = '198.51.100.1']",
    "pattern_type": "stix",
    "valid_from": "2024-01-31T12:00:00Z",
}


def test_valid_indicator():
    checked = check(INDICATOR)
    assert checked.id == INDICATOR["id"]
    assert checked.type == "indicator"
    assert checked.spec_version == "2.1"
    assert checked.version == "2024-01-31T12:30:00.000Z"
    assert checked.version_us == timestamps.parse_us("2024-01-31T12:30:00.000Z")


def invalid(changes, *words):
    obj = {**INDICATOR, **changes}
    obj = {k: v for k, v in obj.items() if v is not None}
    with pytest.raises(InvalidObject) as info:
        check(obj)
    for word in words:
        assert word in str(info.value)


def test_wrong_spec_version():
    invalid({"spec_version": "2.0"}, "spec_version", "2.0")
    invalid({"spec_version": None}, "spec_version")


def test_bad_id():
    invalid({"id": "indicator--xyz"}, "id", "indicator--xyz")
    invalid({"id": "indicator--8E2E2D2B-17D4-4CBF-938F-98EE46B3CD3F"}, "id")
    invalid({"id": None}, "id")


def test_id_type_mismatch():
    invalid({"id": "malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"}, "malware--", "indicator")


def test_bad_pattern():
    invalid({"pattern": "[ipv4-addr:value = "}, "Pattern")
    invalid({"pattern": "ipv4-addr:value = '1.2.3.4'"}, "Pattern")


def test_bad_version_timestamp():
    invalid({"modified": "yesterday"}, "modified", "yesterday")


def test_not_an_object():
    with pytest.raises(InvalidObject):
        check(["indicator"])
    invalid({"type": None}, "type")


# --- access.may_see ----------------------------------------------------------------------

RANK = tiers.RANK


def principal(*, name="alice", org="Water Co", max_level="red", codes=("water",),
              all_sectors=False, compartments=()):
    return Principal(pk=1, id="p-" + name, name=name, org=org, tier="t",
                     max_rank=RANK[max_level], all_sectors=all_sectors,
                     sector_mask=sectors.mask(codes), compartments=frozenset(compartments))


def audience(tlp="green", codes=None, compartments=(), orgs=(), names=()):
    return Audience(tlp=tlp, all_sectors=codes is None,
                    sector_mask=sectors.mask(codes or ()),
                    compartments=frozenset(compartments), recipient_orgs=frozenset(orgs),
                    recipient_principals=frozenset(names))


def test_rule1_sectors():
    water = principal(codes=("water",))
    assert may_see(water, audience(codes=None))  # for all sectors
    assert may_see(water, audience(codes=["water", "energy"]))  # shares a sector
    assert not may_see(water, audience(codes=["energy"]))
    assert not may_see(principal(codes=()), audience(codes=["energy"]))
    assert may_see(principal(codes=(), all_sectors=True), audience(codes=["energy"]))


def test_rule2_tlp_rank():
    for level in tiers.TLP_LEVELS[:3]:
        assert may_see(principal(max_level="amber"), audience(tlp=level)) is True
    assert not may_see(principal(max_level="amber"), audience(tlp="amber+strict",
                                                              orgs=["Water Co"]))
    assert not may_see(principal(max_level="green"), audience(tlp="amber"))
    assert not may_see(principal(max_level="clear"), audience(tlp="green"))
    assert not may_see(principal(max_level="amber"), audience(tlp="red", names=["alice"]))


def test_rule3_compartments():
    les = principal(compartments=("LES",))
    assert may_see(les, audience(compartments=["LES"]))
    assert may_see(les, audience())
    assert not may_see(les, audience(compartments=["LES", "PCII"]))
    assert not may_see(principal(), audience(compartments=["PCII"]))
    assert may_see(principal(compartments=("LES", "PCII")),
                   audience(compartments=["LES", "PCII"]))


def test_rule4_amber_strict_names_the_organisation():
    alice = principal(name="alice", org="Water Co")
    assert may_see(alice, audience(tlp="amber+strict", orgs=["Water Co"]))
    assert not may_see(alice, audience(tlp="amber+strict", orgs=["Power Co"]))
    assert not may_see(alice, audience(tlp="amber+strict"))
    # naming the principal is not naming its organisation
    assert not may_see(alice, audience(tlp="amber+strict", names=["alice"]))


def test_rule4_red_names_the_principal():
    alice = principal(name="alice", org="Water Co")
    assert may_see(alice, audience(tlp="red", names=["alice"]))
    assert not may_see(alice, audience(tlp="red", names=["bob"]))
    # naming the organisation is not naming the principal
    assert not may_see(alice, audience(tlp="red", orgs=["Water Co"]))
    assert not may_see(principal(name="bob", org="Water Co"),
                       audience(tlp="red", names=["alice"]))


def test_all_rules_must_hold_together():
    alice = principal(compartments=("LES",))
    assert may_see(alice, audience(tlp="red", codes=["water"], compartments=["LES"],
                                   names=["alice"]))
    assert not may_see(alice, audience(tlp="red", codes=["energy"], compartments=["LES"],
                                       names=["alice"]))
    assert not may_see(alice, audience(tlp="red", codes=["water"], compartments=["PCII"],
                                       names=["alice"]))
