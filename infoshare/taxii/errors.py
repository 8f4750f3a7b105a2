"""TAXII error messages (TAXII 2.1 section 3.6.1): every failure answers in TAXII JSON."""

from __future__ import annotations

import json

from flask import Response

from .mediatypes import TAXII


class TaxiiError(Exception):
    def __init__(self, status: int, title: str, description: str = "",
                 headers: dict[str, str] | None = None):
        super().__init__(f"{status} {title}: {description}")
        self.status, self.title, self.description = status, title, description
        self.headers = headers or {}


def render(error: TaxiiError) -> Response:
    body = {"title": error.title, "http_status": str(error.status)}
    if error.description:
        body["description"] = error.description
    response = Response(json.dumps(body), status=error.status, content_type=TAXII)
    for key, value in error.headers.items():
        response.headers[key] = value
    if error.status == 401:
        response.headers.add("WWW-Authenticate", 'Basic realm="infoshare"')
        response.headers.add("WWW-Authenticate", 'Bearer realm="infoshare"')
    return response


def bad_request(description: str) -> TaxiiError:
    return TaxiiError(400, "Bad request", description)


def not_found(description: str) -> TaxiiError:
    return TaxiiError(404, "Not found", description)
