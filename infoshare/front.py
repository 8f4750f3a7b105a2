"""The front that reads requests before the application sees them.

gunicorn's threaded worker hands a connection to a thread before its headers have arrived,
so a few clients trickling one byte every two seconds held every thread and nothing else
was answered. Here each gunicorn worker runs uvicorn's event loop (uvicorn-worker): the
loop reads headers and bodies of any number of connections at once, and only a complete
request reaches the Flask app, on one of a fixed pool of threads (a2wsgi).

- Headers must arrive within `server.header_timeout` seconds of the first byte (or of
  the connection), else the connection is closed: a trickle costs the attacker a socket
  and us nothing else.
- The body is read on the loop, up to `taxii.max_content_length` (64 KiB without
  credentials), within `server.body_timeout`, and within a per-worker budget of bodies
  held at once (else 503); the app then gets it whole, so a slow body holds no thread. A
  body over the limit (chunked ones too) reaches the app as a flag that becomes 413 in
  the right format (TAXII, API or console), never a read error.
- Responses go back through the loop; a slow reader holds a buffer, not a thread, once
  the app has returned.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from a2wsgi import WSGIMiddleware
from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from .balance import BalancedServer

TOO_LARGE = "infoshare.body_too_large"
TOO_SLOW = "infoshare.body_too_slow"
BUSY = "infoshare.bodies_over_budget"


# A request without credentials (no Authorization header, no console session cookie) may
# send this much: enough for the log-in form, not for holding memory anonymously.
ANONYMOUS_BODY = 64 * 1024


class BufferedWSGI:
    """An ASGI app that reads the whole body on the event loop, then runs the WSGI app.

    Bodies held at once are bounded per worker (`buffer_budget`, 4 x the largest body):
    past it a request gets 503 at once instead of more memory; requests without
    credentials may send at most ANONYMOUS_BODY.
    """

    def __init__(self, wsgi_app, max_body: int, body_timeout: float, threads: int,
                 buffer_budget: int | None = None):
        self.max_body, self.body_timeout = max_body, body_timeout
        self.budget = buffer_budget if buffer_budget is not None else 4 * max_body
        self.held = 0
        self.wsgi = WSGIMiddleware(wsgi_app, workers=threads)

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            await self.wsgi(scope, receive, send)  # lifespan and websocket: a2wsgi answers
            return
        flags: dict[str, bool] = {}
        limit = self.max_body if _has_credentials(scope) else min(self.max_body,
                                                                  ANONYMOUS_BODY)
        held = [0]
        try:
            body = await asyncio.wait_for(self._read(receive, limit, held), self.body_timeout)
        except TimeoutError:
            body, flags[TOO_SLOW] = b"", True
        except _TooLarge:
            body, flags[TOO_LARGE] = b"", True
        except _OverBudget:
            body, flags[BUSY] = b"", True
        finally:
            self.held -= held[0]
        scope = {**scope, "extensions": {**(scope.get("extensions") or {}),
                                         "infoshare": flags}} if flags else scope
        await self.wsgi(scope, _replay(body), send)

    async def _read(self, receive, limit: int, held: list[int]) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            if self.held + len(chunk) > self.budget:
                raise _OverBudget
            self.held += len(chunk)
            held[0] += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


class _TooLarge(Exception):
    pass


class _OverBudget(Exception):
    pass


def _has_credentials(scope: dict) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"authorization" or (name == b"cookie" and b"infoshare_session=" in value):
            return True
    return False


def _replay(body: bytes):
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the app asks again only after the body: wait for the client to go
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


def flags(environ: dict) -> dict[str, bool]:
    """What the front found about a request's body (see BufferedWSGI)."""
    scope = environ.get("asgi.scope") or {}
    return (scope.get("extensions") or {}).get("infoshare") or {}


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline on reading each request's headers."""

    header_timeout = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        handle = getattr(self, "_header_deadline", None)
        if handle is not None:
            handle.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def worker_class(header_timeout: float, max_connections: int, forwarded_allow_ips: str):
    """A gunicorn worker class running uvicorn with these limits."""
    protocol = type("Protocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout})

    class Worker(UvicornWorker):
        CONFIG_KWARGS = {
            "loop": "asyncio", "http": protocol, "lifespan": "off",
            "limit_concurrency": max_connections, "server_header": False,
            # X-Forwarded-For is believed only from the configured proxies: the client
            # address is what throttling counts by.
            "proxy_headers": bool(forwarded_allow_ips),
        }

        async def _serve(self) -> None:  # uvicorn-worker's, with the balanced server
            self.config.app = self.wsgi
            server = BalancedServer(self.config, workers=self.cfg.workers,
                                    slot=getattr(self, "ledger_slot", None))
            self._install_sigquit_handler()
            await server.serve(sockets=self.sockets)
            if not server.started:
                sys.exit(Arbiter.WORKER_BOOT_ERROR)

    return Worker
