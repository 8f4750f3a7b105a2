"""The fast check reaches stix2-validator 3.2.0's verdicts: a differential property test.

`infoshare.stix.conformance` replaces `stix2validator.validate_instance` (schemas compiled
once, patterns parsed once and cached). A looser check would let malformed objects into a
store partners read, so hypothesis starts from a valid object of every kind the service
accepts (tests/stix_examples.py) and breaks it: a required property dropped, a value of the
wrong type, impossible or badly formed timestamps, bad ids, broken or odd patterns,
values outside an open vocabulary (a SHOULD: still valid when not strict), custom
properties well and badly named, STIX-looking objects nested in lists, another type
name. For each object:

- `conformance.errors` equals `validate_instance(...).errors` message for message, or
  both raise;
- `check` (the pre-checks in front of it included) gives the same verdict and the same
  message as the check built on `validate_instance`, except where that one failed with an
  exception and the new one names the properties instead.
"""

from __future__ import annotations

import copy
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from stix2validator import ValidationOptions, validate_instance
from stix2validator.v21 import musts

from infoshare.stix import conformance
from infoshare.stix.validate import InvalidObject, check

from .stix_examples import EXAMPLES

OPTIONS = ValidationOptions(strict=False, version="2.1")
DIFFERENTIAL = settings(max_examples=500, deadline=None, derandomize=True,
                        suppress_health_check=[HealthCheck.too_slow])
CRASHED = "not valid STIX 2.1: a property has the wrong type"


def reference_errors(obj: dict) -> list[str]:
    return [str(e) for e in validate_instance(copy.deepcopy(obj), OPTIONS).errors]


def outcome(function, obj):
    try:
        return function(copy.deepcopy(obj))
    except Exception as exc:  # noqa: BLE001 - the exception class is the outcome
        return type(exc)


def verdict(obj) -> str | None:
    """check's message, or None when it accepts."""
    try:
        check(copy.deepcopy(obj))
    except InvalidObject as exc:
        return str(exc)
    return None


def reference_verdict(obj) -> str | None:
    """The same check with stix2-validator's validate_instance behind it."""
    with mock.patch.object(conformance, "errors", reference_errors):
        return verdict(obj)


def assert_agree(obj) -> str:
    """Asserts agreement; returns what the reference said: valid, invalid or crashed."""
    if isinstance(obj, dict) and "id" in obj and "type" in obj:
        ours, theirs = outcome(conformance.errors, obj), outcome(reference_errors, obj)
        if isinstance(theirs, type):
            assert isinstance(ours, type) or ours, (obj, ours, theirs)
        else:
            assert ours == theirs, obj
    ours, theirs = verdict(obj), reference_verdict(obj)
    if isinstance(obj, dict) and obj.get("type") == "bundle":
        assert ours is not None  # refused outright; the validator judges the contents
        return "bundle"
    assert (ours is None) == (theirs is None), (obj, ours, theirs)
    if theirs is None:
        return "valid"
    if theirs.startswith(CRASHED):
        return "crashed"
    assert ours == theirs, obj
    return "invalid"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_is_valid_for_both(name):
    assert reference_verdict(EXAMPLES[name]) is None
    assert verdict(EXAMPLES[name]) is None


# --- breaking things -------------------------------------------------------------------------

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["", "x", "2024-13-01T00:00:00Z", "indicator--x", "[ipv4-addr:value = '1']",
                     "en", "tcp", "GREEN"]),
    st.lists(st.sampled_from([1, "a", None, {}]), max_size=3),
    st.dictionaries(st.sampled_from(["a", "tlp", "SHA-256", "x_y"]),
                    st.sampled_from([1, "a", None]), max_size=2),
)

TIMESTAMPS = st.one_of(
    st.builds("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}Z".format,
              st.sampled_from([0, 1, 1900, 2023, 2024, 2100, 9999]),
              st.integers(0, 13), st.integers(0, 32), st.integers(0, 24),
              st.integers(0, 60), st.integers(0, 61),
              st.sampled_from(["", ".0", ".123", ".1234567", "." + "9" * 30])),
    st.sampled_from(["2024-01-31", "2024-01-31T12:00:00", "2024-01-31T12:00:00+01:00",
                     "2024-01-31 12:00:00Z", "2024-01-31T12:00:00.Z", "2024-02-29T00:00:00Z",
                     "2023-02-29T00:00:00.000Z", "2024-04-31T00:00:00.000Z",
                     "2024-01-31T12:00:00.000Z\n", "yesterday", ""]),
)
TIMESTAMP_NAMES = ["created", "modified", "valid_from", "valid_until", "first_seen",
                   "last_seen", "first_observed", "last_observed", "published",
                   "object_modified", "date", "start", "end", "ctime", "mtime",
                   "account_created", "validity_not_before"]

