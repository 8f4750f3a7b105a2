"""The compiled schema check says exactly what Python's says (infoshare/stix/fastschema.py).

jsonschema-rs decides validity and Python's jsonschema words the errors of what it refuses,
so an object the compiled check accepts must be one Python accepts. The engines part on
regexes (`$`, `\\d`), on formats and on values that are not plain JSON; each difference is
taken away in fastschema, and each is checked here where it bites: every regex of the
schemas, rewritten, against Python's `re` on text made to find the differences; objects
built to hit each one, against stix2-validator itself; and the values left to Python.
tests/test_validate_differential.py checks the whole on broken objects of every kind.
"""

from __future__ import annotations

import copy
import json
import re

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from infoshare.stix import conformance, fastschema

from .stix_examples import EXAMPLES
from .test_validate_differential import ODD_DIGITS, assert_agree, reference_errors


def _regexes() -> list[str]:
    """Every regex of the validator's schemas: `pattern` keywords, patternProperties."""
    found: set[str] = set()

    def walk(schema, parent=None):
        if isinstance(schema, dict):
            for key, value in schema.items():
                if parent == "patternProperties":
                    found.add(key)
                elif key == "pattern" and parent != "properties" and isinstance(value, str):
                    found.add(value)
                walk(value, key)
        elif isinstance(schema, list):
            for item in schema:
                walk(item, parent)

    for path in conformance._schema_paths().values():
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as schema:
                walk(json.load(schema))
    return sorted(found)


REGEXES = _regexes()


def test_every_schema_has_a_compiled_twin():
    """Nothing falls back for want of a rewrite: every schema gets its fast validator."""
    assert len(REGEXES) > 100
    for path in conformance._schema_paths().values():
        if path.endswith(".json"):
            assert conformance._fast_validator(path, False) is not None, path
    bundle = conformance._schema_paths()["bundle.json"]
    assert conformance._fast_validator(bundle, True) is not None


# Python's re backtracks exponentially on these (about 2 s at 22 characters that do not
# match, hours at 30): as the oracle here it gets texts short enough to answer.
EXPONENTIAL = {"^([a-z][a-z0-9]*)+(-[a-z0-9]+)*\\-?$", "^([a-z][a-z0-9]*)+(-[a-z0-9]+)*\\-ext$"}


@st.composite
def near(draw, regex: str):
    """Text the regex matches, then perhaps made odd where Rust and Python read apart."""
    text = draw(st.one_of(st.from_regex(regex), st.text(max_size=8)))
    if regex in EXPONENTIAL:
        text = text[:12]
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        odd = draw(st.sampled_from(["\n", "\n\n", "\r", "\u2028", "\x85", " ", *ODD_DIGITS]))
        if draw(st.booleans()):
            text = text + odd
        elif draw(st.booleans()) and text[at:at + 1].isdigit():
            text = text[:at] + draw(st.sampled_from(ODD_DIGITS)) + text[at + 1:]
        else:
            text = text[:at] + odd + text[at:]
    return text


@pytest.mark.parametrize("regex", REGEXES)
def test_each_rewritten_regex_matches_as_python_does(regex):
    compiled = jsonschema_rs.Draft202012Validator(
        {"pattern": fastschema.python_regex(regex)},
        pattern_options=jsonschema_rs.RegexOptions())
    python = re.compile(regex)

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(near(regex))
    def agree(text):
        assert compiled.is_valid(text) == (python.search(text) is not None), (regex, text)

    agree()


@pytest.mark.parametrize("regex, why", [
    ("a$b", "$ before the end"), ("^\\w+$", "\\w"), ("\\s", "\\s"), ("a\\Z", "\\Z"),
    ("[]a]", "a class that starts with ]"), ("[a[b]", "[ in a class"), ("[a&&b]", "&&"),
    ("(?i)a", "inline flags"), ("(?=a)", "lookahead"), ("[ab", "unclosed class"),
    ("\\D", "\\D"), ("a\\", "a lone backslash"),
])
def test_what_cannot_be_said_exactly_is_refused(regex, why):
    with pytest.raises(fastschema.Unsupported):
        fastschema.python_regex(regex)


# --- objects where the engines would part, judged as stix2-validator judges them ---------------

