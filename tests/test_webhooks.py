"""Which webhook targets may be called (no network: IP literals resolve locally)."""

from __future__ import annotations

import pytest

from distribution import webhooks


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/h", "https://10.0.0.5/h", "https://169.254.169.254/latest",
    "https://[::1]/h", "https://[fe80::1]/h", "https://[::ffff:10.0.0.1]/h",
    "https://[64:ff9b::a00:1]/h", "https://[2002:a00:1::]/h", "https://0.0.0.0/h",
    "http://93.184.216.34/h", "ftp://93.184.216.34/h", "https://user:pw@93.184.216.34/h",
])
def test_refused_targets(url):
    with pytest.raises(webhooks.UnsafeWebhook):
        webhooks.check(url, allowed_hosts=())


def test_public_https_and_allowed_hosts():
    target = webhooks.check("https://93.184.216.34:8443/hook?x=1", allowed_hosts=())
    assert (target.address, target.port, target.path) == ("93.184.216.34", 8443, "/hook?x=1")
    local = webhooks.check("http://127.0.0.1:9000/h", allowed_hosts=("127.0.0.1",))
    assert local.scheme == "http" and local.address == "127.0.0.1"


def test_signature_is_hmac_sha256_of_the_body():
    import hashlib
    import hmac

    body = b'{"type":"bundle"}'
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert webhooks.signature("secret", body) == f"sha256={expected}"
