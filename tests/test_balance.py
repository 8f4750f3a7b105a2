"""Connections spread over workers by the ledger of held connections (infoshare/balance.py):
two worker processes on one listening socket, one of them slow to answer its wake-ups
because a request thread holds the GIL, as a worker publishing does."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import threading
import time

from infoshare.balance import MAX_DELAY_S, Acceptor, Held, Ledger

CONNECTIONS = 4


def _worker(sock: socket.socket, ledger: Ledger, slot: int, busy: bool, report) -> None:
    """An acceptor with the ledger, as a gunicorn worker runs one; with `busy`, a thread
    that holds the GIL but for the interpreter's switch interval. Reports how many
    connections it took."""
    stop = threading.Event()
    if busy:
        def spin() -> None:
            while not stop.is_set():
                sum(range(500))
        threading.Thread(target=spin, daemon=True).start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        held = Held(ledger, slot)

        class Recorder(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                held.add(self)

        acceptor = Acceptor(loop, [sock], Recorder, held)
        held.announce()
        acceptor.start()
        await asyncio.sleep(3)
        acceptor.stop()
        report.put(len(held))

    asyncio.run(main())
    stop.set()


def test_a_worker_slow_to_wake_still_gets_its_share_of_a_burst():
    """Four clients connect at once: two each. With each worker counting only its own
    connections (a 2 ms step per connection), the worker whose loop answered 5 ms late got
    one or none of four."""
    context = multiprocessing.get_context("fork")
    ledger = Ledger(slots=4)
    report = context.Queue()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        slots = [ledger.reserve(), ledger.reserve()]
        workers = [context.Process(target=_worker, args=(sock, ledger, slot, busy, report))
                   for slot, busy in zip(slots, (False, True), strict=True)]
        for worker in workers:
            worker.start()
        try:
            deadline = time.monotonic() + 10
            while any(ledger.least_but(slot) is None for slot in slots):  # both taking
                assert time.monotonic() < deadline, "workers did not start"
                time.sleep(0.01)
            clients = [socket.create_connection(sock.getsockname(), timeout=5)
                       for _ in range(CONNECTIONS)]
            taken = sorted(report.get(timeout=10) for _ in workers)
            for client in clients:
                client.close()
        finally:
            for worker in workers:
                worker.join(10)
                if worker.is_alive():
                    worker.kill()
    assert taken == [2, 2]


def test_the_ledger_counts_taking_workers_only_and_frees_exited_ones():
    ledger = Ledger(slots=3)
    a, b = ledger.reserve(), ledger.reserve()
    assert ledger.least_but(a) is None  # b is booting: no one waits for it
    ledger.hold(b, 5)
    assert ledger.least_but(a) == 5
    ledger.withdraw(b)  # shutting down
    assert ledger.least_but(a) is None
    ledger.free(b)
    assert ledger.reserve() == b and ledger.reserve() is not None and ledger.reserve() is None


def test_a_worker_shutting_down_is_not_waited_for_while_its_last_connections_close():
    ledger = Ledger(slots=2)
    mine, other = ledger.reserve(), ledger.reserve()
    held = Held(ledger, mine, items=range(3))
    held.add(None)  # not yet taking: not counted
    assert ledger.least_but(other) is None
    held.announce()
    assert ledger.least_but(other) == 4
    held.withdraw()
    held.discard(0)  # a request finishing during the shutdown
    assert ledger.least_but(other) is None


def _gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = multiprocessing.get_context("fork").Process(target=lambda: None)
    child.start()
    child.join()
    return child.pid


def test_a_worker_alone_in_taking_connections_takes_them_at_once():
    """The other worker booting, shutting down or killed: no one to leave a connection
    to, so no delay (the review found 50 ms a connection, 8 per 50 ms at most)."""
    ledger = Ledger(slots=2)
    mine, other = ledger.reserve(), ledger.reserve()
    held = Held(ledger, mine, items=range(6))
    held.announce()
    acceptor = Acceptor(None, [], None, held)
    assert acceptor.delay() == 0  # the other is booting
    ledger.hold(other, 0)
    assert acceptor.delay() == MAX_DELAY_S  # while it really takes connections
    ledger._write(other, _gone_pid(), 0)  # killed, and gunicorn did not call child_exit
    assert acceptor.delay() == 0
    assert ledger.reserve() == other  # and its slot is given again


def test_held_refuses_what_would_change_it_behind_the_ledger():
    held = Held(Ledger(slots=1), 0, items=[1])
    for change in ("clear", "update", "pop", "__ior__"):
        assert not hasattr(held, change)