VULNERABILITY = EXAMPLES["vulnerability"]
RELATIONSHIP = EXAMPLES["relationship"]


def _with(base: dict, **changes) -> dict:
    obj = copy.deepcopy(base)
    obj.update(changes)
    return obj


EDGES = {
    # $: Python's matches before a final newline, inside `not` and patternProperties too
    "cve source with a final newline": _with(VULNERABILITY, external_references=[
        {"source_name": "cve\n", "external_id": "not a cve"}]),
    "cve id with a final newline": _with(VULNERABILITY, external_references=[
        {"source_name": "cve", "external_id": "CVE-2024-12345\n"}]),
    "other source, cve-like id with a newline": _with(VULNERABILITY, external_references=[
        {"source_name": "nvd", "external_id": "CVE-2024-12345\n"}]),
    "relationship to a relationship, newline": _with(
        RELATIONSHIP, target_ref="relationship--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f\n"),
    "timestamp with a final newline": _with(EXAMPLES["indicator"],
                                            valid_from="2024-01-31T12:00:00Z\n"),
    "extension key with a final newline": _with(EXAMPLES["file"], extensions={
        "ntfs-ext\n": {"sid": "1"}}),
    "hash name with a final newline": _with(EXAMPLES["file"], hashes={"MD5\n": "0" * 32}),
    # \d: Python's takes digits of every script
    "cve id in Arabic-Indic digits": _with(VULNERABILITY, external_references=[
        {"source_name": "cve", "external_id": "CVE-\u0662\u0660\u0662\u0664-12345"}]),
    "other source, cve id in Arabic-Indic digits": _with(VULNERABILITY, external_references=[
        {"source_name": "nvd", "external_id": "CVE-\u0662\u0660\u0662\u0664-12345"}]),
    "capec id in fullwidth digits": _with(EXAMPLES["attack-pattern"], external_references=[
        {"source_name": "capec", "external_id": "CAPEC-\uff11\uff16\uff13"}]),
    "capec id in Kawi digits (newer Unicode)": _with(EXAMPLES["attack-pattern"],
                                                   external_references=[
        {"source_name": "capec", "external_id": "CAPEC-\U00011f53"}]),
    "timestamp in other digits": _with(EXAMPLES["indicator"],
                                       valid_from="2024-01-31T12:00:\u0660\u0660Z"),
    # formats: the Python checker's word, not Rust's
    "email the validator's regex refuses": _with(EXAMPLES["email-addr"], value="a@b"),
    "email with a newline": _with(EXAMPLES["email-addr"], value="a@example.com\n"),
    "hostname with a bad label": _with(EXAMPLES["domain-name"], value="-bad-.example"),
    "unicode hostname": _with(EXAMPLES["domain-name"], value="b\u00fccher.example"),
    "url with a space": _with(EXAMPLES["url"], value="http://x y"),
    "url that is a path": _with(EXAMPLES["url"], value="/just/a/path"),
    # not plain JSON: left to Python
    "NaN confidence": _with(EXAMPLES["indicator"], confidence=float("nan")),
    "infinite size": _with(EXAMPLES["file"], size=float("inf")),
    "NaN in a custom property": _with(EXAMPLES["indicator"], x_acme_score=float("nan")),
    "NaN in a dictionary": _with(EXAMPLES["file"], hashes={"MD5": "0" * 32,
                                                            "x-custom": float("nan")}),
    "lone surrogate in a name": _with(EXAMPLES["malware"], name="bad \ud800 name"),
    "lone surrogate in a member name": _with(EXAMPLES["malware"], **{"x_\ud800": 1}),
    # numbers
    "integer written as a float": _with(EXAMPLES["indicator"], confidence=50.0),
    "integer beyond 64 bits": _with(EXAMPLES["file"], size=2**70),
    "negative beyond 64 bits": _with(EXAMPLES["file"], size=-(2**70)),
    "big float as an integer": _with(EXAMPLES["file"], size=1e300),
    "port just out of range": _with(EXAMPLES["network-traffic"], src_port=65536),
    "port as a float": _with(EXAMPLES["network-traffic"], src_port=443.0),
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edges_get_the_validators_verdict(name):
    assert_agree(EDGES[name])


def test_the_fast_check_decides_the_edges_that_are_plain_json():
    """Where the object is plain JSON the compiled check answers itself (the point of it),
    and whenever it accepts, Python's walk finds nothing."""
    answered = 0
    for obj in [*EDGES.values(), *EXAMPLES.values()]:
        path = conformance._schema_paths().get(obj["type"] + ".json")
        if path is None:
            continue
        fast = fastschema.accepts(conformance._fast_validator(path, False), obj)
        python = not list(conformance._validator(path, False).iter_errors(obj))
        assert not fast or python, obj
        answered += fast == python
    assert answered >= len(EXAMPLES)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"a": [float("-inf")]}])
