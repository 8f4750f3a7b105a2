"""Slow salted hashes for passwords and API key secrets, and the API key format.

scrypt (memory-hard, in the standard library) with a per-secret salt; the parameters are
stored beside the hash so the cost can be raised later without breaking old hashes.
Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

KEY_PREFIX = "isk"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, log2_n: int = 14) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=1 << log2_n, r=8, p=1,
                            maxmem=256 * 1024 * 1024, dklen=32)
    return f"scrypt${log2_n}$8$1${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(secret.encode(), salt=_unb64(salt), n=1 << int(log2_n),
                                r=int(r), p=int(p), maxmem=256 * 1024 * 1024, dklen=32)
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        return False
    return hmac.compare_digest(actual, expected)


_DUMMIES: dict[int, str] = {}


def dummy_hash(log2_n: int) -> str:
    """A hash of a random secret at the configured cost, verified against when a name or
    key id is unknown, so a miss costs what a hit costs and timing does not tell which
    names exist."""
    if log2_n not in _DUMMIES:
        _DUMMIES[log2_n] = hash_secret(secrets.token_urlsafe(16), log2_n)
    return _DUMMIES[log2_n]


def new_api_key() -> tuple[str, str, str]:
    """(full key shown once, key id stored in clear, secret to hash)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}_{key_id}_{secret}", key_id, secret


def split_api_key(token: str) -> tuple[str, str] | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def new_password() -> str:
    return secrets.token_urlsafe(18)
