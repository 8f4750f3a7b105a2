"""Stateless, tamper-proof `next` cursors.

A cursor is the keyset position (the last date_added served) plus an HMAC over that
position, the principal and a fingerprint of the query. Any worker holding the secret can
serve the next page; a cursor altered, replayed by another principal, or reused with other
filters fails the MAC and is refused. The position itself is not secret: it is a time the
client already received in X-TAXII-Date-Added-Last.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable


class CursorError(ValueError):
    pass


def fingerprint(parts: Iterable[tuple[str, object]]) -> str:
    """A stable digest of the query a cursor belongs to (filters, not the page size)."""
    canonical = json.dumps(sorted((k, repr(v)) for k, v in parts), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _mac(secret: bytes, principal_id: str, query: str, position: int) -> bytes:
    message = f"{principal_id}\n{query}\n{position}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:18]


def encode(secret: bytes, principal_id: str, query: str, position: int) -> str:
    mac = base64.urlsafe_b64encode(_mac(secret, principal_id, query, position)).decode()
    return f"{position:x}.{mac}"


def decode(secret: bytes, principal_id: str, query: str, token: str) -> int:
    position_hex, sep, mac_text = token.partition(".")
    try:
        position = int(position_hex, 16)
        mac = base64.urlsafe_b64decode(mac_text.encode())
    except (ValueError, TypeError):
        raise CursorError("next is not a cursor this server issued") from None
    if not sep or position < 0 or position_hex != f"{position:x}":
        raise CursorError("next is not a cursor this server issued")
    if not hmac.compare_digest(mac, _mac(secret, principal_id, query, position)):
        raise CursorError("next does not belong to this query and principal; "
                          "start again without next, keeping the same filters")
    return position