def test_numbers_json_has_no_word_for_go_to_python(value):
    """Rust reads NaN and infinities as null, so it never answers for them."""
    assert not fastschema.accepts(jsonschema_rs.Draft202012Validator({}), value)


LOOKING = [{"maxLength": 3}, {"pattern": "^a"}, {"items": {"pattern": "^a"}},
           {"items": {"additionalProperties": {"pattern": "^a"}}},
           {"propertyNames": {"pattern": "^a"}}, {"enum": ["a", 1]},
           {"items": {"additionalProperties": {"maxLength": 3}}}]


@pytest.mark.parametrize("schema", LOOKING)
@pytest.mark.parametrize("value", ["\ud800", "a\udfff", ["\udfff"], [{"k": "\ud800"}],
                                   [{"k": "abcde\udfff"}], {"a\ud800": 1}, {1: "a"},
                                   {"a": {2: 3}}])
def test_text_rust_cannot_read_is_never_accepted_wrongly(schema, value):
    """Lone surrogates and keys that are not strings: Rust either reads them as Python
    does or raises (and Python decides)."""
    if fastschema.accepts(jsonschema_rs.Draft202012Validator(schema), value):
        assert Draft202012Validator(schema).is_valid(value)


def test_a_ref_outside_the_registry_is_never_fetched():
    gate = fastschema.Gate([], lambda value, name: True, ())
    assert gate.validator("file:///x.json", {"$ref": "https://example.com/s.json"}) is None


def test_a_valid_object_needs_no_python_walk(monkeypatch):
    """The speed itself: a valid indicator never reaches jsonschema's Python validator."""
    def refuse(*args):
        raise AssertionError("the Python walk ran on a valid object")

    for path in conformance._schema_paths().values():
        if path.endswith(".json"):
            conformance._validator(path, False)
    monkeypatch.setattr(conformance, "_validator", refuse)
    assert conformance.errors(copy.deepcopy(EXAMPLES["indicator"])) == []
    assert reference_errors(EXAMPLES["indicator"]) == []


# --- regexes that backtrack exponentially in Python's re -----------------------------------

@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab09-_\nZ", max_size=14), st.sampled_from(sorted(conformance.LINEAR)))
def test_the_linear_twins_match_what_the_schemas_regexes_match(text, original):
    linear = conformance.LINEAR[original]
    assert bool(re.search(original, text)) == bool(re.search(linear, text)), text


def _redos_cases(letters: int) -> list[dict]:
    indicator = copy.deepcopy(next(o for o in EXAMPLES.values() if o["type"] == "indicator"))
    indicator["extensions"] = {"a" * letters: {"x": 1}}
    observed = copy.deepcopy(next(o for o in EXAMPLES.values()
                                  if o["type"] == "observed-data"))
    observed.pop("object_refs", None)
    observed["objects"] = {"0": {"type": "a" * letters + "_", "value": "x"}}
    return [indicator, observed]


def test_short_backtracking_inputs_get_the_validators_own_words():
    for obj in _redos_cases(12):
        assert_agree(obj)


def test_long_backtracking_inputs_are_refused_at_once():
    """40 letters: the schemas' own regexes would try 2**40 splits (Python's re, and
    stix2-validator, took 1.6 s at 23 letters). The test would hang, not fail, without
    the linear twins."""
    indicator, observed = _redos_cases(40)
    found = conformance.errors(indicator)
    assert any("'" + "a" * 40 + "' does not match any of the regexes" in m for m in found)
    with pytest.raises(KeyError):  # as the validator's own MUST check, after the schema
        conformance.errors(observed)
