"""Reading a JSON request body: one place for what counts as a usable one."""

from __future__ import annotations

from flask import request

from .. import strictjson
from .errors import ApiError


def json_object(what: str) -> dict:
    """The body as a JSON object, or a 400 that says what was expected."""
    data = None
    if request.is_json:
        try:
            data = strictjson.loads(request.get_data())
        except strictjson.StrictJSONError as exc:
            raise ApiError(400, "invalid JSON", str(exc)) from None
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deeply
            data = None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid JSON", f"send the {what} as a JSON object with "
                       "Content-Type: application/json")
    return data
