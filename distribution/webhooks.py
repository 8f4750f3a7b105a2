"""Webhook targets: which URLs may be called, and calling them.

A subscriber chooses the URL, so a webhook is a request the service makes on someone
else's behalf, under infoshare/outbound.py's rule like every other outbound request (a
public address, or a host the operator allows; the connection pinned to the checked
address). Webhooks add their own: https only (a delivery carries what its owner is cleared
to read), plain http for the hosts in `webhooks.allow_http_hosts` alone; no credentials in
the URL (the body is signed with webhook_secret instead); and no redirects followed. The
check is made when the subscription is saved and again at each delivery.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from infoshare import outbound


class UnsafeWebhook(ValueError):
    pass


def check(url: str, policy: outbound.Policy, allow_http_hosts: Sequence[str]
          ) -> outbound.Target:
    """The target `url` resolves to, or UnsafeWebhook saying why it may not be called."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise UnsafeWebhook("the webhook URL is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise UnsafeWebhook("the webhook URL must be an absolute https:// URL")
    if parts.scheme == "http" and host not in {h.lower() for h in allow_http_hosts}:
        raise UnsafeWebhook("the webhook URL must use https (plain http only for hosts the "
                            "operator allows in webhooks.allow_http_hosts)")
    if parts.username or parts.password:
        raise UnsafeWebhook("the webhook URL must not carry credentials; use the webhook "
                            "secret")
    try:
        return outbound.check(url, policy)
    except outbound.Refused as exc:
        raise UnsafeWebhook(str(exc)) from None


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def post(url: str, policy: outbound.Policy, body: bytes, headers: dict[str, str],
         timeout: float) -> Response:
    """POST under the outbound rule, never following a redirect, reading at most 2,000
    bytes of the answer. Raises requests' errors (outbound.Refused among them)."""
    with outbound.session(policy) as session:
        response = session.post(url, data=body, headers=headers, timeout=timeout,
                                allow_redirects=False, stream=True)
        try:
            return Response(response.status_code, response.raw.read(2000))
        finally:
            response.close()
