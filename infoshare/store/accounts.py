"""Every change an operator makes to a principal, one function each: the rule, the change
and its audit entry, in the caller's transaction.

The CLI (`infoshare principals ...`) and the console's admin area both call these, so a
rule holds and an entry is written whichever door an operator uses. `actor` is who acts:
"operator" from the CLI, the admin's principal name from the console. A refused change
raises AccountError naming the field, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Connection, Row

from .. import passwords, sectors
from ..settings import ROLES, Settings
from . import audit
from . import principals as store
from .schema import principals

MIN_PASSWORD = 12
MAX_NAME = 200  # the columns' length: longer is refused here, not by the database
# The audit trail's actors that are not principals: a principal by one of these names
# would make its entries indistinguishable from the CLI's, the service's or a feed's.
RESERVED_NAMES = ("operator", "service")


class AccountError(store.PrincipalError):
    """A refused change; `field` is the input it concerns ("" for none in particular)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def _roles(roles: Iterable[str]) -> list[str]:
    chosen = sorted(set(roles) or {"reader"})
    unknown = [r for r in chosen if r not in ROLES]
    if unknown:
        raise AccountError(f"unknown role(s): {', '.join(unknown)}; roles are "
                           f"{', '.join(ROLES)}", "roles")
    return chosen


def _sector_mask(codes: Iterable[str]) -> int:
    unknown = [c for c in codes if c not in sectors.CODES]
    if unknown:
        raise AccountError(f"unknown sector(s): {', '.join(unknown)}", "sectors")
    return sectors.mask(codes)


def _tier(settings: Settings, tier: str) -> str:
    try:
        settings.tiers.max_rank(tier)
    except ValueError as exc:
        raise AccountError(str(exc), "tier") from None
    return tier


def _compartments(settings: Settings, names: Iterable[str]) -> list[str]:
    chosen = sorted(set(names))
    unknown = [c for c in chosen if c not in settings.compartments]
    if unknown:
        raise AccountError(f"unknown compartment(s): {', '.join(unknown)}", "compartments")
    return chosen


def existing(conn: Connection, name: str) -> Row:
    row = store.by_name(conn, name)
    if row is None:
        raise AccountError(f"no principal named {name!r}", "name")
    return row


def add(conn: Connection, settings: Settings, actor: str, *, name: str, org: str, tier: str,
        sector_codes: Iterable[str] = (), all_sectors: bool = False,
        compartments: Iterable[str] = (), roles: Iterable[str] = (),
        password: str | None = None) -> tuple[str, str]:
    """A new principal with one API key: (its id, the key, shown once)."""
    name, org = name.strip(), org.strip()
    if not name:
        raise AccountError("a principal needs a name", "name")
    if not org:
        raise AccountError("a principal needs an organisation", "org")
    for field, value in (("name", name), ("org", org)):
        if len(value) > MAX_NAME or not value.isprintable():
            raise AccountError(f"{field} must be at most {MAX_NAME} printable characters",
                               field)
    if name.lower() in RESERVED_NAMES or name.lower().startswith("feed:"):
        raise AccountError(f"{name!r} is reserved for the audit trail's own actors", "name")
    if store.by_name(conn, name) is not None:
        raise AccountError(f"a principal named {name!r} exists already", "name")
    chosen = _roles(roles)
    _sector_mask(sector_codes)
    principal_id, key = store.add(
        conn, settings.tiers, name=name, org=org, tier=_tier(settings, tier),
        sector_codes=sector_codes, all_sectors=all_sectors,
        compartments=_compartments(settings, compartments), roles=chosen,
        password=password, log2_n=settings.auth.scrypt_log2_n,
        known_compartments=settings.compartments)
    audit.record(conn, actor, "principal-add", name, org=org, tier=tier, roles=chosen)
    return principal_id, key


def update(conn: Connection, settings: Settings, actor: str, name: str, *, tier: str,
           sector_codes: Iterable[str], all_sectors: bool, compartments: Iterable[str],
           roles: Iterable[str]) -> list[str]:
    """Set a principal's clearance: tier, sectors, compartments and roles. Returns the
    names of what changed (nothing changed, nothing is written). The principal's next
    request, by key or session, already sees the change (both are read per request)."""
    row = existing(conn, name)
    values = {"tier": _tier(settings, tier), "all_sectors": bool(all_sectors),
              "sector_mask": 0 if all_sectors else _sector_mask(sector_codes),
              "compartments": _compartments(settings, compartments), "roles": _roles(roles)}
    before = {"tier": row.tier, "all_sectors": row.all_sectors, "sector_mask": row.sector_mask,
              "compartments": sorted(row.compartments or ()),
              "roles": sorted(row.roles or ())}
    changed = [key for key in values if values[key] != before[key]]
    if changed:
        conn.execute(principals.update().where(principals.c.pk == row.pk).values(**values))
        audit.record(conn, actor, "principal-update", name, changed=changed,
                     tier=values["tier"], roles=values["roles"],
                     sectors="all" if all_sectors else sectors.codes(values["sector_mask"]),
                     compartments=values["compartments"])
    return changed


def set_disabled(conn: Connection, actor: str, name: str, disabled: bool) -> None:
    """Disable (its keys, password and sessions stop at once) or enable a principal."""
    existing(conn, name)
    store.set_disabled(conn, name, disabled)
    audit.record(conn, actor, "principal-disable" if disabled else "principal-enable", name)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters",
                           "password")
    return password


def set_password(conn: Connection, settings: Settings, actor: str, name: str,
                 password: str) -> None:
    """A new password; every console session of the principal ends."""
    row = existing(conn, name)
    store.set_password(conn, row.pk, check_password(password), settings.auth.scrypt_log2_n)
    audit.record(conn, actor, "principal-set-password", name)


def new_key(conn: Connection, settings: Settings, actor: str, name: str) -> tuple[str, str]:
    """A new API key: (the key, shown once; its key id, kept in clear)."""
    row = existing(conn, name)
    key = store.add_key(conn, row.pk, settings.auth.scrypt_log2_n)
    key_id = passwords.split_api_key(key)[0]
    audit.record(conn, actor, "key-add", name, key_id=key_id)
    return key, key_id


def revoke_key(conn: Connection, actor: str, name: str, key_id: str) -> None:
    """Revoke one key at once, in every worker; the principal's sessions end too."""
    row = existing(conn, name)
    if not store.revoke_key(conn, row.pk, key_id):
        raise AccountError(f"{name!r} has no live key {key_id!r}", "key_id")
    audit.record(conn, actor, "key-revoke", name, key_id=key_id)

