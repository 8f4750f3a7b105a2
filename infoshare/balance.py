"""Spreading connections over gunicorn's workers by how many each already holds.

Every worker waits on the one listening socket, and asyncio's own accept takes every
connection that is waiting when it wakes. Clients keep their connections alive (TAXII
pollers, publishers, the console), so whichever worker woke first served all of them on
one core while the other workers idled: four publishers got one worker's rate (issue
12). Every worker is woken for a new connection. The workers write how many connections
each holds into a Ledger the master maps before forking; a worker holding the fewest (or
alone in taking any) takes the connection at once, and one holding k more than that
tries k x ACCEPT_DELAY_S later (at most MAX_DELAY_S), so the least busy takes it, one
per wake-up. The step is longer than the interpreter's switch interval (5 ms): a worker
whose request threads hold the GIL answers its wake-up that much late, and a shorter
step gave three of four publishers to the other worker. A worker too busy to get to a
connection leaves it to the others, and when they are busier it still takes it after its
delay. After the longest delay a worker takes up to BATCH, so a partner holding many
idle connections cannot slow the rate of new ones. An accept error never stops a worker
watching its socket.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import socket
import struct

from uvicorn import Server

ACCEPT_DELAY_S = 0.01  # per connection this worker holds more than the least busy one
MAX_DELAY_S = 0.05  # a new connection waits at most this long for a less busy worker
BATCH = 8  # taken at once after the longest delay, so held connections bound no rate
RETRY_S = 0.1  # after an accept error other than "none left" (EPERM, EPROTO, EMFILE...)
log = logging.getLogger("uvicorn.error")
SLOT = struct.Struct("qq")  # a worker's pid (0: free) and how many connections it holds


class Ledger:
    """How many connections each worker holds, in memory shared by every worker: mapped
    by the master before it forks. The master gives each worker a slot as it forks it and
    frees the slot when the worker has exited, killed or not; only the master hands out
    slots, so no lock is needed. A slot's pid: 0 free, -1 given but not taking
    connections (booting or shutting down), else the worker's, counted."""

    def __init__(self, slots: int = 64):
        self.slots = slots
        self.memory = mmap.mmap(-1, slots * SLOT.size)  # anonymous and shared: forks see it

    def reserve(self) -> int | None:
        """In the master, before a fork: a free slot for the new worker, or one whose
        worker is gone without the master freeing it (gunicorn does not call child_exit
        for a worker it finds already dead); None: none left, so it is not counted."""
        for slot in range(self.slots):
            pid = self._read(slot)[0]
            if pid == 0 or (pid > 0 and not _alive(pid)):
                self._write(slot, -1, 0)
                return slot
        return None

    def free(self, slot: int) -> None:
        """In the master, once the slot's worker has exited."""
        self._write(slot, 0, 0)

    def hold(self, slot: int, held: int) -> None:
        self._write(slot, os.getpid(), held)

    def withdraw(self, slot: int) -> None:
        """The worker takes no more connections: no other waits for it."""
        self._write(slot, -1, 0)

    def least_but(self, slot: int) -> int | None:
        """The fewest connections another live, taking worker holds (None: no other)."""
        counts = [held for other in range(self.slots) if other != slot
                  for pid, held in [self._read(other)] if pid > 0 and _alive(pid)]
        return min(counts, default=None)

    def _read(self, slot: int) -> tuple[int, int]:
        return SLOT.unpack_from(self.memory, slot * SLOT.size)

    def _write(self, slot: int, pid: int, held: int) -> None:
        SLOT.pack_into(self.memory, slot * SLOT.size, pid, held)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        pass
    return True


