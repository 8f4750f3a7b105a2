"""TAXII response bodies built from stored rows.

Objects go out as the bytes they were stored as, spliced into the envelope: nothing is
parsed or re-serialised on the read path, which is both what keeps signatures valid and
what makes a 1000-object page cost milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from flask import Response

from .. import timestamps
from .mediatypes import STIX, TAXII

EPOCH = timestamps.format_us(0)


def taxii_json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type=TAXII)


def _page_head(more: bool, next_token: str | None) -> bytes:
    head = b'{"more":true' if more else b'{"more":false'
    if more and next_token:
        head += b',"next":' + json.dumps(next_token).encode()
    return head


def date_added_headers(response: Response, first: int | None, last: int | None,
                       floor: int | None) -> Response:
    """X-TAXII-Date-Added-First/Last. An empty page repeats the position the client is
    at (or the epoch), so a client that resumes from Date-Added-Last stays where it is."""
    empty = timestamps.format_us(floor) if floor is not None else EPOCH
    response.headers["X-TAXII-Date-Added-First"] = (
        timestamps.format_us(first) if first is not None else empty)
    response.headers["X-TAXII-Date-Added-Last"] = (
        timestamps.format_us(last) if last is not None else empty)
    return response


def envelope(raws: Sequence[bytes], more: bool, next_token: str | None) -> bytes:
    if not raws:
        return b"{}"
    return b"".join((_page_head(more, next_token), b',"objects":[', b",".join(raws), b"]}"))


def manifest(rows: Sequence, more: bool, next_token: str | None) -> bytes:
    if not rows:
        return b"{}"
    records = [{"id": r.id, "date_added": timestamps.format_us(r.date_added),
                "version": r.version, "media_type": STIX} for r in rows]
    return _page_head(more, next_token) + b',"objects":' + json.dumps(records).encode() + b"}"


def versions(rows: Sequence, more: bool, next_token: str | None) -> bytes:
    if not rows:
        return b"{}"
    body = json.dumps([r.version for r in rows]).encode()
    return _page_head(more, next_token) + b',"versions":' + body + b"}"


def status(row) -> dict:
    body = {
        "id": row.id, "status": row.status,
        "request_timestamp": timestamps.format_us(row.request_us),
        "total_count": row.total_count, "success_count": row.success_count,
        "failure_count": row.failure_count, "pending_count": row.pending_count,
    }
    for key in ("successes", "failures", "pendings"):
        if row.details.get(key):  # TAXII prohibits empty lists
            body[key] = row.details[key]
    return body
