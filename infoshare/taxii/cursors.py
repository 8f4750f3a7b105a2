"""Stateless, tamper-proof `next` cursors that carry their query.

A cursor holds the keyset position (the last date_added served) and the filters of the
query it continues, under an HMAC over those, the principal and the endpoint. Any worker
holding the secret can serve the next page. A client may send `next` alone (OpenCTI's
connector drops its filters after the first page): the query continues with the filters
bound in the cursor. A filter sent with `next` must equal the bound one, and a cursor
altered or replayed by another principal fails the MAC: both are refused. Nothing in a
cursor is secret: the position is a time the client already received in
X-TAXII-Date-Added-Last, and the filters are its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib
from collections.abc import Iterable


class CursorError(ValueError):
    pass


def fingerprint(parts: Iterable[tuple[str, object]]) -> str:
    """A stable digest of what a cursor is bound to (the endpoint; not the page size)."""
    canonical = json.dumps(sorted((k, repr(v)) for k, v in parts), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _mac(secret: bytes, principal_id: str, scope: str, payload: bytes) -> bytes:
    message = f"{principal_id}\n{scope}\n".encode() + payload
    return hmac.new(secret, message, hashlib.sha256).digest()[:18]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(secret: bytes, principal_id: str, scope: str, position: int,
           bound: dict) -> str:
    payload = zlib.compress(json.dumps([position, bound], separators=(",", ":")).encode())
    return f"{_b64(payload)}.{_b64(_mac(secret, principal_id, scope, payload))}"


def decode(secret: bytes, principal_id: str, scope: str, token: str) -> tuple[int, dict]:
    """(position, bound filters) of a cursor this server issued for this principal and
    endpoint; CursorError otherwise."""
    payload_text, sep, mac_text = token.partition(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, TypeError):
        raise CursorError("next is not a cursor this server issued") from None
    if not sep or not hmac.compare_digest(mac, _mac(secret, principal_id, scope, payload)):
        raise CursorError("next does not belong to this endpoint and principal; "
                          "start again without next")
    try:
        position, bound = json.loads(zlib.decompress(payload, bufsize=65536))
    except (ValueError, zlib.error, TypeError):
        raise CursorError("next is not a cursor this server issued") from None
    if not isinstance(position, int) or not isinstance(bound, dict):
        raise CursorError("next is not a cursor this server issued")
    return position, bound
