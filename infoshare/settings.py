"""Configuration: config/infoshare.toml, an optional overlay file, then the environment.

Layers, later wins: the embedded default (config/infoshare.toml), the TOML file named by
INFOSHARE_CONFIG (tables merge key by key, anything else replaces), and one environment
variable per key (INFOSHARE_ + dotted key, upper case, dots as underscores). Every value is
validated once here; a bad one stops start-up with a ConfigError naming the key and where
it came from, so an operator never has to guess which of three layers is wrong.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import sectors, tiers

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "infoshare.toml"
ENV_PREFIX = "INFOSHARE_"
# Tables whose keys are chosen by the operator rather than fixed by the default file.
FREE_TABLES = {"tiers", "compartments"}
ARRAY_TABLES = {"collections", "feeds"}
COLLECTION_KINDS = ("all", "sector", "types", "submitted")
SECTOR_COLLECTION_NAMESPACE = uuid.UUID("6f0c7c52-3b8e-4b8e-9f43-5a2c1e7d9b10")
ROLES = ("reader", "publisher", "admin")


class ConfigError(ValueError):
    def __init__(self, key: str, message: str, source: str = ""):
        where = f" (from {source})" if source else ""
        super().__init__(f"config error: {key}: {message}{where}")
        self.key = key


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    workers: int
    base_url: str
    threads: int = 8
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 1000
    forwarded_allow_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaxiiSettings:
    title: str
    description: str
    contact: str
    api_root: str
    api_root_title: str
    max_page_size: int
    max_content_length: int
    status_retention_hours: int
    default_tlp: str
    sector_collections: bool
    max_page_bytes: int = 8 * 1024 * 1024
    max_match_values: int = 100
    background_bytes: int = 1024 * 1024
    ingest_workers: int = 1
    max_pending: int = 4


@dataclass(frozen=True)
class AuthSettings:
    key_cache_seconds: int
    scrypt_log2_n: int


@dataclass(frozen=True)
class OutboundSettings:
    allow_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubscriptionSettings:
    max_per_principal: int = 50


@dataclass(frozen=True)
class WebhookSettings:
    max_attempts: int
    retry_base_seconds: float
    timeout_seconds: float
    allow_http_hosts: tuple[str, ...]


@dataclass(frozen=True)
class CollectionSpec:
    id: str
    alias: str
    title: str
    description: str
    kind: str
    sector: str | None = None  # kind "sector": None means the all-sectors collection
    types: tuple[str, ...] = ()
    write_roles: tuple[str, ...] = ()
    write_min_tier: str | None = None
    default_tlp: str | None = None
    # kind "subscription": the personal collection of one subscription (not from config)
    subscription_pk: int | None = None
    owner_pk: int | None = None


FEED_KINDS = ("cap", "nws", "kev", "taxii", "stix", "csv", "rss")
FEED_KEYS = frozenset({"name", "kind", "url", "interval", "sectors", "tlp", "enabled"})


@dataclass(frozen=True)
class FeedSpec:
    """One `[[feeds]]` table. `options` holds the kind-specific keys, checked by the
    adapter when the feeds are loaded (feeds/registry.py)."""

    name: str
    kind: str
    url: str
    interval_seconds: int | None  # one of interval_seconds and cron is set
    cron: str | None
    sectors: tuple[str, ...]  # empty: all sectors
    tlp: str
    enabled: bool
    options: Mapping[str, Any] = field(default_factory=dict)
    sectors_stated: bool = False  # `sectors` was written, not left to its default (all)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    key_passphrase: str
    server: ServerSettings
    taxii: TaxiiSettings
    auth: AuthSettings
    tiers: tiers.Tiers
    compartments: Mapping[str, str]
    webhooks: WebhookSettings
    collections: tuple[CollectionSpec, ...]
    feeds: tuple[FeedSpec, ...] = field(default=())
    subscriptions: SubscriptionSettings = field(default_factory=SubscriptionSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)

    def collection(self, key: str) -> CollectionSpec | None:
        """A collection by id or alias."""
        for spec in self.collections:
            if key in (spec.id, spec.alias):
                return spec
        return None


def load_settings(
    environ: Mapping[str, str] | None = None, overlay: Mapping[str, Any] | None = None
) -> Settings:
    """Settings from the three layers; `overlay` (tests) sits between file and environment."""
    environ = os.environ if environ is None else environ
    raw = _read_toml(DEFAULT_CONFIG)
    sources: dict[str, str] = {}
    path = environ.get("INFOSHARE_CONFIG")
    if path:
        _merge(raw, _read_toml(Path(path)), sources, str(path))
    if overlay:
        _merge(raw, overlay, sources, "overlay")
    _apply_environment(raw, environ, sources)
    return _build(raw, sources)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("INFOSHARE_CONFIG", f"no such file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("INFOSHARE_CONFIG", f"{path} is not valid TOML: {exc}") from None


def _merge(base: dict, upper: Mapping, sources: dict, source: str, prefix: str = "") -> None:
    for key, value in upper.items():
        dotted = f"{prefix}{key}"
        table = prefix.rstrip(".")
        if key not in base and table not in FREE_TABLES and dotted not in ARRAY_TABLES:
            raise ConfigError(dotted, "unknown setting", source)
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, sources, source, dotted + ".")
        elif dotted in ARRAY_TABLES and isinstance(value, list):
            base[key] = _merge_entries(list(base.get(key) or []), value, dotted, source)
            sources[dotted] = source
        else:
            base[key] = value
            sources[dotted] = source


# An overlay's [[collections]] and [[feeds]] are merged entry by entry, by this key: an
# entry with a known id (name) replaces that one, a new one is added, and one that says
# `remove = true` removes it. Every other entry of the layer below stays.
ENTRY_KEYS = {"collections": "id", "feeds": "name"}


def _merge_entries(base: list, upper: list, dotted: str, source: str) -> list:
    key = ENTRY_KEYS[dotted]
    merged = list(base)
    for index, entry in enumerate(upper):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{dotted}[{index}]", "expected a table", source)
        entry = dict(entry)
        remove = entry.pop("remove", False)
        if not isinstance(remove, bool):
            raise ConfigError(f"{dotted}[{index}].remove", "expected true or false", source)
        at = next((i for i, e in enumerate(merged) if isinstance(e, Mapping)
                   and key in entry and e.get(key) == entry[key]), None)
        if remove:
            if at is None:
                raise ConfigError(f"{dotted}[{index}]", f"remove = true, but no entry has "
                                  f"{key} = {entry.get(key)!r}", source)
            del merged[at]
        elif at is not None:
            merged[at] = entry
        else:
            merged.append(entry)
    return merged


def _apply_environment(raw: dict, environ: Mapping[str, str], sources: dict) -> None:
    for dotted, current in list(_leaves(raw)):
        name = ENV_PREFIX + dotted.replace(".", "_").replace("-", "_").upper()
        if name in environ:
            _set(raw, dotted, _coerce(dotted, environ[name], current, name))
            sources[dotted] = name


def _leaves(raw: Mapping, prefix: str = ""):
    for key, value in raw.items():
        if prefix == "" and key in ARRAY_TABLES:
            continue
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _set(raw: dict, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for part in path:
        raw = raw[part]
    raw[last] = value


def _coerce(key: str, text: str, current: Any, source: str) -> Any:
    """An environment string read as the type the setting already has."""
    if isinstance(current, bool):
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, f"expected true or false, got {text!r}", source)
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(key, f"expected an integer, got {text!r}", source) from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(key, f"expected a number, got {text!r}", source) from None
    if isinstance(current, list):
        if text.strip().startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(key, f"expected a JSON list: {exc}", source) from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


class _Reader:
    """Typed access to the merged raw config that names the key in every error."""

    def __init__(self, raw: Mapping[str, Any], sources: Mapping[str, str], prefix: str = ""):
        self.raw, self.sources, self.prefix = raw, sources, prefix

    def fail(self, key: str, message: str) -> ConfigError:
        dotted = self.prefix + key
        return ConfigError(dotted, message, self.sources.get(dotted, ""))

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        value = self.raw.get(key, default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"expected {kind.__name__}, got {value!r}")
        return value

    def int(self, key: str, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.get(key, int)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum else f">= {minimum}"
            raise self.fail(key, f"must be {bound}, got {value}")
        return value

    def number(self, key: str, maximum: float = 86_400.0) -> float:
        value = self.get(key, float)
        if not math.isfinite(value) or not 0 < value <= maximum:
            raise self.fail(key, f"must be a number above 0 and at most {maximum:g}, "
                            f"got {value}")
        return value

    def str(self, key: str, default: str | None = None, nonempty: bool = False) -> str:
        value = self.get(key, str, default)
        if nonempty and not value.strip():
            raise self.fail(key, "must not be empty")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, list, [])
        if not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def choice(self, key: str, allowed: tuple[str, ...] | list[str], default=None) -> str:
        value = self.str(key, default)
        if value not in allowed:
            raise self.fail(key, f"must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def table(self, key: str) -> _Reader:
        value = self.raw.get(key, {})
        if not isinstance(value, Mapping):
            raise self.fail(key, "expected a table")
        return _Reader(value, self.sources, f"{self.prefix}{key}.")


def _build(raw: dict[str, Any], sources: Mapping[str, str]) -> Settings:
    top = _Reader(raw, sources)
    data_dir = _data_dir(top.str("data_dir", nonempty=True), sources.get("data_dir", ""))
    database_url = top.str("database_url") or f"sqlite:///{data_dir / 'infoshare.db'}"
    if not database_url.startswith(("sqlite", "postgresql")):
        raise top.fail("database_url", "must be a sqlite:/// or postgresql+psycopg:// URL")
    tier_map = _tiers(top.table("tiers"))
    taxii = _taxii(top.table("taxii"))
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=top.str("secret_key"),
        key_passphrase=top.str("key_passphrase"),
        server=_server(top.table("server")),
        taxii=taxii,
        auth=_auth(top.table("auth")),
        tiers=tier_map,
        compartments=_compartments(top.table("compartments")),
        webhooks=_webhooks(top.table("webhooks")),
        collections=_collections(raw, sources, taxii, tier_map),
        feeds=_feeds(raw, sources),
        subscriptions=SubscriptionSettings(
            max_per_principal=top.table("subscriptions").int("max_per_principal", 1, 100_000)),
        outbound=_outbound(top.table("outbound")),
    )


def _outbound(r: _Reader) -> OutboundSettings:
    hosts = r.strings("allow_hosts")
    for host in hosts:
        try:
            ipaddress.ip_network(host.strip(), strict=False)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", host.strip()):
                raise r.fail("allow_hosts", f"{host!r} is not a host name, an address or a "
                             "CIDR range") from None
    return OutboundSettings(allow_hosts=hosts)


def _data_dir(value: str, source: str) -> Path:
    """A relative data_dir belongs to the file that set it, so the CLI finds the same
    installation from any folder; from the environment it is relative to the current one."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path.resolve()
    if source.startswith(ENV_PREFIX):
        return path.resolve()
    config = Path(source) if source and source != "overlay" else DEFAULT_CONFIG
    return (config.resolve().parent / path).resolve()


