"""The MUST-level verdicts of stix2-validator 3.2.0 on one STIX 2.1 object, at a fraction of
its cost.

`stix2validator.validate_instance` re-walks its schema folder, re-reads every schema file
and builds a fresh jsonschema registry for each object (refs are then fetched from disk
again on every validation), and parses each STIX pattern twice with ANTLR. Here the same
schemas, patched the same way, are compiled once per process into validators sharing one
registry that already holds every schema; its own MUST checks run as they are, except
three that are made cheaper without changing what they report:

- `patterns`: a plain comparison of values (`[ipv4-addr:value = '...'] OR ...`, a form
  the grammar accepts whole) is not parsed; any other pattern is parsed once (the
  validator's grammar check and the inspection of its types and properties share one
  parse tree) and the result is kept per exact pattern text and version in an LRU cache
  bounded in entries and in the length of what it keeps; errors are rebuilt per object,
  so nothing of one object reaches another.
- `timestamp`: dateutil is asked only when a timestamp is not plainly a real date and time.
- the SHOULD checks do not change a non-strict verdict, but an exception from one of them
  made the whole call fail; they run only on an object that is otherwise valid, so such an
  object is still refused.

`errors(obj)` returns the validator's error messages (its wording, in its order); it raises
whatever the validator would have raised on input it cannot handle. `tests/
test_validate_differential.py` checks both against `validate_instance` on generated
objects. Pure: no Flask, no database.
"""

from __future__ import annotations

import datetime
import functools
import os
import re
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from types import GeneratorType

import stix2validator
from antlr4 import CommonTokenStream, InputStream, ParseTreeWalker
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from stix2patterns.exceptions import STIXPatternErrorListener
from stix2patterns.helpers import brackets_check
from stix2patterns.v21 import object_validator
from stix2patterns.v21.grammars.STIXPatternLexer import STIXPatternLexer
from stix2patterns.v21.grammars.STIXPatternParser import STIXPatternParser
from stix2patterns.v21.inspector import InspectionListener
from stix2patterns.v21.validator import DuplicateQualifierTypeError, ValidationListener
from stix2validator import ValidationOptions
from stix2validator import validator as reference
from stix2validator.errors import PatternError, pretty_error
from stix2validator.v21 import enums, musts, shoulds

from . import fastschema

OPTIONS = ValidationOptions(strict=False, version="2.1")
SCHEMA_DIR = os.path.abspath(os.path.dirname(stix2validator.__file__) + "/schemas-2.1/schemas/")
PATTERN_CACHE_SIZE = 4096  # entries
PATTERN_CACHE_MAX_CHARS = 2048  # longer patterns are parsed every time, never kept


# --- schemas -------------------------------------------------------------------------------

@functools.cache
def _schema_paths() -> dict[str, str]:
    """File name -> path of the first match, in the order `find_schema` walks the folder."""
    found: dict[str, str] = {}
    for root, _dirs, filenames in os.walk(SCHEMA_DIR, followlinks=True):
        if "examples" in root:
            continue
        for name in filenames:
            found.setdefault(name, os.path.join(root, name))
    return found


@functools.cache
def _registry() -> Registry:
    """Every schema of the folder, keyed by the file URI refs resolve to, patched exactly as
    the validator's own `retrieve_from_filesystem` patches what it reads; anything else
    still goes through that function."""
    retrieve = functools.partial(reference.retrieve_from_filesystem, schema_dir=SCHEMA_DIR)
    return Registry(retrieve=retrieve).with_resources(_resources()).crawl()


# Two of the schemas' regexes backtrack exponentially in Python's re: `([a-z][a-z0-9]*)+`
# tries every split of a run of letters, so one extension key of 30 letters, or the type of
# an observable inside observed-data, held a worker for minutes. They are read as the
# equivalent linear regexes (a letter, then letters and digits, is what one or more such
# groups match), and messages that quote a schema quote the original text.
LINEAR = {
    r"^([a-z][a-z0-9]*)+(-[a-z0-9]+)*\-?$": r"^[a-z][a-z0-9]*(-[a-z0-9]+)*\-?$",
    r"^([a-z][a-z0-9]*)+(-[a-z0-9]+)*\-ext$": r"^[a-z][a-z0-9]*(-[a-z0-9]+)*\-ext$",
}
_QUOTED = [(repr(linear)[1:-1], repr(original)[1:-1]) for original, linear in LINEAR.items()]
_QUOTED += [(linear, original) for original, linear in LINEAR.items()]


