"""The service's signing keys, kept as files under <data_dir>/keys.

One PKCS#8 PEM per key, named by its kid, encrypted with the passphrase when one is set;
`active` names the key that signs. Rotation adds a key and moves `active`: retired keys
stay so their public halves remain in the JWKS and old objects keep verifying.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import jwk, jws


class KeyringError(RuntimeError):
    pass


@dataclass(frozen=True)
class Signer:
    kid: str
    private_key: Ed25519PrivateKey
    header: str  # the encoded protected header, the same for every object

    def sign(self, payload: bytes) -> str:
        return jws.sign(self.private_key, self.header, payload)


class KeyRing:
    def __init__(self, data_dir: Path, passphrase: str = ""):
        self.dir = Path(data_dir) / "keys"
        self.passphrase = passphrase.encode() if passphrase else None

    # --- files ---------------------------------------------------------------------------
    def _pem_path(self, kid: str) -> Path:
        return self.dir / f"{kid}.pem"

    def _write_key(self, key: Ed25519PrivateKey) -> str:
        kid = jwk.thumbprint(key.public_key())
        encryption = (serialization.BestAvailableEncryption(self.passphrase)
                      if self.passphrase else serialization.NoEncryption())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                encryption)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        fd = os.open(self._pem_path(kid), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        (self.dir / f"{kid}.pub.json").write_text(json.dumps(jwk.to_jwk(key.public_key())))
        return kid

    def _set_active(self, kid: str) -> None:
        tmp = self.dir / "active.tmp"
        tmp.write_text(kid + "\n")
        os.replace(tmp, self.dir / "active")

    def _load(self, kid: str) -> Ed25519PrivateKey:
        try:
            key = serialization.load_pem_private_key(self._pem_path(kid).read_bytes(),
                                                     password=self.passphrase)
        except FileNotFoundError:
            raise KeyringError(f"key {kid} named in {self.dir / 'active'} is missing") from None
        except (TypeError, ValueError) as exc:
            raise KeyringError(f"cannot open key {kid}: wrong or missing passphrase "
                            f"(INFOSHARE_KEY_PASSPHRASE)? {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyringError(f"key {kid} is not an Ed25519 key")
        return key

    # --- use -----------------------------------------------------------------------------
    def active_kid(self) -> str | None:
        try:
            return (self.dir / "active").read_text().strip() or None
        except FileNotFoundError:
            return None

    def ensure(self) -> str:
        """The active kid, creating the first key if there is none."""
        kid = self.active_kid()
        if kid is None:
            kid = self._write_key(Ed25519PrivateKey.generate())
            self._set_active(kid)
        return kid

    def rotate(self) -> str:
        """A new active key, encrypted with the same passphrase as the current one.

        The current key is opened first: with a wrong (or missing) passphrase that fails,
        and nothing is written; otherwise the new key would be sealed with the wrong
        passphrase and the service, holding the right one, could no longer sign.
        """
        current = self.active_kid()
        if current is not None:
            self._load(current)
        kid = self._write_key(Ed25519PrivateKey.generate())
        self._set_active(kid)
        return kid

    def signer(self) -> Signer:
        kid = self.ensure()
        return Signer(kid, self._load(kid), jws.protected_header(kid))

    def signer_for(self, kid: str) -> Signer:
        """A given key of this ring (the one another host made active)."""
        return Signer(kid, self._load(kid), jws.protected_header(kid))

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every key's public half, read without the passphrase from the .pub files."""
        keys = {}
        for path in sorted(self.dir.glob("*.pem")) if self.dir.exists() else []:
            keys[path.stem] = self._public(path.stem)
        return keys

    def _public(self, kid: str) -> Ed25519PublicKey:
        pub = self.dir / f"{kid}.pub.json"
        if pub.exists():
            entry = json.loads(pub.read_text())
            return Ed25519PublicKey.from_public_bytes(jws.unb64url(entry["x"]))
        public_key = self._load(kid).public_key()
        pub.write_text(json.dumps(jwk.to_jwk(public_key)))
        return public_key

    def jwks(self) -> dict:
        active = self.active_kid()
        return {"keys": [jwk.to_jwk(key, "active" if kid == active else "retired")
                         for kid, key in self.public_keys().items()]}

    def listing(self) -> list[dict]:
        active = self.active_kid()
        return [{"kid": kid, "status": "active" if kid == active else "retired",
                 "created": int(self._pem_path(kid).stat().st_mtime)}
                for kid in self.public_keys()]
