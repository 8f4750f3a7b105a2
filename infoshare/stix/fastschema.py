"""The schema step's verdict in compiled code: jsonschema-rs validators that accept exactly
the objects the Python `jsonschema` validators accept, so the Python walk (about 94% of a
TAXII POST's cost) runs only to word the errors of an object already found invalid.

jsonschema-rs (Rust) decides the same JSON Schema 2020-12 keywords the same way on JSON
values, with three differences this module takes away:

- Regular expressions (`pattern`, `patternProperties`): Rust's `$` is the end of the text
  and its `\\d` is ASCII, where Python's `$` also matches before a final newline and its
  `\\d` is any character `str.isdecimal()` accepts. Every regex of the schemas is rewritten
  to say Python's meaning in Rust's syntax (`python_regex`); one this module cannot
  rewrite exactly makes its schema go without a fast path.
- Formats: the Python validator's own format checker answers for each format (a Python
  call, made only for the few properties with a format).
- Values that are not JSON: NaN and infinities (Rust reads them as null), lone surrogates
  and non-string keys (Rust refuses them). An object holding one is left to Python.

Anything the fast validator raises also leaves the object to Python, which then says what
the validator would (an error or the exception). `tests/test_validate_differential.py`
checks the whole against stix2-validator and `tests/test_fastschema.py` checks each
rewritten regex against Python's `re`. Pure: no Flask, no database.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable

import jsonschema_rs

# Keywords whose value is a schema, a list of schemas, or a map of names to schemas.
_SCHEMA = ("additionalProperties", "contains", "else", "if", "items", "not",
           "propertyNames", "then", "unevaluatedItems", "unevaluatedProperties")
_SCHEMAS = ("allOf", "anyOf", "oneOf", "prefixItems")
_NAMED = ("$defs", "definitions", "dependentSchemas", "properties")


class Unsupported(ValueError):
    """A regex this module cannot say exactly in Rust's syntax."""


@functools.cache
def _decimal_class() -> str:
    """The characters Python's `\\d` matches in a str pattern (str.isdecimal), as the
    inside of a Rust character class: ranges of literal characters."""
    ranges, start, previous = [], None, None
    for code in range(0x110000):
        if chr(code).isdecimal():
            if start is None:
                start = code
            elif code != previous + 1:
                ranges.append((start, previous))
                start = code
            previous = code
    ranges.append((start, previous))
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


def python_regex(pattern: str) -> str:
    """`pattern` with Python `re.search` semantics, in Rust regex syntax.

    Handles what the STIX schemas use: escapes, character classes, and `$` where only
    closing parentheses follow it (then `\\n?$` says the same in Rust). Raises Unsupported
    for anything else that could read differently (`$` elsewhere, `\\D`, `\\w`, `\\s`,
    `\\b`, `\\Z`, an empty class, inline flags, lookaround)."""
    out, i, in_class, class_open = [], 0, False, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            pair = pattern[i:i + 2]
            if len(pair) < 2 or pair[1].isalnum() and pair != "\\d":
                raise Unsupported(f"escape {pair!r} in {pattern!r}")
            if pair == "\\d":
                out.append(_decimal_class() if in_class else f"[{_decimal_class()}]")
            else:
                out.append(pair)
            i, class_open = i + 2, False
            continue
        if in_class:
            if char == "]" and class_open:
                raise Unsupported(f"a class that starts with ] in {pattern!r}")
            if char == "[" or pattern[i:i + 2] in ("&&", "--", "~~"):
                raise Unsupported(f"{char!r} reads otherwise in a Rust class: {pattern!r}")
            in_class = char != "]"
            class_open = char == "^" and pattern[i - 1] == "["
        elif char == "[":
            in_class, class_open = True, True
        elif char == "$":
            if pattern[i + 1:].strip(")"):
                raise Unsupported(f"$ before the end in {pattern!r}")
            char = "(?:\\n?$)"
        elif char == "(" and pattern[i + 1:i + 2] == "?":
            raise Unsupported(f"a group with flags or lookaround in {pattern!r}")
        out.append(char)
        i += 1
    if in_class:
        raise Unsupported(f"an unclosed class in {pattern!r}")
    return "".join(out)


def translated(schema: object) -> object:
    """A copy of `schema` with every regex keyword rewritten by `python_regex`."""
    if isinstance(schema, list):
        return [translated(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    copy = dict(schema)
    for key, value in schema.items():
        if key == "pattern" and isinstance(value, str):
            copy[key] = python_regex(value)
        elif key == "patternProperties" and isinstance(value, dict):
            copy[key] = {python_regex(k): translated(v) for k, v in value.items()}
        elif key in _SCHEMA:
            copy[key] = translated(value)
        elif key in _SCHEMAS and isinstance(value, list):
            copy[key] = [translated(s) for s in value]
        elif key in _NAMED and isinstance(value, dict):
            copy[key] = {k: translated(v) for k, v in value.items()}
    return copy


class Gate:
    """Compiled validators over one registry of (URI, schema) resources."""

    def __init__(self, resources: Iterable[tuple[str, dict]],
                 conforms: Callable[[object, str], bool], formats: Iterable[str]):
        self._registry = jsonschema_rs.Registry(
            [(uri, translated(schema)) for uri, schema in resources], retriever=_nowhere)
        self._formats = {name: functools.partial(_conforms, conforms, name)
                         for name in formats}

    def validator(self, uri: str, schema: dict):
        """A validator for `schema` (whose refs resolve against `uri`), or None when one of
        its regexes cannot be said exactly."""
        try:
            return jsonschema_rs.Draft202012Validator(
                translated(schema), registry=self._registry, base_uri=uri,
                validate_formats=True, formats=self._formats, retriever=_nowhere,
                pattern_options=jsonschema_rs.RegexOptions())
        except Exception:  # noqa: BLE001 - Unsupported, or a regex Rust will not compile
            return None


def _nowhere(uri: str):
    """Every schema is in the registry: a ref outside it is an error, never a download."""
    raise LookupError(f"no schema {uri} in the registry")


def _conforms(conforms, name: str, value: str) -> bool:
    return conforms(value, name)


def accepts(validator, instance: object) -> bool:
    """True only when the compiled validator finds `instance` valid and `instance` is
    plain JSON (finite numbers): False means "ask Python", never "invalid"."""
    if validator is None:
        return False
    try:
        if not validator.is_valid(instance):
            return False
        json.dumps(instance, allow_nan=False)  # NaN, Infinity: Rust saw them as null
    except Exception:  # noqa: BLE001 - lone surrogates, odd keys: Python decides those
        return False
    return True
