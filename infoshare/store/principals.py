"""Principals and their API keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .. import access, passwords, sectors, timestamps
from ..tiers import Tiers
from . import sessions
from .schema import api_keys, principals


class PrincipalError(ValueError):
    pass


def add(conn: Connection, tier_map: Tiers, *, name: str, org: str, tier: str,
        sector_codes: Iterable[str] = (), all_sectors: bool = False,
        compartments: Iterable[str] = (), roles: Iterable[str] = ("reader",),
        password: str | None = None, log2_n: int = 14,
        known_compartments: Iterable[str] = ()) -> tuple[str, str]:
    """Create a principal with one API key; returns (principal id, API key shown once)."""
    name, org = name.strip(), org.strip()
    if not name or not org:
        raise PrincipalError("name and org must not be empty")
    tier_map.max_rank(tier)
    mask = sectors.mask(sector_codes)
    compartments = sorted(set(compartments))
    unknown = set(compartments) - set(known_compartments)
    if unknown:
        raise PrincipalError(f"unknown compartment(s): {', '.join(sorted(unknown))}")
    roles = sorted(set(roles) or {"reader"})
    if by_name(conn, name) is not None:
        raise PrincipalError(f"a principal named {name!r} exists already")
    principal_id = str(uuid.uuid4())
    pk = conn.execute(principals.insert().values(
        id=principal_id, name=name, org=org, tier=tier, all_sectors=all_sectors,
        sector_mask=mask, compartments=compartments, roles=roles, disabled=False,
        password_hash=passwords.hash_secret(password, log2_n) if password else None,
        created_us=timestamps.now_us(),
    )).inserted_primary_key[0]
    return principal_id, add_key(conn, pk, log2_n)


def add_key(conn: Connection, principal_pk: int, log2_n: int = 14) -> str:
    key, key_id, secret = passwords.new_api_key()
    conn.execute(api_keys.insert().values(
        principal_pk=principal_pk, key_id=key_id, revoked=False,
        secret_hash=passwords.hash_secret(secret, log2_n), created_us=timestamps.now_us()))
    return key


def by_name(conn: Connection, name: str) -> Row | None:
    return conn.execute(sa.select(principals).where(principals.c.name == name)).first()


def by_id(conn: Connection, principal_id: str) -> Row | None:
    """By the public id (the console's admin pages name principals by it in URLs)."""
    return conn.execute(sa.select(principals).where(principals.c.id == principal_id)).first()


def by_pk(conn: Connection, pk: int) -> Row | None:
    return conn.execute(sa.select(principals).where(principals.c.pk == pk)).first()


def set_password(conn: Connection, principal_pk: int, password: str, log2_n: int) -> None:
    """A new password; every console session of the principal ends."""
    conn.execute(principals.update().where(principals.c.pk == principal_pk)
                 .values(password_hash=passwords.hash_secret(password, log2_n)))
    sessions.end_all(conn, principal_pk)


def keys_of(conn: Connection, principal_pk: int) -> list[Row]:
    return list(conn.execute(sa.select(api_keys).where(api_keys.c.principal_pk == principal_pk)
                             .order_by(api_keys.c.created_us)))


def revoke_key(conn: Connection, principal_pk: int, key_id: str) -> bool:
    """Revoke one of the principal's keys (its console sessions end too); False if it has
    no such live key."""
    done = conn.execute(api_keys.update().where(
        api_keys.c.principal_pk == principal_pk, api_keys.c.key_id == key_id,
        ~api_keys.c.revoked).values(revoked=True)).rowcount == 1
    if done:
        sessions.end_all(conn, principal_pk)
    return done


def key_live(conn: Connection, key_id: str) -> bool:
    return conn.execute(sa.select(api_keys.c.pk).where(
        api_keys.c.key_id == key_id, ~api_keys.c.revoked)).first() is not None


def key_used(conn: Connection, key_id: str, when_us: int) -> None:
    conn.execute(api_keys.update().where(api_keys.c.key_id == key_id)
                 .values(last_used_us=when_us))


def describe_key(row: Row) -> dict:
    return {"key_id": row.key_id, "created": timestamps.format_us(row.created_us),
            "last_used": timestamps.format_us(row.last_used_us) if row.last_used_us
            else None, "revoked": row.revoked}


def key_hash(conn: Connection, key_id: str) -> Row | None:
    query = (sa.select(api_keys.c.principal_pk, api_keys.c.secret_hash)
             .where(api_keys.c.key_id == key_id, ~api_keys.c.revoked))
    return conn.execute(query).first()


def all_rows(conn: Connection) -> list[Row]:
    return list(conn.execute(sa.select(principals).order_by(principals.c.name)))


def count(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(principals)).scalar_one()


def set_disabled(conn: Connection, name: str, disabled: bool = True) -> bool:
    """Disable (or enable) a principal; disabling ends its console sessions."""
    row = by_name(conn, name)
    if row is None:
        return False
    conn.execute(principals.update().where(principals.c.pk == row.pk)
                 .values(disabled=disabled))
    if disabled:
        sessions.end_all(conn, row.pk)
    return True


def to_principal(row: Row, tier_map: Tiers) -> access.Principal:
    return access.Principal(
        pk=row.pk, id=row.id, name=row.name, org=row.org, tier=row.tier,
        max_rank=tier_map.max_rank(row.tier), all_sectors=row.all_sectors,
        sector_mask=row.sector_mask, compartments=frozenset(row.compartments or ()),
        roles=frozenset(row.roles or ()),
    )


def describe(row: Row) -> dict:
    return {
        "id": row.id, "name": row.name, "org": row.org, "tier": row.tier,
        "sectors": "all" if row.all_sectors else sectors.codes(row.sector_mask),
        "compartments": list(row.compartments or ()), "roles": list(row.roles or ()),
        "disabled": row.disabled, "has_password": row.password_hash is not None,
        "created": timestamps.format_us(row.created_us),
    }
