"""The outbound rule (infoshare/outbound.py) and the webhook rules on top of it, on IP
literals and loopback only (literals resolve locally: no network is used)."""

from __future__ import annotations

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from distribution import webhooks
from infoshare import outbound

NONE = outbound.Policy()


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/h", "https://10.0.0.5/h", "https://169.254.169.254/latest",
    "https://[::1]/h", "https://[fe80::1]/h", "https://[::ffff:10.0.0.1]/h",
    "https://[64:ff9b::a00:1]/h", "https://[2002:a00:1::]/h", "https://0.0.0.0/h",
    "https://224.0.0.1/h", "https://240.0.0.1/h", "https://100.64.0.1/h",
    "https://[2001:0:a00:1::]/h", "https://[ff02::1]/h", "https://[::ffff:0:7f00:1]/h",
    "https://[fec0::1]/h", "https://240.0.0.2/h",
    "http://93.184.216.34/h", "ftp://93.184.216.34/h", "https://user:pw@93.184.216.34/h",
    "https://8.8.8.8:abc/", "https://8.8.8.8:99999/", "https://[not-an-address/",
])
def test_refused_webhook_targets(url):
    with pytest.raises(webhooks.UnsafeWebhook):
        webhooks.check(url, NONE, ())


def test_public_https_and_allowed_hosts():
    target = webhooks.check("https://93.184.216.34:8443/hook?x=1", NONE, ())
    assert (target.address, target.port) == ("93.184.216.34", 8443)
    local = webhooks.check("http://127.0.0.1:9000/h", outbound.Policy.of(["127.0.0.1"]),
                           ("127.0.0.1",))
    assert local.scheme == "http" and local.address == "127.0.0.1"


@pytest.mark.parametrize(("allowed", "address", "ok"), [
    (["10.20.0.0/16"], "10.20.3.4", True), (["10.20.0.0/16"], "10.21.0.1", False),
    (["127.0.0.1"], "127.0.0.1", True), (["127.0.0.1"], "127.0.0.2", False),
    (["fd00::/8"], "fd12::1", True), ([], "93.184.216.34", True),
])
def test_allow_hosts_takes_names_addresses_and_ranges(allowed, address, ok):
    policy = outbound.Policy.of(allowed)
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    if ok:
        assert outbound.check(f"http://{host}/x", policy).address == address
    else:
        with pytest.raises(outbound.Refused):
            outbound.check(f"http://{host}/x", policy)


def test_signature_is_hmac_sha256_of_the_body():
    import hashlib
    import hmac

    body = b'{"type":"bundle"}'
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert webhooks.signature("secret", body) == f"sha256={expected}"


class _Redirecting(BaseHTTPRequestHandler):
    """127.0.0.1 answers; /away redirects to 127.0.0.2, which the rule does not allow."""

    def do_GET(self):  # noqa: N802 - the http.server API
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{self.server.server_port}/x")
            self.end_headers()
            return
        body = f"host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def local_server():
    server = HTTPServer(("0.0.0.0", 0), _Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()


def test_a_session_checks_every_request_and_every_redirect(local_server):
    allowed = outbound.session(outbound.Policy.of(["127.0.0.1"]))
    answer = allowed.get(f"http://127.0.0.1:{local_server}/here", timeout=10)
    assert answer.text == f"host=127.0.0.1:{local_server}"  # the URL's Host, pinned address
    with pytest.raises(outbound.Refused, match="127.0.0.2"):
        allowed.get(f"http://127.0.0.1:{local_server}/away", timeout=10)
    with pytest.raises(outbound.Refused):
        outbound.session(NONE).get(f"http://127.0.0.1:{local_server}/here", timeout=10)
    with pytest.raises(requests.RequestException):  # a Refused is a requests error too
        outbound.session(NONE).get(f"http://localhost:{local_server}/here", timeout=10)


def test_credentials_in_feed_urls_and_errors_are_masked_for_display():
    shown = outbound.redact("cannot reach https://feeder:s3cret@feeds.example/x?api_key=abc"
                            "&page=2&token=t0k: timeout")
    assert "s3cret" not in shown and "abc" not in shown and "t0k" not in shown
    assert "page=2" in shown and "feeds.example/x" in shown