def _server(r: _Reader) -> ServerSettings:
    return ServerSettings(
        host=r.str("host", nonempty=True),
        port=r.int("port", 1, 65535),
        workers=r.int("workers", 1, 64),
        base_url=r.str("base_url").rstrip("/"),
        threads=r.int("threads", 1, 256),
        header_timeout=r.number("header_timeout"),
        body_timeout=r.number("body_timeout"),
        max_connections=r.int("max_connections", 10, 100_000),
        forwarded_allow_ips=r.strings("forwarded_allow_ips"),
    )


def _taxii(r: _Reader) -> TaxiiSettings:
    api_root = r.str("api_root", nonempty=True)
    if not api_root.replace("-", "").replace("_", "").isalnum():
        raise r.fail("api_root", "must be letters, digits, '-' or '_'")
    return TaxiiSettings(
        title=r.str("title", nonempty=True),
        description=r.str("description"),
        contact=r.str("contact"),
        api_root=api_root,
        api_root_title=r.str("api_root_title", nonempty=True),
        max_page_size=r.int("max_page_size", 1, 100_000),
        max_content_length=r.int("max_content_length", 1024, 1024**3),
        status_retention_hours=r.int("status_retention_hours", 24, 87_600),
        default_tlp=r.choice("default_tlp", tiers.TLP_LEVELS),
        sector_collections=r.get("sector_collections", bool, True),
        max_page_bytes=r.int("max_page_bytes", 64 * 1024, 8 * 1024 * 1024),
        max_match_values=r.int("max_match_values", 1, 10_000),
        background_bytes=r.int("background_bytes", 0, 1024**3),
        ingest_workers=r.int("ingest_workers", 1, 64),
        max_pending=r.int("max_pending", 1, 1000),
    )


