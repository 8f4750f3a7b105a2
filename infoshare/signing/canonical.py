"""RFC 8785 (JCS) canonical JSON, fast for the objects the service signs.

For JSON without floats and with ASCII keys, RFC 8785 is exactly what the standard
library's C encoder writes with sorted keys, no white space and no ASCII escaping: strings
are escaped the same way (only quote, backslash and control characters) and integers print
the same. Floats (ES6 number formatting) and non-ASCII keys (UTF-16 key order) differ, so
any object holding one goes through the rfc8785 package instead. The fast path is about
five times quicker, which matters because canonicalising is half the cost of signing.
tests/test_canonical.py checks both paths against rfc8785 on generated documents.
"""

from __future__ import annotations

import json

import rfc8785

_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                           allow_nan=False).encode


_SAFE_INT = 2**53 - 1  # I-JSON: larger integers are not exact in every reader


def _plain(value: object) -> bool:
    """No floats anywhere, only ASCII keys, and integers every JSON reader holds exactly."""
    if isinstance(value, dict):
        return all(k.isascii() and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -_SAFE_INT <= value <= _SAFE_INT
    return not isinstance(value, float)


def dumps(obj: object) -> bytes:
    if _plain(obj):
        try:
            return _encode(obj).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: let rfc8785 decide what to do
            pass
    return rfc8785.dumps(obj)
