"""Query parameters of the TAXII read endpoints, validated into store Filters.

Every malformed value is a 400 naming the parameter: a client that sent a filter we
silently ignored would page through data it never asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .. import timestamps
from ..store.objects import Filters
from .errors import bad_request

ALL_MATCH = ("id", "type", "version", "spec_version")
_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{0,249}\Z")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*--[0-9a-fA-F-]{36}\Z")


# The filters a cursor binds, by the name the client sends them under.
BOUND = {"added_after": "added_after", "match[id]": "ids", "match[type]": "types",
         "match[version]": "versions", "match[spec_version]": "spec_versions"}


@dataclass(frozen=True)
class Query:
    filters: Filters
    limit: int
    next: str | None
    sent: frozenset[str] = frozenset()  # the filter parameters the client gave

    def bound(self) -> dict:
        """The filters a cursor for this query carries."""
        return {field: list(v) if isinstance(v := getattr(self.filters, field), tuple) else v
                for field in BOUND.values()}

    def continued(self, bound: dict) -> Query:
        """This query continued from a cursor: the filters it did not send are the bound
        ones; one it sent must equal the bound one (else 400)."""
        values = {}
        for name, field in BOUND.items():
            mine = getattr(self.filters, field)
            theirs = bound.get(field)
            theirs = tuple(theirs) if isinstance(theirs, list) else theirs
            if name in self.sent and mine != theirs:
                raise bad_request(f"{name} differs from the query this next continues; "
                                  "send next alone, or the same filters")
            values[field] = theirs
        return Query(replace(self.filters, **values), self.limit, self.next, self.sent)


def parse(args, max_page: int, allowed_match: tuple[str, ...] = ALL_MATCH,
          default_versions: tuple = ("last",), max_values: int = 100) -> Query:
    """`args` is a multi-dict (request.args)."""
    single = _singles(args)
    for key, value in single.items():
        if key.startswith("match[") and value.count(",") >= max_values:
            raise bad_request(f"{key} holds {value.count(',') + 1} values; at most "
                              f"{max_values} (taxii.max_match_values)")
    for key in single:
        if key.startswith("match[") and (not key.endswith("]") or key[6:-1] not in allowed_match):
            raise bad_request(f"unsupported filter {key}; this endpoint takes "
                              + ", ".join(f"match[{m}]" for m in allowed_match))
    filters = Filters(
        added_after=_added_after(single.get("added_after")),
        ids=_list(single, "id", _ID, "an object id like indicator--<uuid>"),
        types=_list(single, "type", _TYPE, "a STIX type name"),
        versions=_versions(single.get("match[version]"), default_versions),
        spec_versions=_list(single, "spec_version", re.compile(r"^\d\.\d\Z"), "like 2.1"),
    )
    sent = frozenset(name for name in BOUND if name in single)
    return Query(filters, _limit(single.get("limit"), max_page), single.get("next") or None,
                 sent)


def _singles(args) -> dict[str, str]:
    values = {}
    for key in args:
        got = args.getlist(key) if hasattr(args, "getlist") else [args[key]]
        if len(got) > 1:
            raise bad_request(f"{key} was given {len(got)} times; give it once "
                              "(several values go comma-separated in one parameter)")
        values[key] = got[0]
    return values


def _limit(text: str | None, max_page: int) -> int:
    if text is None:
        return max_page
    if not re.fullmatch(r"[0-9]{1,9}", text) or int(text) < 1:
        raise bad_request(f"limit must be a positive integer, got {text!r}")
    return min(int(text), max_page)


def _added_after(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return timestamps.parse_us(text)
    except timestamps.BadTimestamp as exc:
        raise bad_request(f"added_after: {exc}") from None


def _list(single: Mapping[str, str], field: str, pattern: re.Pattern, what: str):
    text = single.get(f"match[{field}]")
    if text is None:
        return ()
    values = tuple(dict.fromkeys(v.strip() for v in text.split(",")))
    for value in values:
        if not pattern.match(value):
            raise bad_request(f"match[{field}]: {value!r} is not {what}")
    return values


def _versions(text: str | None, default: tuple) -> tuple:
    if text is None:
        return default
    values: list[str | int] = []
    for raw in (v.strip() for v in text.split(",")):
        if raw in ("last", "first", "all"):
            values.append(raw)
            continue
        try:
            values.append(timestamps.parse_us(raw))
        except timestamps.BadTimestamp:
            raise bad_request(f"match[version]: {raw!r} is not last, first, all "
                              "or a timestamp") from None
    if "all" in values and len(values) > 1:
        raise bad_request("match[version]: all cannot be combined with other values")
    return tuple(dict.fromkeys(values))
