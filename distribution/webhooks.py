"""Webhook targets: which URLs may be called, and calling them safely.

A subscriber chooses the URL, so a webhook is a request the service makes on someone
else's behalf. Targets must be https; a host that resolves to a loopback, link-local,
private or otherwise non-public address is refused unless the operator allowed that host
(`webhooks.allow_http_hosts`, which also permits plain http). The check is made when the
subscription is saved and again at each delivery, and the connection goes to the address
that was checked (the Host header and TLS name stay the URL's), so DNS cannot be switched
between the check and the request.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3


class UnsafeWebhook(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked IP address to connect to


def check(url: str, allowed_hosts: Sequence[str]) -> Target:
    """A Target for `url`, or UnsafeWebhook saying why it may not be called."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise UnsafeWebhook("webhook_url must be an absolute https:// URL")
    allowed = host in {h.lower() for h in allowed_hosts}
    if parts.scheme == "http" and not allowed:
        raise UnsafeWebhook("webhook_url must use https (plain http only for hosts the "
                            "operator allows in webhooks.allow_http_hosts)")
    if parts.username or parts.password:
        raise UnsafeWebhook("webhook_url must not carry credentials; use webhook_secret")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not allowed:
        for address in addresses:
            if not _public(ipaddress.ip_address(address.split("%")[0])):
                raise UnsafeWebhook(f"{host} resolves to {address}, a non-public address; "
                                    "ask the operator to allow the host if it is intended")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, addresses[0])


# IPv6 ranges that carry an IPv4 address a gateway may turn into a private one.
_TUNNELS = [ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16",
                                              "2001::/32", "::/96", "::ffff:0:0/96")]


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address.version == 6 and any(address in net for net in _TUNNELS):
        return False
    return address.is_global


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeWebhook(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    """POST to the checked address. Raises urllib3 errors on connection failures."""
    common = dict(port=target.port, timeout=urllib3.Timeout(connect=timeout, read=timeout),
                  retries=False, maxsize=1)
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address, server_hostname=target.host, assert_hostname=target.host,
            ssl_context=ssl.create_default_context(), **common)
    else:
        pool = urllib3.HTTPConnectionPool(target.address, **common)
    host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
    try:
        response = pool.urlopen("POST", target.path, body=body, redirect=False,
                                headers={**headers, "Host": host_header}, preload_content=False)
        try:
            return Response(response.status, response.read(2000))  # never the whole body
        finally:
            response.release_conn()
    finally:
        pool.close()