class Held:
    """A worker's connections (uvicorn's `server_state.connections`) and how many more it
    has accepted whose transports are not made yet: their sum, `count`, is written into
    the ledger (if any) whenever it changes, so the others see an accept at once."""

    def __init__(self, ledger: Ledger | None = None, slot: int | None = None, items=()):
        self.connections = set(items)
        self.ledger = ledger if slot is not None else None  # without a slot, not counted
        self.slot, self.starting = slot, 0
        self.taking = False  # counted in the ledger: between announce() and withdraw()

    # What uvicorn does with its set of connections; any other use fails loudly rather
    # than changing the set without the ledger knowing.
    def __len__(self) -> int:
        return len(self.connections)

    def __iter__(self):
        return iter(self.connections)

    def __contains__(self, item) -> bool:
        return item in self.connections

    def add(self, item) -> None:
        self.connections.add(item)
        self._tell()

    def discard(self, item) -> None:
        self.connections.discard(item)
        self._tell()

    def remove(self, item) -> None:
        self.connections.remove(item)
        self._tell()

    @property
    def count(self) -> int:
        return len(self.connections) + self.starting

    def accepted(self) -> None:
        self.starting += 1
        self._tell()

    def made(self) -> None:
        """The transport of an accepted connection is made (or failed)."""
        self.starting -= 1
        self._tell()

    def announce(self) -> None:
        """This worker takes connections from now on: count it."""
        self.taking = True
        self._tell()

    def withdraw(self) -> None:
        """This worker takes no more connections (it is shutting down): no other worker
        waits for it, however few it holds while its last requests finish."""
        self.taking = False
        if self.ledger is not None:
            self.ledger.withdraw(self.slot)

    def least_other(self) -> int | None:
        """The fewest connections another worker taking them holds; None: no other is
        taking any (booting, shutting down), so none is worth waiting for. Without a
        ledger, as if another held none."""
        if self.ledger is None:
            return 0
        return self.ledger.least_but(self.slot)

    def _tell(self) -> None:
        if self.taking and self.ledger is not None:
            self.ledger.hold(self.slot, self.count)


LEDGER: Ledger | None = None  # set in the master (server.run) before it forks workers


class Acceptor:
    """Accepts connections on shared listening sockets, later the more connections
    (`held`) this worker has, and hands each to the loop as a transport."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets, factory, held: Held, *,
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
        """0 for a worker holding no more than the least busy other (as far as the ledger
        tells; without one, as if another held none)."""
        if not self.spread:
            return 0.0
        least = self.held.least_other()
        if least is None:
            return 0.0
        return min(max(self.held.count - least, 0) * ACCEPT_DELAY_S, MAX_DELAY_S)

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
            self.held.accepted()
            self.loop.create_task(self._serve(conn))
        self._watch(sock)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, conn, ssl=self.ssl)
        except OSError:  # gone before its transport was made (or a failed TLS handshake)
            conn.close()
        finally:
            self.held.made()


class BalancedServer(Server):
    """uvicorn's server, with connections on gunicorn's sockets taken by an Acceptor
    instead of asyncio's accept-everything loop."""

    def __init__(self, config, workers: int, slot: int | None = None):
        super().__init__(config=config)
        self.workers = workers  # with one, no connection is left for another to take
        self.slot = slot if LEDGER and workers > 1 else None  # the master's ledger slot
        self.server_state.connections = Held(LEDGER, self.slot)

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=[])  # the lifespan, the state; no asyncio servers
        if self.should_exit or not sockets:
            return
        config, loop = self.config, asyncio.get_running_loop()

        def factory() -> asyncio.Protocol:
            return config.http_protocol_class(config=config, server_state=self.server_state,
                                              app_state=self.lifespan.state, _loop=loop)

        held = self.server_state.connections
        held.announce()
        self.acceptor = Acceptor(loop, sockets, factory, held, spread=self.workers > 1,
                                 ssl=config.ssl)
        self.acceptor.start()

    async def shutdown(self, sockets=None) -> None:
        acceptor = getattr(self, "acceptor", None)
        if acceptor is not None:
            acceptor.stop()
        self.server_state.connections.withdraw()
        await super().shutdown(sockets=sockets)
