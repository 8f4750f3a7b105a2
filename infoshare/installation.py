"""What makes one installation itself, kept in the data directory and created once.

- secret.key: signs TAXII cursors and console sessions (unless `secret_key` is set);
- namespace: the UUID namespace of the service's deterministic STIX ids (stix/ids.py).
  Every host of one installation must hold the same file, like the signing keys; the
  database records its fingerprint, so a host with another namespace refuses to start
  instead of minting ids nobody else would.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .settings import Settings
from .stix.ids import IdSpace
from .store.schema import installation


class InstallationError(RuntimeError):
    pass


def _create_once(path: Path, make: Callable[[], str]) -> str:
    """The file's content, writing `make()` into it first if it does not exist (mode 0600,
    O_EXCL so that racing workers agree on one value)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(make() + "\n")
    return path.read_text().strip()


def load_secret(settings: Settings) -> bytes:
    """The configured secret, else <data_dir>/secret.key."""
    if settings.secret_key:
        return settings.secret_key.encode()
    return _create_once(Path(settings.data_dir) / "secret.key",
                        lambda: secrets.token_hex(32)).encode()


def id_space(settings: Settings) -> IdSpace:
    """The installation's id space, from <data_dir>/namespace (made on first use)."""
    path = Path(settings.data_dir) / "namespace"
    text = _create_once(path, lambda: str(uuid.uuid4()))
    try:
        return IdSpace(uuid.UUID(text))
    except ValueError:
        raise InstallationError(f"{path} does not hold a UUID") from None


def fingerprint(space: IdSpace) -> str:
    return hashlib.sha256(b"infoshare namespace " + space.namespace.bytes).hexdigest()[:32]


def check_namespace(conn: Connection, space: IdSpace) -> None:
    """Record the namespace's fingerprint in the database, or check it against the one
    recorded: two hosts on one database must mint the same ids."""
    from .store.migrate import take_turns

    take_turns(conn)
    mine = fingerprint(space)
    stored = conn.execute(sa.select(installation.c.value)
                          .where(installation.c.name == "namespace")).scalar()
    if stored is None:
        conn.execute(installation.insert().values(name="namespace", value=mine))
    elif stored != mine:
        raise InstallationError(
            "this data directory's namespace file is not the one this database was "
            "initialised with: copy <data_dir>/namespace from a host of this installation")
