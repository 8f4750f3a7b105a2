"""Who is asking: HTTP Basic (name + password) or `Authorization: Bearer <api key>` (or
`Token <api key>`), and the console's password check.

Hashes are deliberately slow, so a verified credential is remembered (by its SHA-256, never
in clear) for `key_cache_seconds`. A remembered credential is still checked on every
request against what can change at once: the principal row (disabled), the key (revoked),
and the password (changed), so none of these waits for the cache.

Guessing is throttled (Guard): attempts are counted per client address and per principal
name in the database, before the hash is computed (a success takes its count back), so
every worker and host sees them and requests racing in together cannot all slip past; a
blocked client or name is refused with Throttled before any hash is computed. Each worker
also computes at most a few slow hashes at a time, so a flood of unknown credentials
cannot take every core.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from . import access, passwords, timestamps
from .store import principals as principal_store
from .store import throttle
from .store.engine import read, write
from .tiers import Tiers

_CACHE_LIMIT = 10_000
_LAST_USED_EVERY_US = 60_000_000


class Throttled(Exception):
    """Too many failures (or too many hashes in flight): answer 429 with Retry-After."""

    def __init__(self, retry_after: int):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = max(1, retry_after)


@dataclass(frozen=True)
class Rule:
    limit: int  # failures in one window that block the key for the rest of the window
    window_s: int


# A client is blocked after 20 failures in 10 minutes; a name after 10 in one minute, so
# an attacker elsewhere can keep a principal's password out for a minute at a time, never
# longer, and its API keys never.
CLIENT_RULE = Rule(20, 600)
NAME_RULE = Rule(10, 60)


class Guard:
    def __init__(self, engine: Engine, hashes_at_once: int):
        self.engine = engine
        self._hashing = threading.BoundedSemaphore(max(1, hashes_at_once))

    def _keys(self, client: str | None, name: str | None) -> list[tuple[str, Rule]]:
        keys = [(f"client:{client}", CLIENT_RULE)] if client else []
        return keys + ([(f"name:{name[:200]}", NAME_RULE)] if name else [])

    def begin(self, client: str | None, name: str | None) -> None:
        """Count this attempt against the client and the name before any hash is
        computed; Throttled (counting nothing) when either is blocked."""
        now = timestamps.now_us()
        with write(self.engine) as conn:
            for key, rule in self._keys(client, name):
                until = throttle.attempt(conn, key, rule.limit, rule.window_s * 10**6, now)
                if until is not None:
                    raise Throttled((until - now) // 1_000_000 + 1)

    def succeeded(self, client: str | None, name: str | None) -> None:
        """A right credential: its attempt does not count as a failure."""
        with write(self.engine) as conn:
            for key, _ in self._keys(client, name):
                throttle.forgive(conn, key)

    def hashing(self):
        """Hold one of the worker's few slots for a slow hash, or Throttled after 5 s."""
        guard = self

        class _Slot:
            def __enter__(self):
                if not guard._hashing.acquire(timeout=5):
                    raise Throttled(1)

            def __exit__(self, *exc):
                guard._hashing.release()
        return _Slot()


@dataclass(frozen=True)
class _Verified:
    pk: int
    key_id: str | None = None  # a Bearer key: must still be live
    password_hash: str | None = None  # a password: must still be the principal's


class Authenticator:
    def __init__(self, engine: Engine, tier_map: Tiers, cache_seconds: int, log2_n: int = 14,
                 hashes_at_once: int = 4):
        self.engine, self.tiers, self.cache_seconds = engine, tier_map, cache_seconds
        self.dummy = passwords.dummy_hash(log2_n)
        self.guard = Guard(engine, hashes_at_once)
        self._cache: dict[bytes, tuple[_Verified, float]] = {}
        self._used: dict[str, int] = {}  # key_id -> when last_used_us was last written
        self._lock = threading.Lock()

    def authenticate(self, header: str | None, client: str | None = None
                     ) -> access.Principal | None:
        """The principal the Authorization header proves, or None; Throttled when this
        client or name has failed too often."""
        if not header:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if not credentials:
            return None
        digest = hashlib.sha256(header.encode()).digest()
        verified = self._cached(digest)
        if verified is None:
            name = _basic_name(credentials) if scheme.lower() == "basic" else None
            self.guard.begin(client, name)
            with self.guard.hashing():
                verified = self._verify(scheme.lower(), credentials)
            if verified is None:
                return None
            self.guard.succeeded(client, name)
            self._remember(digest, verified)
        principal = self._load(verified)
        if principal is None:
            with self._lock:
                self._cache.pop(digest, None)
        return principal

    def _verify(self, scheme: str, credentials: str) -> _Verified | None:
        if scheme in ("bearer", "token"):  # Token: taxii2-client's and OpenCTI's name
            return self._verify_key(credentials)
        if scheme == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            name, sep, password = decoded.partition(":")
            return self._verify_password(name, password) if sep else None
        return None

    def _verify_key(self, token: str) -> _Verified | None:
        parts = passwords.split_api_key(token)
        with read(self.engine) as conn:
            row = principal_store.key_hash(conn, parts[0]) if parts else None
        stored = row.secret_hash if row else self.dummy
        ok = passwords.verify_secret(parts[1] if parts else token, stored)
        return _Verified(row.principal_pk, key_id=parts[0]) if ok and row and parts else None

    def _verify_password(self, name: str, password: str) -> _Verified | None:
        with read(self.engine) as conn:
            row = principal_store.by_name(conn, name)
        stored = row.password_hash if row is not None and row.password_hash else None
        ok = passwords.verify_secret(password, stored or self.dummy)
        return _Verified(row.pk, password_hash=stored) if ok and stored else None

    def check_password(self, name: str, password: str, client: str | None = None
                       ) -> int | None:
        """The pk for this name and password (the console log-in), or None; Throttled like
        any other guess. Disabled principals are refused where the principal is loaded."""
        self.guard.begin(client, name)
        with self.guard.hashing():
            verified = self._verify_password(name, password)
        if verified is None:
            return None
        self.guard.succeeded(client, name)
        return verified.pk

    def _load(self, verified: _Verified) -> access.Principal | None:
        with read(self.engine) as conn:
            row = principal_store.by_pk(conn, verified.pk)
            if row is None or row.disabled:
                return None
            if verified.key_id and not principal_store.key_live(conn, verified.key_id):
                return None
        if verified.password_hash and row.password_hash != verified.password_hash:
            return None
        if verified.key_id:
            self._note_use(verified.key_id)
        try:
            return principal_store.to_principal(row, self.tiers)
        except ValueError:  # its tier was removed from the configuration
            return None

    def _note_use(self, key_id: str) -> None:
        """Record when a key was used, at most once a minute per key in this worker."""
        now = timestamps.now_us()
        if now - self._used.get(key_id, 0) < _LAST_USED_EVERY_US:
            return
        self._used[key_id] = now
        with write(self.engine) as conn:
            principal_store.key_used(conn, key_id, now)

    def _cached(self, digest: bytes) -> _Verified | None:
        entry = self._cache.get(digest)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        return None

    def _remember(self, digest: bytes, verified: _Verified) -> None:
        if self.cache_seconds <= 0:
            return
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = (verified, time.monotonic() + self.cache_seconds)


def _basic_name(credentials: str) -> str | None:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, _ = decoded.partition(":")
    return name if sep else None