def _linear(node):
    """The schema with every regex of LINEAR, as a pattern or a patternProperties key,
    replaced by its linear twin."""
    if isinstance(node, dict):
        return {LINEAR.get(key, key): (LINEAR.get(value, value) if key == "pattern"
                                       and isinstance(value, str) else _linear(value))
                for key, value in node.items()}
    if isinstance(node, list):
        return [_linear(value) for value in node]
    return node


def _quoting_originals(message: str) -> str:
    for linear, original in _QUOTED:
        message = message.replace(linear, original)
    return message


@functools.cache
def _resources() -> tuple[tuple[str, Resource], ...]:
    """(file URI, patched schema) for every schema of the folder."""
    resources = []
    for path in _schema_paths().values():
        if path.endswith(".json"):
            schema = _linear(reference.patch_schema(reference.load_schema(path), path))
            resources.append((Path(path).as_uri(), Resource.from_contents(schema)))
    return tuple(resources)


def _schema(path: str, bundle: bool) -> dict:
    """The schema `load_validator` validates an object against, patched as it does."""
    schema = reference.load_schema(path)
    if bundle:  # as `_get_error_generator` does for an object of type bundle
        schema["properties"]["objects"] = {"objects": {"type": "array", "minItems": 1}}
    return _linear(reference.patch_schema(schema, path))


@functools.cache
def _validator(path: str, bundle: bool) -> Draft202012Validator:
    """The validator `load_validator` builds for this schema, built once."""
    patched = _schema(path, bundle)
    registry = _registry().with_resource(path, DRAFT202012.create_resource(patched))
    return reference.STIXValidator(patched, registry=registry,
                                   format_checker=Draft202012Validator.FORMAT_CHECKER)


@functools.cache
def _gate() -> fastschema.Gate:
    """The compiled twin of `_registry`: the same patched schemas under the same URIs."""
    resources = [(uri, resource.contents) for uri, resource in _resources()]
    checker = Draft202012Validator.FORMAT_CHECKER
    return fastschema.Gate(resources, checker.conforms, checker.checkers)


@functools.cache
def _fast_validator(path: str, bundle: bool):
    """The compiled twin of `_validator(path, bundle)`, or None where there is none."""
    return _gate().validator(Path(path).as_uri(), _schema(path, bundle))


def _schema_errors(name, obj, default: str):
    """`_get_error_generator` with the schema folder's default schemas, from the cache; the
    Python walk only for an object the compiled validator does not find valid."""
    paths = _schema_paths()
    try:
        path = paths.get(name + ".json") or paths[default + ".json"]
    except TypeError:  # a type that is not a string: the validator falls back the same way
        path = paths[default + ".json"]
    bundle = obj["type"] == "bundle"
    if fastschema.accepts(_fast_validator(path, bundle), obj):
        return ()  # valid: nothing for the Python walk to word
    return _validator(path, bundle).iter_errors(obj)


def _schema_validate(obj: dict) -> list[tuple]:
    """`stix2validator.validator._schema_validate` for 2.1 with no custom schemas."""
    prefix = ""
    if "id" in obj:
        try:
            prefix = obj["id"] + ": "
        except TypeError:
            prefix = "unidentifiable object: "
    core = "core"
    if (all(p in obj for p in ["type", "id"]) and all(p not in obj for p in ["created", "modified"])
            and not obj["type"] == "marking-definition"):
        core = "cyber-observable-core"
    gens = [(_schema_errors(obj["type"], obj, core), prefix)]
    if obj["type"] == "observed-data" and "objects" in obj:
        if not isinstance(obj["objects"], dict):
            gens.append(([SchemaValidationError("Observed Data objects must be in dict format.",
                                                prefix)], prefix))
            return gens
        for key, val in obj["objects"].items():
            if "type" not in val:
                gens.append(([SchemaValidationError(
                    "Observable object must contain a 'type' property.", prefix)],
                    prefix + "object '" + key + "': "))
                continue
            gens.append((_schema_errors(val["type"], val, "cyber-observable-core"),
                         prefix + "object '" + key + "': "))
    return gens


