"""Who is asking: HTTP Basic (name + password) or `Authorization: Bearer <api key>`.

Hashes are deliberately slow, so a verified credential is remembered (by its SHA-256, never
in clear) for `key_cache_seconds`; the principal row itself is read on every request, so
disabling a principal takes effect at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time

from sqlalchemy.engine import Engine

from . import access, passwords
from .store import principals as principal_store
from .store.engine import read
from .tiers import Tiers

_CACHE_LIMIT = 10_000


class Authenticator:
    def __init__(self, engine: Engine, tier_map: Tiers, cache_seconds: int, log2_n: int = 14):
        self.engine, self.tiers, self.cache_seconds = engine, tier_map, cache_seconds
        self.dummy = passwords.dummy_hash(log2_n)
        self._cache: dict[bytes, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, header: str | None) -> access.Principal | None:
        if not header:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if not credentials:
            return None
        digest = hashlib.sha256(header.encode()).digest()
        pk = self._cached(digest)
        if pk is None:
            pk = self._verify(scheme.lower(), credentials)
            if pk is None:
                return None
            self._remember(digest, pk)
        return self._load(pk)

    def _verify(self, scheme: str, credentials: str) -> int | None:
        if scheme == "bearer":
            return self._verify_key(credentials)
        if scheme == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            name, sep, password = decoded.partition(":")
            return self.check_password(name, password) if sep else None
        return None

    def _verify_key(self, token: str) -> int | None:
        parts = passwords.split_api_key(token)
        with read(self.engine) as conn:
            row = principal_store.key_hash(conn, parts[0]) if parts else None
        stored = row.secret_hash if row else self.dummy
        ok = passwords.verify_secret(parts[1] if parts else token, stored)
        return row.principal_pk if ok and row else None

    def check_password(self, name: str, password: str) -> int | None:
        """The pk for this name and password (HTTP Basic and the console log-in), or None.

        Disabled principals are refused later, where every request loads its principal.
        """
        with read(self.engine) as conn:
            row = principal_store.by_name(conn, name)
        stored = row.password_hash if row is not None and row.password_hash else None
        ok = passwords.verify_secret(password, stored or self.dummy)
        return row.pk if ok and stored else None

    def _load(self, pk: int) -> access.Principal | None:
        with read(self.engine) as conn:
            row = principal_store.by_pk(conn, pk)
        if row is None or row.disabled:
            return None
        try:
            return principal_store.to_principal(row, self.tiers)
        except ValueError:  # its tier was removed from the configuration
            return None

    def _cached(self, digest: bytes) -> int | None:
        entry = self._cache.get(digest)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        return None

    def _remember(self, digest: bytes, pk: int) -> None:
        if self.cache_seconds <= 0:
            return
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = (pk, time.monotonic() + self.cache_seconds)
