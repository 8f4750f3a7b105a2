"""Spreading connections over gunicorn's workers by how many each already holds.

Every worker waits on the one listening socket, and asyncio's own accept takes every
connection that is waiting when it wakes. Clients keep their connections alive (TAXII
pollers, publishers, the console), so whichever worker woke first served all of them
on one core while the other workers idled: four publishers got one worker's rate
(issue 12). Here a worker holding k connections tries k x ACCEPT_DELAY_S later (at most
MAX_DELAY_S): every worker is woken for a new connection, so the one holding the fewest
takes it, one per wake-up. After the longest delay a worker takes up to BATCH, so a
partner holding many idle connections cannot slow the rate of new ones (past that many,
connections are spread at random). A worker too busy to get to a connection leaves it
to the others, and when they are busier it still takes it after its delay. An accept
error never stops a worker watching its socket.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from uvicorn import Server

ACCEPT_DELAY_S = 0.002  # per connection this worker holds
MAX_DELAY_S = 0.01  # a new connection waits at most this long for a less busy worker
BATCH = 8  # taken at once after the longest delay, so held connections bound no rate
RETRY_S = 0.1  # after an accept error other than "none left" (EPERM, EPROTO, EMFILE...)
log = logging.getLogger("uvicorn.error")


class Acceptor:
    """Accepts connections on shared listening sockets, later the more connections
    (`held`) this worker has, and hands each to the loop as a transport."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets, factory, held, *,
                 spread: bool = True, ssl=None):
        self.loop, self.sockets, self.factory, self.held = loop, list(sockets), factory, held
        self.spread, self.ssl = spread, ssl  # spread: other workers may take connections
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.running = False

    def start(self) -> None:
        self.running = True
        for sock in self.sockets:
            self._watch(sock)

    def stop(self) -> None:
        self.running = False
        for sock in self.sockets:
            self.loop.remove_reader(sock.fileno())
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()

    def delay(self) -> float:
        if not self.spread:
            return 0.0
        return min(len(self.held) * ACCEPT_DELAY_S, MAX_DELAY_S)

    def _watch(self, sock: socket.socket) -> None:
        if self.running:
            self.loop.add_reader(sock.fileno(), self._ready, sock)

    def _ready(self, sock: socket.socket) -> None:
        """A connection waits: try for it now, or after this worker's delay."""
        self.loop.remove_reader(sock.fileno())
        delay = self.delay()
        if delay:
            self.timers[sock.fileno()] = self.loop.call_later(
                delay, self._take, sock, delay >= MAX_DELAY_S)
        else:
            self._take(sock, batch=False)

    def _take(self, sock: socket.socket, batch: bool = False) -> None:
        """Take one connection, or up to BATCH after the longest delay (a worker holding
        many connections still takes new ones at any rate), then watch the socket."""
        self.timers.pop(sock.fileno(), None)
        if not self.running:
            return
        for _ in range(BATCH if batch else 1):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                break  # none left: another worker took it
            except OSError as exc:  # never stop watching: the worker would go deaf
                log.warning("accept: %s; trying again in %g s", exc, RETRY_S)
                self.timers[sock.fileno()] = self.loop.call_later(RETRY_S, self._take, sock)
                return
            conn.setblocking(False)
            self.loop.create_task(self._serve(conn))
        self._watch(sock)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, conn, ssl=self.ssl)
        except OSError:  # gone before its transport was made (or a failed TLS handshake)
            conn.close()


class BalancedServer(Server):
    """uvicorn's server, with connections on gunicorn's sockets taken by an Acceptor
    instead of asyncio's accept-everything loop."""

    def __init__(self, config, workers: int):
        super().__init__(config=config)
        self.workers = workers  # with one, no connection is left for another to take

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=[])  # the lifespan, the state; no asyncio servers
        if self.should_exit or not sockets:
            return
        config, loop = self.config, asyncio.get_running_loop()

        def factory() -> asyncio.Protocol:
            return config.http_protocol_class(config=config, server_state=self.server_state,
                                              app_state=self.lifespan.state, _loop=loop)

        self.acceptor = Acceptor(loop, sockets, factory, self.server_state.connections,
                                 spread=self.workers > 1, ssl=config.ssl)
        self.acceptor.start()

    async def shutdown(self, sockets=None) -> None:
        acceptor = getattr(self, "acceptor", None)
        if acceptor is not None:
            acceptor.stop()
        await super().shutdown(sockets=sockets)