PATTERNS = st.one_of(
    st.sampled_from([
        "[ipv4-addr:value = '198.51.100.1']", "[ipv4-addr:value = ",
        "ipv4-addr:value = '1.2.3.4'", "[file:hashes.MD5 = 'zz']",
        "[file:hashes.'SHA-256' = '" + "a" * 64 + "']", "[file:hashes.MD5 = '" + "0" * 32 + "']",
        "[x:y = 'a']", "[x-acme-thing:prop = 'a']", "[ipv4-addr:BadProp = 'a']",
        "[ipv4-addr:x_custom = 'a']", "[domain-name:value = 'a'] WITHIN 5 SECONDS WITHIN 6 SECONDS",
        "[domain-name:value = 'a'] REPEATS 2 TIMES", "[url:value LIKE 'http%'] AND "
        "[email-addr:value MATCHES '^a']", "[process:pid = 4] START t'2024-01-01T00:00:00Z' "
        "STOP t'2024-01-02T00:00:00Z'", "[network-traffic:src_ref.value = '10.0.0.1']",
        "[file:size > 10 AND file:name = 'a']", "([a:b = 1] OR [c:d = 2])", "[]", "",
        "[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [file:name = 'x']",
        "[artifact:payload_bin = b'AAAA']",
        "[windows-registry-key:values[*].name = 'x']", "[file:name = 'a'",
    ]),
    st.text(alphabet="[]:'=abcdeiv4-. ORANDx_", max_size=40),
)

VOCABULARIES = {"indicator_types": ["not-in-vocab"], "identity_class": "galaxy",
                "relationship_type": "frobnicates", "malware_types": ["bad vocab"],
                "report_types": ["x"], "infrastructure_types": ["x"], "context": "whatever",
                "opinion": "maybe", "sophistication": "supreme", "region": "atlantis",
                "tool_types": ["X"], "resource_level": "cosmic", "pattern_type": "snort",
                "lang": "xx-notalang", "definition_type": "secret"}

NAMES = st.sampled_from(["x_acme_note", "x_note", "foo", "FOO", "ab", "id", "a" * 251,
                         "has-dash", "x_acme_bin", "data_hex", "extensions", "granular_markings",
                         "object_marking_refs", "created_by_ref", "lang", "confidence",
                         "revoked", "labels", "external_references", "defanged"])

BAD_IDS = st.sampled_from([
    "{}--8E2E2D2B-17D4-4CBF-938F-98EE46B3CD3F", "{}--not-a-uuid", "malware--" + "0" * 8 + "-" +
    "0" * 4 + "-1000-8000-" + "0" * 12, "{}--8e2e2d2b-17d4-1cbf-938f-98ee46b3cd3f",
    "{}--8e2e2d2b-17d4-5cbf-938f-98ee46b3cd3f", "{}", "--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"])


@st.composite
def broken(draw):
    """A valid example with one to three mutations."""
    obj = copy.deepcopy(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])
    for _ in range(draw(st.integers(1, 3))):
        mutation = draw(MUTATIONS)
        event(mutation.__name__)
        mutation(draw, obj)
    return obj


def _as(obj: dict, kind: str) -> None:
    """Make obj claim another type, keeping its id's uuid where it has one."""
    old = obj.get("id")
    suffix = old.split("--", 1)[1] if isinstance(old, str) and "--" in old else (
        "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f")
    obj.update(type=kind, id=f"{kind}--{suffix}")


def drop(draw, obj):
    obj.pop(draw(st.sampled_from(sorted(obj))), None)


def wrong_type(draw, obj):
    obj[draw(st.sampled_from(sorted(obj)))] = draw(JUNK)


def bad_timestamp(draw, obj):
    present = [n for n in TIMESTAMP_NAMES if n in obj]
    obj[draw(st.sampled_from(present or TIMESTAMP_NAMES))] = draw(TIMESTAMPS)


def bad_id(draw, obj):
    obj["id"] = draw(BAD_IDS).format(obj.get("type"))


def pattern(draw, obj):
    _as(obj, "indicator")
    obj.update(pattern=draw(PATTERNS), pattern_type="stix", valid_from=obj.get("created", ""))
    if draw(st.booleans()):
        obj["pattern_version"] = draw(st.sampled_from(["2.1", "2.0", "2.2", 2.1]))


def vocabulary(draw, obj):
    name = draw(st.sampled_from(sorted(VOCABULARIES)))
    obj[name] = VOCABULARIES[name]