def _auth(r: _Reader) -> AuthSettings:
    return AuthSettings(
        key_cache_seconds=r.int("key_cache_seconds", 0, 86_400),
        scrypt_log2_n=r.int("scrypt_log2_n", 10, 20),
    )


def _tiers(r: _Reader) -> tiers.Tiers:
    if not r.raw:
        raise r.fail("", "at least one tier is needed")
    levels = {name: r.choice(name, tiers.TLP_LEVELS) for name in r.raw}
    return tiers.Tiers(levels)


def _compartments(r: _Reader) -> dict[str, str]:
    return {name: r.str(name, nonempty=True) for name in r.raw}


def _webhooks(r: _Reader) -> WebhookSettings:
    return WebhookSettings(
        max_attempts=r.int("max_attempts", 1, 100),
        retry_base_seconds=r.number("retry_base_seconds"),
        timeout_seconds=r.number("timeout_seconds"),
        allow_http_hosts=r.strings("allow_http_hosts"),
    )


def _collections(raw, sources, taxii: TaxiiSettings, tier_map: tiers.Tiers):
    entries = raw.get("collections", [])
    if not isinstance(entries, list):
        raise ConfigError("collections", "expected an array of tables ([[collections]])")
    specs = [_collection(_Reader(e, sources, f"collections[{i}]."), tier_map)
             for i, e in enumerate(entries)]
    if taxii.sector_collections:
        specs.extend(_sector_collection(code) for code in sectors.CODES)
    seen: set[str] = set()
    for spec in specs:
        for key in (spec.id, spec.alias):
            if key in seen:
                raise ConfigError("collections", f"{key!r} is used by two collections")
            seen.add(key)
    return tuple(specs)