# --- patterns ------------------------------------------------------------------------------

def _parse_once(pattern: str) -> tuple[list[str], object | None]:
    """stix2patterns' 2.1 `run_validator`, also handing back the inspection of the parse
    tree it walks (what `Pattern(pattern).inspect()` would parse again to get)."""
    listener = STIXPatternErrorListener()
    lexer = STIXPatternLexer(InputStream(pattern))
    lexer.removeErrorListeners()
    parser = STIXPatternParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    for i, literal in enumerate(parser.literalNames):
        if literal == "<INVALID>":
            parser.literalNames[i] = parser.symbolicNames[i]
    tree = parser.pattern()
    data = None
    if not listener.err_strings:
        inspection = InspectionListener()
        ParseTreeWalker.DEFAULT.walk(inspection, tree)
        data = inspection.pattern_data()
        listener.err_strings.extend(object_validator.verify_object(data))
        try:
            ParseTreeWalker.DEFAULT.walk(ValidationListener(), tree)
        except DuplicateQualifierTypeError as exc:
            listener.err_strings.insert(0, "FAIL: " + exc.args[0])
    if not brackets_check(pattern):
        listener.err_strings.insert(0, "FAIL: Error found at line 1:0. input is missing "
                                       "square brackets")
    return listener.err_strings, data


@functools.lru_cache(maxsize=PATTERN_CACHE_SIZE)
def _pattern_messages(pattern: str, version: str) -> tuple[str, ...]:
    """What `musts.patterns` reports for this pattern text and version, as messages.

    With OPTIONS (nothing disabled) its custom-prefix branches never fire, so what is left
    after the grammar is the format of the observable types and property names."""
    if version != "2.1":  # the 2.0 grammar checks, the 2.1 one inspects: as the validator does
        probe = {"type": "indicator", "pattern_type": "stix", "pattern": pattern,
                 "pattern_version": version, "id": ""}
        return tuple(e.message for e in musts.patterns(probe, OPTIONS))
    failures, data = _parse_once(pattern)
    if failures:
        return tuple(PatternError(str(f)).message for f in failures)
    messages = []
    for objtype, expressions in data.comparisons.items():
        if objtype not in enums.OBSERVABLE_TYPES and (
                not musts.TYPE_FORMAT_RE.match(objtype) or not 3 <= len(objtype) <= 250):
            messages.append(PatternError(f"'{objtype}' is not a valid observable type name")
                            .message)
        for expression in expressions:
            prop = expression[0][0]
            if prop in enums.OBSERVABLE_PROPERTIES.get(objtype, ()):
                continue
            if not musts.PROPERTY_FORMAT_RE.match(prop):
                messages.append(PatternError(f"'{prop}' is not a valid observable property "
                                             "name").message)
    return tuple(messages)


# The commonest indicator patterns, `[ipv4-addr:value = '198.51.100.1'] OR [domain-name:value
# = 'c2.example']`: observable types the validator knows, their `value` property, a string
# literal of printable ASCII without quotes, backslashes, brackets or parentheses, joined by
# " OR " / " AND ". The 2.1 grammar accepts every such text, nothing in it is a hash,
# a qualifier or a custom name, so `musts.patterns` reports nothing: parsing it would only
# confirm that. tests/test_validate_differential.py checks this against the parser on
# generated texts in and around this form; anything else is parsed.
_VALUE_TYPES = "ipv4-addr|ipv6-addr|domain-name|url|email-addr|mac-addr"
_PLAIN_COMPARISON = rf"\[(?:{_VALUE_TYPES}):value = '[!#-&*-Z^-~]+'\]"
_PLAIN_PATTERN = re.compile(rf"{_PLAIN_COMPARISON}(?: (?:OR|AND) {_PLAIN_COMPARISON})*\Z")


if not all(t in enums.OBSERVABLE_TYPES and "value" in enums.OBSERVABLE_PROPERTIES[t]
           for t in _VALUE_TYPES.split("|")):  # the form's premise, checked on every start
    raise RuntimeError("stix2-validator no longer knows the value of " + _VALUE_TYPES)


def plain_pattern(pattern: str, version: str) -> bool:
    """True when the pattern is of the plain form above, which the validator accepts."""
    return version == "2.1" and _PLAIN_PATTERN.match(pattern) is not None


