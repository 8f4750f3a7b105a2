"""A real HTTP webhook receiver on loopback whose behaviour the test scripts: fail with a
status, hang past the sender's timeout, or accept. It records every request it saw."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Received:
    delivery_id: str
    signature: str
    body: bytes
    answered: int

    @property
    def objects(self) -> list[dict]:
        return json.loads(self.body)["objects"]

    def signed_by(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.signature)


@dataclass
class Receiver:
    script: list = field(default_factory=list)  # per request: an int status or "hang"
    requests: list[Received] = field(default_factory=list)
    hang_seconds: float = 3.0

    def __post_init__(self):
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _app(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            action = self.script.pop(0) if self.script else 200
        body = request.get_data()
        if action == "hang":
            time.sleep(self.hang_seconds)  # the sender gives up before this ends
        answered = 0 if action == "hang" else action
        self.requests.append(Received(request.headers.get("X-Infoshare-Delivery", ""),
                                      request.headers.get("X-Infoshare-Signature", ""),
                                      body, answered))
        status = 200 if action == "hang" else action
        return Response("ok" if status < 300 else "no", status=status)(environ, start_response)

    def accepted(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.answered < 300]

    def wait_for(self, predicate, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.1)
        raise AssertionError(f"receiver never saw what was expected; got {self.requests!r}")

    def stop(self) -> None:
        self.server.shutdown()