def custom(draw, obj):
    obj[draw(NAMES)] = draw(JUNK)


def nested(draw, obj):
    """A STIX-looking object inside a list: the validator's MUST checks descend into it."""
    inner = copy.deepcopy(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])
    draw(st.sampled_from([drop, wrong_type, bad_timestamp, custom]))(draw, inner)
    obj["x_acme_related"] = [inner]


def retype(draw, obj):
    kind = draw(st.sampled_from(["indicator", "malware", "file", "kill-chain-phase", "core",
                                 "x-acme-thing", "Bad_Type", "xy", "bundle",
                                 "marking-definition", "language-content",
                                 "observed-data", "extension-definition"]))
    _as(obj, kind)


def observables(draw, obj):
    """The deprecated `objects` dictionary of observed-data, well or badly formed."""
    _as(obj, "observed-data")
    obj.pop("object_refs", None)
    obj["objects"] = draw(st.sampled_from([
        {"0": {"type": "ipv4-addr", "value": "198.51.100.3"}},
        {"0": {"type": "file", "name": "a", "mtime": "2023-02-29T00:00:00Z"}},
        {"0": {"value": "x"}}, {"0": {"type": "domain-name", "value": 5}},
        {"0": {"type": "network-traffic", "protocols": ["tcp"], "src_ref": "1"}},
        [], {}, {"0": "ipv4-addr"}]))


def markings(draw, obj):
    obj[draw(st.sampled_from(["object_marking_refs", "granular_markings"]))] = draw(
        st.sampled_from([[], ["marking-definition--x"], [obj.get("id")],
                         [{"marking_ref": "marking-definition--34098fce-860f-48ae-8e50-"
                                          "ebd3cc5e41da", "selectors": ["name", "nope.x"]}],
                         [{"lang": "en", "selectors": ["description"]}]]))


# Where the compiled schema check (stix/fastschema.py) and Python's could part: regexes
# ($ before a final newline, \d on digits that are not ASCII, . on CR and line separators),
# numbers JSON has no word for or that are big, integers written as floats, lone
# surrogates, and text the formats (email, idn-hostname, uri) judge.
ODD_DIGITS = ["\u0663", "\u0a6d", "\U0001d7d8", "\U00011f53", "\uff11"]
ODD_NUMBERS = [float("nan"), float("inf"), -float("inf"), 1e300, 2**64, -(2**70), 1.0, -0.0,
               7.5, 2**53 + 1]
ODD_TEXT = ["a@b", "a@example.com\n", "xn--bcher-kva.example", "b\u00fccher.example",
            "-bad-.example", "http://x y", "https://example.com/\u00e9", "::1\n", "\ud800",
            "mailto:a@b", "a" * 64 + "\n"]


def _strings(value, found):
    """(container, key) of every string in value, and of every member name (key None)."""
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((value, key, True))
            if isinstance(item, str):
                found.append((value, key, False))
            _strings(item, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                found.append((value, index, False))
            _strings(item, found)
    return found


def _odd(draw, text: str) -> str:
    how = draw(st.sampled_from(["newline", "newline", "digit", "digit", "dot", "replace"]))
    if how == "newline":
        return text + draw(st.sampled_from(["\n", "\n\n", "\r\n", " \n"]))
    if how == "dot":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(["\r", "\u2028", "\n", "\x85"])) + text[at:]
    if how == "replace":
        return draw(st.sampled_from(ODD_TEXT))
    digits = [i for i, ch in enumerate(text) if ch.isdigit()] or [len(text)]
    at = draw(st.sampled_from(digits))
    return text[:at] + draw(st.sampled_from(ODD_DIGITS)) + text[at + 1:]


def odd_text(draw, obj):
    """A value or a member name, anywhere in the object, made odd for a regex or a format."""
    container, key, is_name = draw(st.sampled_from(_strings(obj, [])))
    if is_name:
        container[_odd(draw, key)] = container.pop(key)
    else:
        container[key] = _odd(draw, container[key])


def odd_number(draw, obj):
    """A number property (or a custom one) given a value that is odd as JSON."""
    name = draw(st.sampled_from(["confidence", "number_observed", "size", "number", "pid",
                                 "x_acme_score", "src_port", "number_of_subkeys"]))
    obj[name] = draw(st.sampled_from(ODD_NUMBERS))


MUTATIONS = st.sampled_from([drop, wrong_type, bad_timestamp, bad_id, pattern, vocabulary,
                             custom, nested, retype, observables, markings, odd_text,
                             odd_number])


@DIFFERENTIAL
@given(broken())
def test_broken_objects_get_the_validators_verdict(obj):
    event(assert_agree(obj))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(EXAMPLES)), st.data())
