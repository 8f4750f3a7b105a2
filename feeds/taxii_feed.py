"""An upstream TAXII 2.1 collection -> third-party objects, fetched once each.

The client is taxii2-client (taxii2client.v21.Collection), with HTTP basic auth from
`username`/`password` or an `api_key` sent as `Authorization: Bearer` (the library's own
TokenAuth sends the non-standard `Token` scheme, so a requests AuthBase does it here).

Resuming: TAXII orders a collection by date_added, and X-TAXII-Date-Added-Last says where
a response ended. taxii2-client returns parsed JSON only, so a response hook on its
requests session captures that header. The first request of a run sends the saved
position as added_after and the following pages follow `next` with the same query, as
taxii2client.v21.as_pages does; the run ends with cursor {"added_after": <last position>},
which the runner saves only after the objects are stored. A server that says `more` with
no `next` is paged by added_after instead, as TAXII 2.1 allows. If a later page fails, the
pages already received still go in and the cursor stops after them, so nothing is fetched
twice and nothing is skipped.

Limits: the common options timeout_seconds, max_bytes and retries apply to every request
(the size is checked from Content-Length, else after the body is read).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import requests
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection
from urllib3.util.retry import Retry

from infoshare import outbound, timestamps

from . import envelope as envelope_bytes
from . import relay
from .base import Context, FeedError, Fetched, ItemError, StixObjects
from .http import TRANSIENT, Fetcher

OPTIONS: dict[str, type] = {
    "username": str, "password": str, "api_key": str, "page_size": int,
    # relaying another hub (feeds/relay.py, feeds/peers.py)
    "jwks": str, "require_signatures": bool, "relay_max_tlp": str, "relay_to": list,
}


def check_options(spec) -> str | None:
    """What is wrong with a relay's options, or None (called at start-up)."""
    options = spec.options
    if "relay_max_tlp" in options and options["relay_max_tlp"] not in relay.RELAYABLE:
        return (f"relay_max_tlp must be one of {', '.join(relay.RELAYABLE)}: AMBER+STRICT "
                "and RED go only to the principals in relay_to")
    names = options.get("relay_to", [])
    if not all(isinstance(n, str) and n for n in names):
        return "relay_to must be a list of principal names"
    if "jwks" not in options and any(k in options for k in (
            "require_signatures", "relay_max_tlp", "relay_to")):
        return "require_signatures, relay_max_tlp and relay_to need jwks (the pinned keys)"
    if "jwks" in options and not spec.sectors_stated:
        return ("a relaying feed must say which sectors its objects are for (sectors = "
                "[...] or \"all\"): the upstream's sector scope does not travel with its "
                "objects, so relay the upstream's sector collection for one sector")
    return None
HEADER = "X-TAXII-Date-Added-Last"


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, key: str):
        self.key = key

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.key}"
        return request


class _Positions:
    """Response hook: X-TAXII-Date-Added-Last and the body of the latest objects response
    (feeds/envelope.py takes each object's bytes from it); and the feed's size limit,
    checked before taxii2-client parses the body."""

    def __init__(self, objects_url: str, max_bytes: int):
        self.objects_url, self.max_bytes = objects_url, max_bytes
        self.last: str | None = None
        self.body: bytes = b""

    def __call__(self, response, *args, **kwargs):
        declared = response.headers.get("Content-Length", "")
        if (declared.isdigit() and int(declared) > self.max_bytes
                or len(response.content) > self.max_bytes):
            response.close()
            raise FeedError(f"{response.url} is larger than the limit of {self.max_bytes} bytes")
        asked = (response.history[0] if response.history else response).url
        if (200 <= response.status_code < 300 and not response.is_redirect
                and asked.split("?")[0] == self.objects_url):
            # The response taxii2-client parses: a redirect's own body is never it.
            self.last = response.headers.get(HEADER)
            self.body = response.content
        return response


