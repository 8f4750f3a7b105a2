"""Reading a JSON request body: one place for what counts as a usable one."""

from __future__ import annotations

from flask import request

from .errors import ApiError


def json_object(what: str) -> dict:
    """The body as a JSON object, or a 400 that says what was expected."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nesting deep enough to exhaust the parser's stack
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid JSON", f"send the {what} as a JSON object with "
                       "Content-Type: application/json")
    return data
