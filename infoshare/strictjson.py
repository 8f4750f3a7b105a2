"""Strict JSON in: what RFC 8259 and STIX allow, nothing more.

Python's json module accepts NaN, Infinity, numbers that overflow to infinity, integers of
any size, lone UTF-16 surrogates and duplicate member names (keeping the last, where other
parsers keep the first or refuse: two readers would see two objects). Stored and served
verbatim, any of them breaks every strict parser that polls the page holding it
(requests/simplejson, JSON.parse), so they are refused at the door, before anything is
stored.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# STIX 2.1 section 2.7: integers are within the IEEE 754 double's exact range.
MAX_INTEGER = 2**53 - 1
# A surrogate can only come from a \\uD800-\\uDFFF escape (UTF-8 cannot carry one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class StrictJSONError(ValueError):
    pass


def _constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"the number {text[:40]} is out of range")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise StrictJSONError(f"the member name {twice[:40]!r} appears twice in one object")
    return found


def _int(text: str) -> int:
    if len(text) > 17 or abs(int(text)) > MAX_INTEGER:
        raise StrictJSONError(f"the integer {text[:40]} is beyond what STIX allows "
                              f"(+/-{MAX_INTEGER})")
    return int(text)


def loads(data: bytes | str) -> Any:
    """Parse strictly; StrictJSONError (a ValueError) names the problem.

    Bytes must be UTF-8 (RFC 8259 8.1): json.loads would also take UTF-16 and UTF-32, where
    the escape test below cannot see a surrogate. json.JSONDecodeError, UnicodeDecodeError
    and RecursionError pass through for the caller to word as it needs.
    """
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int,
                       object_pairs_hook=_unique)
    if _SURROGATE_ESCAPE.search(text):
        _check_text(value)
    return value


def _check_text(value: Any) -> None:
    """Lone surrogates cannot be encoded as UTF-8; the cheap test is to try once."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise StrictJSONError("a string holds a lone UTF-16 surrogate, which is not "
                              "Unicode text") from None