def patterns(instance, options):
    """`musts.patterns`, parsed once and cached by exact pattern text and version; plain
    comparisons of values are known to pass without parsing."""
    if (instance["type"] != "indicator" or instance.get("pattern_type", "") != "stix"
            or isinstance(instance.get("pattern", None), str) is False):
        return
    if "pattern_version" in instance:
        version = instance["pattern_version"]
    elif "spec_version" in instance:
        version = instance["spec_version"]
    else:
        version = "2.1"
    if not isinstance(version, str):  # not a cache key: True == 1 would share an entry
        yield from musts.patterns(instance, options)
        return
    pattern = instance["pattern"]
    if plain_pattern(pattern, version):
        return
    judge = (_pattern_messages if len(pattern) <= PATTERN_CACHE_MAX_CHARS
             else _pattern_messages.__wrapped__)
    for message in judge(pattern, version):
        yield SchemaValidationError(message, path=deque([instance["id"]]))


# --- timestamps ----------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"^([0-9]{4})-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3])"
                        r":([0-5][0-9]):([0-5][0-9]|60)(\.[0-9]+)?Z$")


_OBSERVABLE_TIMESTAMPS = {"observed-data", *enums.OBSERVABLE_TYPES,
                          *enums.TIMESTAMP_OBSERVABLE_PROPERTIES,
                          *enums.TIMESTAMP_EMBEDDED_PROPERTIES}


@functools.lru_cache(maxsize=4096)
def _plainly_real(value: str) -> bool:
    """A timestamp dateutil will parse: either not in the form the must looks at (the schema
    judges those), or a date and time that exist (not Feb 30, second 60 or year 0). Kept
    per text: an envelope's objects share a few timestamps."""
    match = _TIMESTAMP.match(value)
    if match is None:
        return True
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def timestamp(instance):
    """`musts.timestamp`, which asks dateutil for every timestamp, only when one of the
    object's own timestamps is not plainly real (or the object is an observable, whose
    nested timestamps the must also reads)."""
    kind = instance["type"]
    if isinstance(kind, str) and kind not in _OBSERVABLE_TIMESTAMPS:
        names = ["created", "modified", *enums.TIMESTAMP_PROPERTIES.get(kind, ())]
        values = [instance[n] for n in names if n in instance]
        if all(isinstance(v, str) and _plainly_real(v) for v in values):
            return
    yield from musts.timestamp(instance)


# --- the whole check -----------------------------------------------------------------------

def _custom_errors(instance, checks, options):
    """stix2validator's `_iter_errors_custom`: the same calls in the same order, the same
    descent into STIX objects in lists, without an ABC isinstance test per check (a
    generator, what nearly every check returns, is taken for the iterable it is)."""
    for function in checks:
        try:
            result = function(instance)
        except TypeError:
            result = function(instance, options)
        if type(result) is GeneratorType or isinstance(result, Iterable):
            yield from result
        elif result is not None:
            yield result
    for field in instance:
        if type(instance[field]) is list:
            for obj in instance[field]:
                if reference._is_stix_obj(obj):
                    yield from _custom_errors(obj, checks, options)


_REPLACED = {"patterns": patterns, "timestamp": timestamp}
MUSTS = [_REPLACED.get(f.__name__, f) for f in musts.list_musts(OPTIONS)]
SHOULDS = shoulds.list_shoulds(OPTIONS)


def errors(obj: dict) -> list[str]:
    """The messages `validate_instance(obj, OPTIONS).errors` would hold, in order.

    Raises what the validator would raise where it cannot handle the input (an exception
    from a SHOULD check included)."""
    if not reference._is_stix_obj(obj):
        raise reference.ValidationError("Input must be an object with 'id' and 'type' "
                                        "properties.")
    found = []
    gens = _schema_validate(obj)
    gens.append((_custom_errors(obj, MUSTS, OPTIONS), ""))
    for gen, prefix in gens:
        for error in gen:
            found.append(_quoting_originals(prefix + pretty_error(error, OPTIONS.verbose)))
    if not found:
        for warning in _custom_errors(obj, SHOULDS, OPTIONS):
            pretty_error(warning, OPTIONS.verbose)
    return found
