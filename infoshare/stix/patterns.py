"""STIX patterns for the indicator kinds a bulletin may carry, and inferring the kind of a
pasted value (the console and the CSV feed take one value per line)."""

from __future__ import annotations

import ipaddress
import re

from stix2patterns.validator import validate

_HASHES = {"file:md5": ("MD5", 32), "file:sha1": ("SHA-1", 40), "file:sha256": ("SHA-256", 64),
           "file:sha512": ("SHA-512", 128)}
_DOMAIN = re.compile(r"^(?=.{1,253}\Z)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z",
                     re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_HEX = re.compile(r"^[0-9a-fA-F]+\Z")


class BadIndicator(ValueError):
    pass


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern(kind: str, value: str) -> str:
    """The STIX pattern for one value; raises BadIndicator when the value is not a `kind`."""
    check(kind, value)
    if kind == "stix":
        return value
    if kind in _HASHES:
        return f"[file:hashes.'{_HASHES[kind][0]}' = {_quote(value.lower())}]"
    return f"[{kind}:value = {_quote(value)}]"


def check(kind: str, value: str) -> None:
    value = value.strip()
    ok = {
        "ipv4-addr": lambda v: _ip(v, ipaddress.IPv4Network),
        "ipv6-addr": lambda v: _ip(v, ipaddress.IPv6Network),
        "domain-name": lambda v: bool(_DOMAIN.match(v)),
        "url": lambda v: re.match(r"^[a-z][a-z0-9+.-]*://\S+\Z", v, re.I) is not None,
        "email-addr": lambda v: bool(_EMAIL.match(v)),
        "stix": _stix_pattern,
    }.get(kind)
    if kind in _HASHES:
        ok = lambda v: bool(_HEX.match(v)) and len(v) == _HASHES[kind][1]  # noqa: E731
    if ok is None:
        raise BadIndicator(f"unknown indicator type {kind!r}")
    if not value or not ok(value):
        raise BadIndicator(f"{value!r} is not a valid {kind}")


def _ip(value: str, network) -> bool:
    try:
        network(value, strict=False)
    except ValueError:
        return False
    return True


def _stix_pattern(value: str) -> bool:
    return bool(validate(value, stix_version="2.1"))


def infer(value: str) -> str:
    """The indicator type of a pasted value, or BadIndicator when none fits."""
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        return "stix"
    for kind in ("ipv4-addr", "ipv6-addr", "url", "email-addr"):
        try:
            check(kind, value)
            return kind
        except BadIndicator:
            pass
    if _HEX.match(value):
        for kind, (_, length) in _HASHES.items():
            if len(value) == length:
                return kind
    if _DOMAIN.match(value):
        return "domain-name"
    raise BadIndicator(f"cannot tell what kind of indicator {value!r} is")
