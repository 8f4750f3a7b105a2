"""The one rule for every request the service makes: webhooks, feeds, CAP index links,
upstream TAXII collections, and every redirect any of them follows.

- http and https only;
- the host's addresses must all be public: loopback, private, link-local, multicast,
  reserved, unspecified, and IPv6 forms that carry an IPv4 address a gateway may turn into
  a private one (NAT64, 6to4, Teredo, IPv4-mapped and -compatible) are refused, unless
  the operator allows the host (`outbound.allow_hosts`: host names, addresses or CIDR
  ranges);
- the connection goes to the address that was checked (the Host header and the TLS name
  stay the URL's), so DNS cannot be switched between the check and the request;
- each redirect is a new request, checked again.

`Session()` gives a requests session that obeys the rule (the adapter refuses before it
connects), for feeds and taxii2-client alike; webhooks call through the same session.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter


class Refused(requests.exceptions.InvalidURL):
    """The rule refuses this URL; the message says why, for feed status and API errors."""


# IPv6 ranges that carry an IPv4 address a gateway may turn into a private one.
_TUNNELS = [ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16",
                                              "2001::/32", "::/96", "::ffff:0:0/96",
                                              "::ffff:0:0:0/96")]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Policy:
    """Hosts the operator allows to be non-public: names, addresses and CIDR ranges."""

    allow_hosts: tuple[str, ...] = ()

    @classmethod
    def of(cls, *host_lists: Iterable[str]) -> Policy:
        return cls(tuple(dict.fromkeys(h.strip().lower() for hosts in host_lists
                                       for h in hosts if h.strip())))

    def allows_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allow_hosts

    def allows_address(self, address: Address) -> bool:
        for entry in self.allow_hosts:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:  # a host name
                continue
        return False


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str  # the checked address to connect to


def public(address: Address) -> bool:
    if address.version == 6 and any(address in net for net in _TUNNELS):
        return False
    if address.is_reserved or getattr(address, "is_site_local", False):
        return False
    return address.is_global and not address.is_multicast


def check(url: str, policy: Policy) -> Target:
    """The Target to connect to for `url`, or Refused saying why not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise Refused(f"{url!r} is not a usable URL: {exc}") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise Refused(f"{url!r}: only absolute http(s) URLs may be fetched")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not policy.allows_name(host):
        for text in addresses:
            address = ipaddress.ip_address(text.split("%")[0])
            if not public(address) and not policy.allows_address(address):
                raise Refused(f"{host} resolves to {text}, which is not a public address; "
                              "the operator may allow it in outbound.allow_hosts")
    return Target(parts.scheme, host, port, addresses[0])


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


class PinnedAdapter(HTTPAdapter):
    """A requests adapter that checks each request against the rule and connects to the
    checked address. Redirects reach it as new requests, so each hop is checked."""

    def __init__(self, policy: Policy, **kwargs):
        self.policy = policy
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        target = check(request.url, self.policy)
        default = 443 if target.scheme == "https" else 80
        host = f"[{target.host}]" if ":" in target.host else target.host
        request.headers["Host"] = host if target.port == default else f"{host}:{target.port}"
        request._infoshare_target = target  # read by get_connection_with_tls_context
        return super().send(request, **kwargs)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        target: Target = request._infoshare_target
        kwargs = {"port": target.port, "maxsize": 1, "retries": False}
        if target.scheme == "http":
            return urllib3.HTTPConnectionPool(target.address, **kwargs)
        context = {"cert_reqs": "CERT_REQUIRED", "ca_certs": _ca_bundle(verify)}
        if verify is False:
            context = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
        else:
            context["assert_hostname"] = target.host
        return urllib3.HTTPSConnectionPool(target.address, server_hostname=target.host,
                                           **context, **kwargs)


def _ca_bundle(verify) -> str:
    if isinstance(verify, str):
        return verify
    return requests.certs.where()


def session(policy: Policy) -> requests.Session:
    """A requests session whose every request (and redirect) obeys the rule. Proxies from
    the environment are ignored: they would connect somewhere the rule never checked."""
    s = requests.Session()
    s.trust_env = False
    adapter = PinnedAdapter(policy)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def policy(settings) -> Policy:
    """The configured rule: `outbound.allow_hosts`, and the hosts webhooks may reach over
    plain http (`webhooks.allow_http_hosts`, which implies they may be non-public)."""
    return Policy.of(settings.outbound.allow_hosts, settings.webhooks.allow_http_hosts)


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_SECRET_PARAM = re.compile(r"(?i)([?&](?:[a-z0-9_-]*(?:key|token|secret|password|passwd|pass|"
                           r"auth|sig|signature|credential)[a-z0-9_-]*)=)[^&#\s]+")


def redact(text: str) -> str:
    """A URL, or text holding URLs, with credentials masked (user:password@ and query
    parameters named like keys, tokens, secrets or signatures): for showing feed URLs and
    their errors to people who need not hold the credentials."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", text))
