"""Hardening, played as the attacker would on loopback: slow clients, oversized bodies.

Every attack is bounded: a fixed number of connections, a fixed number of seconds, and
each one stops by itself.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from infoshare.balance import Held

from .live import LiveServer, service_env

TAXII = "application/taxii+json;version=2.1"
ALL = "5d4d1a3c-6b0e-4d55-9a44-0c5f2d8e7a01"
SUBMISSIONS = "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a04"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(service_env(tmp_path_factory.mktemp("hardening"),
                                  INFOSHARE_SERVER_HEADER_TIMEOUT="4",
                                  INFOSHARE_SERVER_BASE_URL="https://hub.example.org",
                                  INFOSHARE_SERVER_BODY_TIMEOUT="4"), workers=2)
    live.key = live.add_principal("reader", "--org", "Water Co", "--tier", "partner",
                                  "--sector", "water")["api_key"]
    yield live
    live.stop()


class Trickle:
    """`count` connections that each send `prefix`, then one byte of `tail` every
    `every` seconds, for at most `seconds`; records when the server closed each one."""

    def __init__(self, port: int, count: int, prefix: bytes, tail: bytes,
                 every: float = 2.0, seconds: float = 10.0):
        self.port, self.prefix, self.tail = port, prefix, tail
        self.every, self.seconds = every, seconds
        self.closed_after: list[float] = []
        self.threads = [threading.Thread(target=self._one, daemon=True) for _ in range(count)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)  # every connection open and trickling
        return self

    def __exit__(self, *exc):
        for thread in self.threads:
            thread.join(self.seconds + 5)

    def _one(self) -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            try:
                sock.sendall(self.prefix)
                for byte in self.tail:
                    if time.monotonic() - started > self.seconds:
                        return
                    sock.sendall(bytes([byte]))
                    time.sleep(self.every)
                    if _closed(sock):
                        break
            except OSError:
                pass
        self.closed_after.append(time.monotonic() - started)


def _closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)  # an answer (408) or a close (b"") both end the trickle
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def timed_get(url: str, **kwargs) -> tuple[float, int]:
    started = time.monotonic()
    response = requests.get(url, timeout=10, **kwargs)
    return time.monotonic() - started, response.status_code


def assert_still_answers(server) -> None:
    for _ in range(3):
        took, status = timed_get(server.base + "/healthz")
        assert status == 200 and took < 3, (status, took)
        took, status = timed_get(f"{server.api_root}collections/{ALL}/objects/", headers={
            "Accept": TAXII, "Authorization": f"Bearer {server.key}"})
        assert status == 200 and took < 3, (status, took)
        time.sleep(0.5)


def test_forty_slow_header_clients_do_not_stop_the_service(server):
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    with Trickle(server.port, 40, b"G", request[1:], seconds=10) as trickle:
        assert_still_answers(server)
    # The header deadline (4 s here) cut every one of them off, well before they finished.
    assert len(trickle.closed_after) == 40
    assert max(trickle.closed_after) < 9, sorted(trickle.closed_after)


def test_forty_slow_body_clients_do_not_stop_the_service(server):
    head = (f"POST /taxii2/infoshare/collections/{SUBMISSIONS}/objects/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {server.key}\r\n"
            f"Accept: {TAXII}\r\nContent-Type: {TAXII}\r\nContent-Length: 100000\r\n\r\n")
    with Trickle(server.port, 40, head.encode(), b'{"objects": []' + b" " * 100,
                 seconds=10) as trickle:
        assert_still_answers(server)
    assert len(trickle.closed_after) == 40
    assert max(trickle.closed_after) < 9, sorted(trickle.closed_after)


def test_a_slow_body_gets_408_in_taxii_form(server):
    head = (f"POST /taxii2/infoshare/collections/{SUBMISSIONS}/objects/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\n"
            f"Authorization: Bearer {server.key}\r\nContent-Length: 1000\r\n\r\n{{")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert TAXII in answer


def test_a_chunked_body_over_the_limit_is_413(server):
    limit = 10 * 1024 * 1024

    def chunks():
        block = b" " * 1024 * 1024
        for _ in range(limit // len(block) + 2):
            yield block

    response = requests.post(f"{server.api_root}collections/{SUBMISSIONS}/objects/",
                             data=chunks(), timeout=60, headers={
                                 "Accept": TAXII, "Content-Type": TAXII,
                                 "Authorization": f"Bearer {server.key}"})
    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"] == TAXII


def test_the_api_takes_changes_as_json_only(server):
    """A cross-site form (urlencoded, multipart or text/plain) carrying a browser's cached
    Basic credentials cannot act through the API: 415 before anything happens."""
    publisher = server.add_principal("csrf-publisher", "--org", "Ops", "--tier", "trusted",
                                     "--all-sectors", "--role", "publisher",
                                     password="a long enough password")
    basic = ("csrf-publisher", "a long enough password")
    base = f"{server.base}/api/v1"
    assert publisher["api_key"]
    for body in ({"data": {"title": "x"}}, {"files": {"f": ("a", b"b")}},
                 {"data": "{}", "headers": {"Content-Type": "text/plain"}}):
        for method, path in (("POST", "bulletins"), ("POST", "subscriptions"),
                             ("POST", f"bulletins/report--{uuid.uuid4()}/revoke"),
                             ("PATCH", f"subscriptions/{uuid.uuid4()}"),
                             ("DELETE", f"subscriptions/{uuid.uuid4()}")):
            response = requests.request(method, f"{base}/{path}", auth=basic, timeout=30,
                                        **body)
            assert response.status_code == 415, (method, path, response.text)
    listed = requests.get(f"{base}/subscriptions", auth=basic, timeout=30).json()
    assert listed["subscriptions"] == []


def test_discovery_names_the_configured_base_url_whatever_the_host_header(server):
    response = requests.get(server.taxii, timeout=30, headers={
        "Accept": TAXII, "Authorization": f"Bearer {server.key}",
        "Host": "attacker.example.net", "X-Forwarded-Host": "attacker.example.net"})
    assert response.status_code == 200
    body = response.json()
    assert body["default"] == "https://hub.example.org/taxii2/infoshare/"
    assert "attacker" not in response.text


def test_an_anonymous_request_cannot_make_the_server_hold_a_large_body(server):
    """Without credentials a body may be 64 KiB (the log-in form needs less): a larger one
    is refused before it is held, so anonymous clients cannot fill a worker's memory."""
    response = requests.post(f"{server.api_root}collections/{SUBMISSIONS}/objects/",
                             data=b" " * 200_000, timeout=30,
                             headers={"Accept": TAXII, "Content-Type": TAXII})
    assert response.status_code == 413
    small = requests.post(f"{server.api_root}collections/{SUBMISSIONS}/objects/",
                          data=b"{}", timeout=30,
                          headers={"Accept": TAXII, "Content-Type": TAXII})
    assert small.status_code == 401


