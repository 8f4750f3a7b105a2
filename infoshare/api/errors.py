"""JSON API errors: `{"error": title, "message": ..., "fields": {...}}` with the status."""

from __future__ import annotations

from flask import jsonify


class ApiError(Exception):
    def __init__(self, status: int, title: str, message: str = "", fields: dict | None = None,
                 headers: dict | None = None):
        super().__init__(f"{status} {title}: {message}")
        self.status, self.title, self.message = status, title, message
        self.fields, self.headers = fields, headers or {}


def render(error: ApiError):
    body = {"error": error.title, "message": error.message}
    if error.fields:
        body["fields"] = error.fields
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="infoshare", Bearer realm="infoshare"'
    return response