def test_every_timestamp_gets_the_validators_verdict(name, data):
    """The timestamp MUST asks dateutil only for dates that are not plainly real; it must
    agree with asking it every time, on every odd date in every timestamp property."""
    obj = copy.deepcopy(EXAMPLES[name])
    bad_timestamp(data.draw, obj)
    event(assert_agree(obj))


def test_a_pattern_is_judged_by_its_exact_text():
    """The cache is keyed by exact text: two patterns that differ only in a quote or case
    get their own verdicts, and an object's id is never carried to another."""
    good, bad = EXAMPLES["indicator"], dict(EXAMPLES["indicator"])
    bad.update(pattern="[ipv4-addr:value = '198.51.100.1'", id="indicator--"
               "0b7c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4")
    for obj in (good, bad, good, bad):
        assert_agree(obj)
    messages = conformance.errors(copy.deepcopy(bad))
    assert messages and all(m.startswith(bad["id"]) for m in messages)


def test_long_patterns_are_judged_but_not_kept():
    """A partner's 10 MiB pattern must not sit in the cache: only short texts are kept."""
    conformance._pattern_messages.cache_clear()
    long = dict(EXAMPLES["indicator"], pattern="[file:name = '" + "a" * 5000 + "']")
    broken_long = dict(long, pattern=long["pattern"][:-1])
    for obj in (long, broken_long):
        assert_agree(obj)
    assert conformance._pattern_messages.cache_info().currsize == 0
    assert_agree(dict(EXAMPLES["indicator"], pattern="[file:name = 'a']"))
    assert conformance._pattern_messages.cache_info().currsize == 1


# --- the plain patterns that are not parsed ----------------------------------------------------

PLAIN_TEXT = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                          exclude_characters="\"'()[\\]"), min_size=1)
PLAIN_COMPARISON = st.builds(
    "[{}:value = '{}']".format,
    st.sampled_from(["ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr", "mac-addr"]),
    PLAIN_TEXT)
NEAR_COMPARISON = st.builds(
    "[{}:{} {} '{}']".format,
    st.sampled_from(["ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr", "mac-addr",
                     "file", "x-acme", "IPv4-addr", "ipv4-addr "]),
    st.sampled_from(["value", "value", "value", "values", "Value", "name", "value.x"]),
    st.sampled_from(["=", "=", "=", "!=", "LIKE", "==", "IN"]),
    st.text(alphabet=st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                               st.sampled_from(["\\", "'", "[", "]", "(", ")", "\n", "é",
                                                "💥"])), max_size=12),
)
COMPARISONS = st.one_of(PLAIN_COMPARISON, PLAIN_COMPARISON, NEAR_COMPARISON)
JOINS = st.sampled_from([" OR ", " AND ", " OR ", " AND ", " OR ", " FOLLOWEDBY ", "  OR ",
                         "OR", " or "])


@st.composite
def plain_looking(draw):
    parts = [draw(COMPARISONS)]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(JOINS), draw(COMPARISONS)]
    return draw(st.sampled_from(["", "", "", "", "(", " "])) + "".join(parts) + draw(
        st.sampled_from(["", "", "", "", "", " ", ")", "\n", " WITHIN 5 SECONDS"]))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(plain_looking())
def test_plain_patterns_need_no_parse(pattern):
    """Whatever the unparsed form lets through, the validator's own pattern MUST (two
    parses, no cache) finds nothing wrong with; the rest goes to the parser as before."""
    plain = conformance.plain_pattern(pattern, "2.1")
    event("plain" if plain else "parsed")
    if plain:
        probe = {"type": "indicator", "pattern_type": "stix", "pattern": pattern,
                 "spec_version": "2.1", "id": "indicator--x"}
        assert list(musts.patterns(probe, OPTIONS)) == []
    obj = dict(EXAMPLES["indicator"], pattern=pattern)
    assert_agree(obj)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(PLAIN_COMPARISON, min_size=1, max_size=4),
       st.lists(st.sampled_from([" OR ", " AND "]), min_size=3, max_size=3))
def test_every_plain_pattern_passes_the_validators_pattern_check(comparisons, joins):
    """The plain form itself, densely: each one passes the validator's pattern MUST."""
    pattern = comparisons[0] + "".join(j + c for j, c in zip(joins, comparisons[1:],
                                                             strict=False))
    assert conformance.plain_pattern(pattern, "2.1")
    probe = {"type": "indicator", "pattern_type": "stix", "pattern": pattern,
             "spec_version": "2.1", "id": "indicator--x"}
    assert list(musts.patterns(probe, OPTIONS)) == []