def collect(ctx: Context) -> Fetched:
    collection = _collection(ctx)
    positions = _Positions(collection.objects_url,
                           int(ctx.option("max_bytes", Fetcher.max_bytes)))
    collection._conn.session.hooks["response"].append(positions)  # noqa: SLF001
    try:
        return _pages(ctx, collection, positions)
    finally:
        collection.close()


def _collection(ctx: Context) -> Collection:
    user, password, key = (ctx.option(k) for k in ("username", "password", "api_key"))
    if key and (user or password):
        raise FeedError("give api_key or username and password, not both")
    if bool(user) != bool(password):
        raise FeedError("give username and password together")
    collection = Collection(ctx.spec.url, user=user, password=password,
                            auth=BearerAuth(key) if key else None)
    conn = collection._conn  # noqa: SLF001 - the library exposes no other way in
    conn.user_agent = ctx.option("user_agent", Fetcher.user_agent)
    session = conn.session
    retry = Retry(total=int(ctx.option("retries", Fetcher.retries)), backoff_factor=0.5,
                  status_forcelist=sorted(TRANSIENT), allowed_methods={"GET"},
                  raise_on_status=False,
                  respect_retry_after_header=False)  # an upstream must not stall us for hours
    session.trust_env = False  # no environment proxies: they would bypass the rule
    for scheme in ("http://", "https://"):
        session.mount(scheme, outbound.PinnedAdapter(ctx.policy, max_retries=retry))
    session.request = functools.partial(
        session.request, timeout=float(ctx.option("timeout_seconds", Fetcher.timeout)))
    return collection


def _pages(ctx: Context, collection: Collection, positions: _Positions) -> Fetched:
    start = ctx.cursor.get("added_after")
    result = Fetched(cursor={"added_after": start} if start else None, incremental=True)
    added_after, token, page = start, None, 0
    limit = ctx.option("page_size")
    while True:
        page += 1
        positions.last, positions.body = None, b""
        try:
            envelope = collection.get_objects(added_after=added_after, next=token, limit=limit)
        except (FeedError, TAXIIServiceException, requests.RequestException) as exc:
            message = _describe(exc)
            if page == 1:
                raise FeedError(f"{ctx.spec.url}: {message}") from None
            result.errors.append(ItemError(f"page {page}", f"{message}; resuming from here "
                                           "next run"))
            return result
        objects = envelope.get("objects", []) if isinstance(envelope, Mapping) else None
        if not isinstance(objects, list):
            result.errors.append(ItemError(f"page {page}", "not a TAXII envelope"))
            return result
        if objects:
            raws = envelope_bytes.object_texts(positions.body)
            result.items.append(StixObjects(
                objects, raws if raws is not None and len(raws) == len(objects) else None))
            result.fetched += len(objects)
            if _later(positions.last, result.cursor):
                result.cursor = {"added_after": positions.last}
        if not envelope.get("more"):
            return result
        if envelope.get("next") and envelope["next"] != token:
            token = envelope["next"]
        elif positions.last and positions.last != added_after:
            added_after, token = positions.last, None  # a server without `next`
        else:
            result.errors.append(ItemError(f"page {page}", "the server says there is more "
                                           "but gives no way to get it"))
            return result


def _later(position: str | None, cursor: Mapping | None) -> bool:
    """Whether `position` moves the cursor forward (a malformed saved one is replaced)."""
    try:
        new = timestamps.parse_us(position) if position else None
    except timestamps.BadTimestamp:
        return False
    try:
        old = timestamps.parse_us(cursor["added_after"]) if cursor else None
    except timestamps.BadTimestamp:
        old = None
    return new is not None and (old is None or new > old)


def _describe(exc: Exception) -> str:
    if isinstance(exc, outbound.Refused):
        return f"refused: {exc}"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} from {exc.response.url}"
    if isinstance(exc, requests.RequestException):
        return f"cannot reach the server: {type(exc).__name__}"
    return str(exc)