def test_kept_alive_connections_are_spread_over_the_workers(server):
    """Clients keep their connections (pollers, publishers): eight opened at once must not
    all land on the worker that woke first, or they share one core while the other idles."""
    before = _connections_by_worker(server)
    conns = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
             for _ in range(8)]
    try:
        threads = [threading.Thread(target=_health, args=(c,)) for c in conns]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        after = _connections_by_worker(server)
        added = sorted(after[pid] - before.get(pid, 0) for pid in after)
        assert sum(added) == 8 and len(added) == 2, (before, after)
        assert added[0] >= 3, added  # 4/4 or 3/5, never 8/0 (asyncio's accept gave 8/0)
    finally:
        for conn in conns:
            conn.close()


def _health(conn: socket.socket) -> None:
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert conn.recv(4096).startswith(b"HTTP/1.1 200")


def _connections_by_worker(server) -> dict[int, int]:
    """Established connections to the server's port held by each worker process, read
    from /proc (socket inodes of each worker's descriptors against /proc/net/tcp)."""
    master = server.process.pid
    workers = [int(p) for p in open(f"/proc/{master}/task/{master}/children").read().split()]
    port = f"{server.port:04X}"
    inodes = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port}") and fields[3] == "01":
            inodes.add(fields[9])
    counts = {}
    for pid in workers:
        fds = Path(f"/proc/{pid}/fd")
        links = [os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()]
        counts[pid] = sum(1 for link in links if link[8:-1] in inodes and
                          link.startswith("socket:["))
    return counts


class _Flaky(socket.socket):
    """A listening socket whose first accept fails as a firewall or LSM can make it."""

    fails = 1

    def accept(self):
        if self.fails:
            self.fails -= 1
            raise PermissionError(1, "Operation not permitted")
        return super().accept()


def _accepted_by(acceptor_args: dict, sock: socket.socket, connections: int,
                 seconds: float) -> int:
    """Runs an Acceptor on `sock` while `connections` clients connect; how many it took."""
    import asyncio

    from infoshare.balance import Acceptor

    made = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport):
            made.append(transport)

    async def main():
        loop = asyncio.get_running_loop()
        acceptor = Acceptor(loop, [sock], Recorder, **acceptor_args)
        acceptor.start()
        clients = [socket.create_connection(sock.getsockname(), timeout=5)
                   for _ in range(connections)]
        deadline = loop.time() + seconds
        while len(made) < connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        acceptor.stop()
        for client in clients:
            client.close()
        for transport in made:
            transport.close()

    asyncio.run(main())
    return len(made)


def _listening(kind=socket.socket) -> socket.socket:
    sock = kind(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def test_an_accept_error_does_not_leave_the_worker_deaf():
    with _listening(_Flaky) as sock:
        assert _accepted_by({"held": Held(), "spread": False}, sock, 3, 3) == 3


def test_a_worker_holding_many_connections_still_takes_new_ones_quickly():
    """A partner keeping idle connections open delays a worker's accepts (so the others
    get new clients first), but it cannot bound how many it takes a second."""
    held = Held(items=range(40))  # as if 40 idle connections were held
    with _listening() as sock:
        started = time.monotonic()
        assert _accepted_by({"held": held, "spread": True}, sock, 40, 5) == 40
        assert time.monotonic() - started < 1.5  # one per 50 ms wake-up took 2 s and more