COLLECTION_KEYS = frozenset({"id", "alias", "title", "description", "kind", "sector", "types",
                             "write_roles", "write_min_tier", "default_tlp"})


def _collection(r: _Reader, tier_map: tiers.Tiers) -> CollectionSpec:
    for key in r.raw:
        if key not in COLLECTION_KEYS:
            raise r.fail(key, "unknown collection setting; known: "
                         + ", ".join(sorted(COLLECTION_KEYS)))
    try:
        ident = str(uuid.UUID(r.str("id", nonempty=True)))
    except ValueError:
        raise r.fail("id", "must be a UUID") from None
    kind = r.choice("kind", COLLECTION_KINDS)
    sector = r.raw.get("sector")
    if sector is not None and sector not in sectors.CODES:
        raise r.fail("sector", f"unknown sector {sector!r}")
    write_roles = r.strings("write_roles")
    for role in write_roles:
        if role not in ROLES:
            raise r.fail("write_roles", f"unknown role {role!r}")
    min_tier = r.raw.get("write_min_tier")
    if min_tier is not None and min_tier not in tier_map.max_level:
        raise r.fail("write_min_tier", f"unknown tier {min_tier!r}")
    default_tlp = r.raw.get("default_tlp")
    if default_tlp is not None:
        r.choice("default_tlp", tiers.TLP_LEVELS)
    if kind == "types" and not r.strings("types"):
        raise r.fail("types", "a collection of kind 'types' needs a list of STIX types")
    return CollectionSpec(
        id=ident,
        alias=r.str("alias", nonempty=True),
        title=r.str("title", nonempty=True),
        description=r.str("description", ""),
        kind=kind,
        sector=sector,
        types=r.strings("types"),
        write_roles=write_roles,
        write_min_tier=min_tier,
        default_tlp=default_tlp,
    )


def _sector_collection(code: str) -> CollectionSpec:
    sector = sectors.BY_CODE[code]
    return CollectionSpec(
        id=str(uuid.uuid5(SECTOR_COLLECTION_NAMESPACE, code)),
        alias=f"sector-{code}",
        title=f"{sector.title} sector",
        description=f"Notices for the {sector.title} sector and for all sectors.",
        kind="sector",
        sector=code,
    )


def _feeds(raw, sources) -> tuple[FeedSpec, ...]:
    entries = raw.get("feeds", [])
    if not isinstance(entries, list):
        raise ConfigError("feeds", "expected an array of tables ([[feeds]])")
    specs = tuple(_feed(_Reader(e, sources, f"feeds[{i}].")) for i, e in enumerate(entries))
    names = [spec.name for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("feeds", f"two feeds are named {name!r}")
    return specs


def _feed(r: _Reader) -> FeedSpec:
    name = r.str("name", nonempty=True)
    if not name.replace("-", "").replace("_", "").isalnum():
        raise r.fail("name", "use letters, digits, '-' and '_'")
    interval = r.raw.get("interval", 3600)
    seconds, cron = None, None
    if isinstance(interval, int) and not isinstance(interval, bool):
        if not 10 <= interval <= 31 * 86_400:
            raise r.fail("interval", f"must be between 10 seconds and 31 days, got {interval}")
        seconds = interval
    elif isinstance(interval, str) and len(interval.split()) == 5:
        cron = interval
    else:
        raise r.fail("interval", "seconds (an integer >= 10) or a 5-field cron expression")
    sector_value = r.raw.get("sectors", "all")
    if sector_value == "all":
        codes: tuple[str, ...] = ()
    else:
        codes = r.strings("sectors")
        unknown = [c for c in codes if c not in sectors.CODES]
        if unknown or not codes:
            raise r.fail("sectors", f"unknown sector(s) {unknown}; give codes or \"all\"")
    return FeedSpec(
        name=name, kind=r.choice("kind", FEED_KINDS), url=r.str("url", nonempty=True),
        interval_seconds=seconds, cron=cron, sectors=codes,
        tlp=r.choice("tlp", tiers.TLP_LEVELS, "clear"),
        enabled=r.get("enabled", bool, True),
        options={k: v for k, v in r.raw.items() if k not in FEED_KEYS},
        sectors_stated="sectors" in r.raw,
    )
