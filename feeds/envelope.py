"""The exact bytes of each object of a TAXII envelope.

A relayed object is stored as it was received, byte for byte, never re-serialised: the
upstream's signature covers its RFC 8785 form, but a consumer comparing bytes, or hashing
them, must meet what the origin served. taxii2-client hands over parsed JSON only, so the
response body is walked here with the standard library's own decoder, which reports
where each value ends.
"""

from __future__ import annotations

import json
import re

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _NotAnEnvelope(ValueError):
    pass


def object_texts(body: bytes) -> list[bytes] | None:
    """Each element of the top-level `objects` array as received; None when the body is
    not a UTF-8 JSON object with such an array (the caller then keeps parsed JSON)."""
    try:
        text = body.decode("utf-8")
        return _objects(text)
    except (UnicodeDecodeError, ValueError):
        return None


def _objects(text: str) -> list[bytes] | None:
    at = _skip(text, 0)
    _expect(text, at, "{")
    at, found = _skip(text, at + 1), None
    if text.startswith("}", at):
        return None
    while True:
        key, at = _DECODER.raw_decode(text, at)
        if not isinstance(key, str):
            raise _NotAnEnvelope("a key is not a string")
        at = _skip(text, at)
        _expect(text, at, ":")
        at = _skip(text, at + 1)
        if key == "objects" and text.startswith("[", at):
            found, at = _array(text, at)  # the last one wins, as in json.loads
        else:
            _, at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text.startswith("}", at):
            return found
        _expect(text, at, ",")
        at = _skip(text, at + 1)


def _array(text: str, at: int) -> tuple[list[bytes], int]:
    items: list[bytes] = []
    at = _skip(text, at + 1)
    if text.startswith("]", at):
        return items, at + 1
    while True:
        _, end = _DECODER.raw_decode(text, at)
        items.append(text[at:end].encode("utf-8"))
        at = _skip(text, end)
        if text.startswith("]", at):
            return items, at + 1
        _expect(text, at, ",")
        at = _skip(text, at + 1)


def _skip(text: str, at: int) -> int:
    return _SPACE.match(text, at).end()


def _expect(text: str, at: int, char: str) -> None:
    if not text.startswith(char, at):
        raise _NotAnEnvelope(f"expected {char!r} at {at}")
