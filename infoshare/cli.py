"""The `infoshare` command: operators' verbs, built on Flask's CLI.

Commands print JSON where another program may read the answer (principals add) and plain
lines where a person will (init). Errors exit non-zero with a message, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from . import outbound, sectors
from .app import create_app
from .passwords import new_password
from .server import prepare
from .settings import ROLES, ConfigError, load_settings
from .store import accounts, audit, migrate
from .store import principals as principal_store
from .store.engine import read, write

# Commands that may make a data directory; every other one needs an existing one.
_MAKES_DATA_DIR = ("init", "db upgrade", "serve")


def _create_app():
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    context = click.get_current_context(silent=True)
    command = " ".join(context.command_path.split()[1:]) if context else ""
    if command not in _MAKES_DATA_DIR and not Path(settings.data_dir).is_dir():
        raise click.ClickException(
            f"no data directory at {settings.data_dir}: run `infoshare init` first, or set "
            "INFOSHARE_DATA_DIR (or data_dir in INFOSHARE_CONFIG) to an installation's")
    try:
        return create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


class _Commands(FlaskGroup):
    """Flask's CLI, without Flask's own options (--app, --env-file, --debug), and with
    an operator's mistakes (an unreachable database, a data directory that is a file, a
    read-only file system) said in one line instead of a traceback."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params = [p for p in self.params if p.name not in ("app", "env_file", "debug")]

    def list_commands(self, ctx):  # ours only: listing them must not build the app
        return click.Group.list_commands(self, ctx)

    def get_command(self, ctx, name):
        return click.Group.get_command(self, ctx, name)

    def invoke(self, ctx):
        import sqlalchemy as sa

        try:
            return super().invoke(ctx)
        except sa.exc.OperationalError as exc:
            raise click.ClickException("the database cannot be used: "
                                       f"{str(exc.orig or exc).splitlines()[0]}") from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: "
                                       f"{exc.filename or ''}".rstrip(": ")) from None


def _svc():
    return current_app.extensions["infoshare"]


def _signer(svc):
    from .signing.keys import KeyringError

    try:
        return svc.signer()
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from None


def _ready():
    """The services, once the schema is current; otherwise a message saying what to run."""
    svc = _svc()
    if migrate.current_version(svc.engine) < len(migrate.MIGRATIONS):
        raise click.ClickException("the database schema is missing or old: run "
                                   "`infoshare db upgrade` (or `infoshare init`) first")
    return svc


@click.group(cls=_Commands, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main() -> None:
    """infoshare: threat and hazard notices as signed STIX 2.1 over TAXII 2.1."""
    os.umask(0o077)  # the database, keys and secrets it creates are the service's alone


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Create or migrate the schema (safe to run again)."""
    before, after = migrate.upgrade(_svc().engine)
    click.echo(json.dumps({"schema_version_before": before, "schema_version": after}))


def _prepare(settings):
    from .installation import InstallationError
    from .signing.keys import KeyringError

    try:
        return prepare(settings)
    except (KeyringError, InstallationError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command("init")
@with_appcontext
def init() -> None:
    """Prepare the data directory; on first run create an admin and a demo reader."""
    svc = _svc()
    _prepare(svc.settings)
    accounts = [
        dict(name="admin", org="infoshare operators", tier=svc.settings.tiers.names()[-1],
             all_sectors=True, roles=("admin", "publisher", "reader"),
             compartments=tuple(svc.settings.compartments)),
        dict(name="demo-reader", org="Demo Water Utility", tier="partner",
             sector_codes=("water", "energy"), roles=("reader",)),
    ]
    created = []
    with write(svc.engine) as conn:
        migrate.take_turns(conn)  # two hosts initialising at once: one makes the accounts
        if principal_store.count(conn) > 0:
            click.echo("infoshare: data directory ready (principals exist already).")
            return
        for account in accounts:
            password = new_password()
            _, key = principal_store.add(conn, svc.settings.tiers, password=password,
                                         log2_n=svc.settings.auth.scrypt_log2_n,
                                         known_compartments=svc.settings.compartments,
                                         **account)
            created.append((account["name"], password, key))
    click.echo("infoshare: first run. These credentials are shown once; keep them:")
    for name, password, key in created:
        click.echo(f"  {name:<12} password {password}   api key {key}")


@main.group()
def principals() -> None:
    """People and service accounts, their clearance and their keys."""


@principals.command("add")
@click.argument("name")
@click.option("--org", required=True, help="Organisation the principal belongs to.")
@click.option("--tier", required=True, help="Clearance tier (config [tiers]).")
@click.option("--sector", "sector_codes", multiple=True, type=click.Choice(sectors.CODES))
@click.option("--all-sectors", is_flag=True)
@click.option("--compartment", "compartments", multiple=True)
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLES))
@click.option("--password-stdin", is_flag=True, help="Read a password from standard input.")
@with_appcontext
def principals_add(name, org, tier, sector_codes, all_sectors, compartments, roles,
                   password_stdin) -> None:
    """Add a principal; prints its id and a new API key (shown once)."""
    svc = _ready()
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("--password-stdin: standard input held no password")
    with _account_change(svc) as conn:
        principal_id, key = accounts.add(
            conn, svc.settings, "operator", name=name, org=org, tier=tier,
            sector_codes=sector_codes, all_sectors=all_sectors, compartments=compartments,
            roles=roles, password=password)
    click.echo(json.dumps({"id": principal_id, "name": name, "api_key": key}))


@principals.command("update")
@click.argument("name")
@click.option("--tier", required=True, help="Clearance tier (config [tiers]).")
@click.option("--sector", "sector_codes", multiple=True, type=click.Choice(sectors.CODES))
@click.option("--all-sectors", is_flag=True)
@click.option("--compartment", "compartments", multiple=True)
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLES))
@with_appcontext
def principals_update(name, tier, sector_codes, all_sectors, compartments, roles) -> None:
    """Set NAME's tier, sectors, compartments and roles (each as given: what is not given
    is removed); prints what changed."""
    svc = _ready()
    with _account_change(svc) as conn:
        changed = accounts.update(conn, svc.settings, "operator", name, tier=tier,
                                  sector_codes=sector_codes, all_sectors=all_sectors,
                                  compartments=compartments, roles=roles)
    click.echo(json.dumps({"name": name, "changed": changed}))


@contextlib.contextmanager
def _account_change(svc):
    """A write transaction for store/accounts.py; a refused change is a one-line error."""
    try:
        with write(svc.engine) as conn:
            yield conn
    except ValueError as exc:  # accounts.AccountError, or an unknown tier
        raise click.ClickException(str(exc)) from None


@principals.command("list")
@with_appcontext
def principals_list() -> None:
    """All principals as JSON lines."""
    with read(_ready().engine) as conn:
        for row in principal_store.all_rows(conn):
            click.echo(json.dumps(principal_store.describe(row)))


def _password_from_stdin(option: str) -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.ClickException(f"{option}: standard input held no password")
    try:
        return accounts.check_password(password)
    except accounts.AccountError as exc:
        raise click.ClickException(f"{option}: {exc}") from None


@principals.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, required=True,
              help="Read the new password from standard input.")
@with_appcontext
def principals_set_password(name, password_stdin) -> None:
    """Give NAME a new password; its console sessions end."""
    svc = _ready()
    password = _password_from_stdin("--password-stdin")
    with _account_change(svc) as conn:
        accounts.set_password(conn, svc.settings, "operator", name, password)
    click.echo(json.dumps({"name": name, "password": "changed"}))


@principals.command("new-key")
@click.argument("name")
@with_appcontext
def principals_new_key(name) -> None:
    """A new API key for NAME, printed once as JSON (api_key, key_id)."""
    svc = _ready()
    with _account_change(svc) as conn:
        key, key_id = accounts.new_key(conn, svc.settings, "operator", name)
    click.echo(json.dumps({"name": name, "api_key": key, "key_id": key_id}))


@principals.command("keys")
@click.argument("name")
@with_appcontext
def principals_keys(name) -> None:
    """NAME's API keys as JSON lines: key_id, created, last_used, revoked."""
    with read(_ready().engine) as conn:
        row = principal_store.by_name(conn, name)
        if row is None:
            raise click.ClickException(f"no principal named {name!r}")
        for key in principal_store.keys_of(conn, row.pk):
            click.echo(json.dumps(principal_store.describe_key(key)))


@principals.command("revoke-key")
@click.argument("name")
@click.argument("key_id")
@with_appcontext
def principals_revoke_key(name, key_id) -> None:
    """Revoke one of NAME's API keys at once, in every worker; its other keys go on."""
    with _account_change(_ready()) as conn:
        accounts.revoke_key(conn, "operator", name, key_id)
    click.echo(json.dumps({"name": name, "key_id": key_id, "revoked": True}))


@principals.command("disable")
@click.argument("name")
@with_appcontext
def principals_disable(name) -> None:
    """Refuse all further requests from NAME (its keys and password stop working)."""
    with _account_change(_ready()) as conn:
        accounts.set_disabled(conn, "operator", name, True)
    click.echo(json.dumps({"name": name, "disabled": True}))


@principals.command("enable")
@click.argument("name")
@with_appcontext
def principals_enable(name) -> None:
    """Let a disabled NAME in again (its live keys and password work again)."""
    with _account_change(_ready()) as conn:
        accounts.set_disabled(conn, "operator", name, False)
    click.echo(json.dumps({"name": name, "disabled": False}))


@main.command("serve")
@click.option("--host", default=None, help="Default: server.host.")
@click.option("--port", default=None, type=int, help="Default: server.port.")
@click.option("--workers", default=None, type=int, help="Default: server.workers.")
def serve(host, port, workers) -> None:
    """Run the service under gunicorn."""
    from .server import run

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _prepare(settings)
    run(settings, host or settings.server.host, port or settings.server.port,
        workers or settings.server.workers)


def _read_source(source: str, headers: dict | None = None) -> object:
    """JSON from a file path, '-' (standard input) or an http(s) URL."""
    try:
        if source == "-":
            return json.load(sys.stdin)
        if source.startswith(("http://", "https://")):
            import requests

            response = requests.get(source, headers=headers or {}, timeout=30)
            response.raise_for_status()
            return response.json()
        with open(source, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read JSON from {source}: {exc}") from None
    except Exception as exc:  # requests errors
        raise click.ClickException(f"cannot fetch {source}: {exc}") from None


@main.command("publish")
@click.argument("source")
@with_appcontext
def publish_command(source: str) -> None:
    """Publish bulletin JSON from FILE, '-' or a list of bulletins; prints what was stored."""
    from marshmallow import ValidationError

    from . import publish
    from .schemas import load_bulletin

    svc = _ready()
    data = _read_source(source)
    documents = data if isinstance(data, list) else [data]
    notices = []
    for index, document in enumerate(documents):
        try:
            notices.append(load_bulletin(document, svc.settings.compartments))
        except ValidationError as exc:
            raise click.ClickException(f"bulletin {index}: {json.dumps(exc.messages)}") from None
    authority = publish.Authority(_signer(svc), svc.ids)
    for notice in notices:
        result = publish.publish_notice(svc.engine, authority, svc.settings.tiers, notice)
        click.echo(json.dumps({"id": result.report_id, "version": result.version,
                               "objects": len(result.object_ids), "stored": result.stored,
                               "unchanged": result.unchanged}))


@main.command("import")
@click.argument("inputs", nargs=-1, required=True, metavar="FILE|DIR|-...")
@click.option("--collection", required=True, help="The collection to import into (id or "
              "alias; a writable, `submitted` one).")
@click.option("--as", "principal", required=True, help="The principal the objects come "
              "from: they are its own (ownership, sectors, default audience) exactly as if "
              "it had POSTed them, and it must be allowed to write the collection.")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Objects per transaction (and per checkpoint).")
@click.option("--max-document-mib", default=256, show_default=True,
              type=click.IntRange(1, 65536), help="Largest bundle or envelope read whole "
              "(JSON lines are read a line at a time, of any size).")
@click.option("--restart", is_flag=True, help="Ignore checkpoints: read every file from "
              "its start (objects stored already come back as duplicates).")
@with_appcontext
def import_command(inputs, collection, principal, batch, max_document_mib,
                   restart) -> None:
    """Import STIX bundles, TAXII envelopes or JSON lines (one object per line) from
    FILEs, DIRs (every *.json, *.jsonl and *.ndjson under them, in sorted order) or '-'
    (standard input) through the rules of a TAXII POST.

    Progress and each rejected object go to stderr, a JSON summary to stdout. Each batch
    commits with a checkpoint: run the same command again after an interruption and each
    file resumes after its last committed batch (standard input is read again whole;
    what was stored comes back as duplicates). Exits 1 when any object was rejected or
    any input could not be read, 130 when interrupted.
    """
    from .importing import run, sources

    svc = _ready()
    if inputs.count(sources.STDIN) > 1:
        raise click.ClickException("'-' (standard input) may be given once")
    try:
        target = run.target(svc, collection, principal, batch=batch, restart=restart,
                            max_bytes=max_document_mib * 2**20)
    except run.Refused as exc:
        raise click.ClickException(str(exc)) from None
    say = lambda line: click.echo(line, err=True)  # noqa: E731
    started, reports = time.monotonic(), []
    try:
        for source in sources.expand(inputs):
            reports.append(run.import_source(target, source, say))
            if reports[-1].error:
                say(f"not imported {source}: {reports[-1].error}")
    except KeyboardInterrupt:
        say("interrupted: every batch committed so far is kept; run the same command again "
            "to resume")
        sys.exit(130)
    click.echo(json.dumps(_import_summary(target, reports, time.monotonic() - started)))
    sys.exit(1 if any(r.failed for r in reports) else 0)


def _import_summary(target, reports: list, seconds: float) -> dict:
    read = sum(r.run.read for r in reports)
    return {"collection": target.collection.alias, "as": target.submitter.name,
            "read": read, "stored": sum(r.run.stored for r in reports),
            "duplicates": sum(r.run.duplicates for r in reports),
            "rejected": sum(r.run.rejected for r in reports),
            "unreadable": sum(bool(r.error) for r in reports),
            "seconds": round(seconds, 3), "objects_per_s": round(read / max(seconds, 1e-6), 1),
            "inputs": [r.describe() for r in reports]}


@main.group()
def keys() -> None:
    """The service's signing keys."""


def _keyring():
    from .signing.keys import KeyRing

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return KeyRing(settings.data_dir, settings.key_passphrase)


@keys.command("list")
def keys_list() -> None:
    """Every key, active or retired, as JSON lines."""
    for entry in _keyring().listing():
        click.echo(json.dumps(entry))


@keys.command("rotate")
def keys_rotate() -> None:
    """Make a new key sign from now on, in running services within seconds (other hosts
    need a copy of the key); old keys stay in the JWKS."""
    from .signing.keys import KeyringError

    ring = _keyring()
    old = ring.active_kid()
    try:
        new = ring.rotate()
    except KeyringError as exc:
        raise click.ClickException(f"no key was rotated: {exc}") from None
    _announce_active_kid(new)
    click.echo(json.dumps({"retired": old, "active": new}))


def _announce_active_kid(kid: str) -> None:
    """Record the active kid in the database: running workers and hosts sign with it
    within seconds (app.Services.signer)."""
    from .store.engine import connect_engine
    from .store.schema import installation

    engine = connect_engine(load_settings().database_url)
    try:
        if migrate.current_version(engine) < len(migrate.MIGRATIONS):
            return  # no service has run on this database yet: the key file is enough
        with write(engine) as conn:
            done = conn.execute(installation.update().where(
                installation.c.name == "active_kid").values(value=kid)).rowcount
            if not done:
                conn.execute(installation.insert().values(name="active_kid", value=kid))
    finally:
        engine.dispose()


@keys.command("export-jwks")
def keys_export() -> None:
    """Print the public JWKS (what /.well-known/jwks.json serves)."""
    click.echo(json.dumps(_keyring().jwks(), indent=2))


@main.command("verify")
@click.argument("source")
@click.option("--jwks", "jwks_source", help="JWKS file or URL (default: the server's "
              "/.well-known/jwks.json when SOURCE is a URL).")
@click.option("--api-key", envvar="INFOSHARE_API_KEY", help="Bearer key for a TAXII URL.")
@click.option("--require-signatures", is_flag=True,
              help="Fail on third parties' unsigned objects too.")
@click.option("--peers", "peers_source", help="The hub's peer keys document (default: the "
              "one its JWKS links, /.well-known/infoshare-peers.json), to verify relayed "
              "objects with their originating hub's keys.")
def verify_command(source: str, jwks_source: str | None, api_key: str | None,
                   require_signatures: bool, peers_source: str | None) -> None:
    """Check every object of a STIX bundle, a TAXII envelope or a whole TAXII collection
    (every page) against a JWKS.

    Prints a line per object and a summary; exits 1 when an object carrying the service's
    signature fails, or an object the service made is unsigned (with --require-signatures,
    also when a third party's object is unsigned). Extension definitions and the OASIS TLP
    markings are served unsigned by design and reported as standard definitions.
    """
    from urllib.parse import urlsplit

    from .signing import jwk
    from .signing.objects import verify_all
    from .stix.definitions import is_unsigned_definition

    headers = {"Accept": "application/taxii+json;version=2.1"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    objects = _all_objects(source, headers)
    if jwks_source is None:
        if not source.startswith(("http://", "https://")):
            raise click.ClickException("--jwks is needed when SOURCE is a file")
        parts = urlsplit(source)
        jwks_source = f"{parts.scheme}://{parts.netloc}/.well-known/jwks.json"
    document = _read_source(jwks_source)
    keyset = jwk.from_jwks(document)
    relayed = _peer_keys(document, jwks_source, peers_source)
    verdicts = verify_all(objects, {**{k: key for k, (key, _) in relayed.items()}, **keyset},
                          is_unsigned_definition)
    for verdict in verdicts:
        detail = f"kid={verdict.kid}" if verdict.kid else verdict.message
        if verdict.kid in relayed and verdict.kid not in keyset:
            # The name is the served hub's word: it pinned this key as that hub's.
            detail += f" relayed from {relayed[verdict.kid][1]} (a key this hub pinned for it)"
        click.echo(f"{'OK  ' if verdict.ok else 'FAIL'} {verdict.status:<20} {verdict.id} "
                   f"{detail}")
    counts = {status: sum(1 for v in verdicts if v.status == status) for status in (
        "verified", "standard", "unsigned-third-party", "unsigned-service")}
    from_peers = sum(1 for v in verdicts if v.ok and v.kid in relayed and v.kid not in keyset)
    failed = sum(1 for v in verdicts if not v.ok)
    if require_signatures:
        failed += counts["unsigned-third-party"]
    click.echo(f"{counts['verified']} verified ({from_peers} relayed from other hubs), "
               f"{failed} failed, {counts['unsigned-third-party']} unsigned third-party, "
               f"{counts['standard']} standard definitions", err=True)
    sys.exit(1 if failed else 0)


def _peer_keys(jwks: object, jwks_source: str, peers_source: str | None) -> dict:
    """kid -> (public key, hub name) of the keys a hub pinned for its upstreams."""
    from urllib.parse import urljoin

    from .signing import jwk

    if peers_source is None:
        about = jwks.get("infoshare") if isinstance(jwks, dict) else None
        link = about.get("peers") if isinstance(about, dict) else None
        if not isinstance(link, str) or not jwks_source.startswith(("http://", "https://")):
            return {}
        peers_source = urljoin(jwks_source, link)
    document = _read_source(peers_source)
    found = {}
    for peer in document.get("peers", []) if isinstance(document, dict) else []:
        if isinstance(peer, dict):
            for kid, key in jwk.from_jwks(peer).items():
                found.setdefault(kid, (key, str(peer.get("name", "another hub"))))
    return found


def _all_objects(source: str, headers: dict) -> list:
    """The objects of a file (bundle or envelope), or of every page of a TAXII URL."""
    from urllib.parse import quote

    document = _read_source(source, headers)
    objects = document.get("objects") if isinstance(document, dict) else None
    if not isinstance(objects, list):
        raise click.ClickException("SOURCE is neither a STIX bundle nor a TAXII envelope")
    objects = list(objects)
    pages = 1
    while (source.startswith(("http://", "https://")) and isinstance(document, dict)
           and document.get("more") and document.get("next")):
        if pages >= 100_000:
            raise click.ClickException("the collection did not end after 100,000 pages")
        separator = "&" if "?" in source else "?"
        document = _read_source(f"{source}{separator}next={quote(str(document['next']))}",
                                headers)
        objects += list(document.get("objects") or []) if isinstance(document, dict) else []
        pages += 1
    return _distinct(objects)


def _distinct(objects: list) -> list:
    """Each object once: every page carries the definitions its own objects reference, so
    a walk over many pages meets the same definition many times. Copies that differ in
    any byte of their JSON are all kept, and all checked."""
    seen: set[str] = set()
    distinct = []
    for obj in objects:
        key = json.dumps(obj, sort_keys=True)
        if key not in seen:
            seen.add(key)
            distinct.append(obj)
    return distinct


@main.group()
def subscriptions() -> None:
    """Principals' subscriptions (also at /api/v1/subscriptions)."""


@subscriptions.command("add")
@click.argument("name")
@click.option("--principal", "owner", required=True, help="The principal it belongs to.")
@click.option("--sector", "sectors_", multiple=True)
@click.option("--type", "types", multiple=True, help="STIX object type.")
@click.option("--kind", "kinds", multiple=True)
@click.option("--min-severity")
@click.option("--label", "labels", multiple=True)
@click.option("--max-tlp")
@click.option("--webhook-url")
@click.option("--webhook-secret")
@with_appcontext
def subscriptions_add(name, owner, sectors_, types, kinds, min_severity, labels, max_tlp,
                      webhook_url, webhook_secret) -> None:
    """Add a subscription for a principal; prints it as JSON."""
    from marshmallow import ValidationError

    from distribution import webhooks

    from .schemas import SubscriptionSchema, dump_subscription, subscription_columns
    from .store import subscriptions as store

    svc = _ready()
    document = {"name": name, "sectors": list(sectors_), "types": list(types),
                "kinds": list(kinds), "labels": list(labels), "min_severity": min_severity,
                "max_tlp": max_tlp, "webhook_url": webhook_url, "webhook_secret": webhook_secret}
    try:
        loaded = SubscriptionSchema().load(document)
        if webhook_url:
            webhooks.check(webhook_url, outbound.policy(svc.settings),
                           svc.settings.webhooks.allow_http_hosts)
    except (ValidationError, webhooks.UnsafeWebhook) as exc:
        raise click.ClickException(str(getattr(exc, "messages", exc))) from None
    with write(svc.engine) as conn:
        row = principal_store.by_name(conn, owner)
        if row is None:
            raise click.ClickException(f"no principal named {owner!r}")
        created = store.create(conn, row.pk, subscription_columns(loaded))
        audit.record(conn, "operator", "subscribe", created.id, name=name, principal=owner)
    click.echo(json.dumps(dump_subscription(created)))


@subscriptions.command("list")
@with_appcontext
def subscriptions_list() -> None:
    """Every subscription as JSON lines."""
    from .schemas import dump_subscription
    from .store import subscriptions as store

    with read(_ready().engine) as conn:
        names = {r.pk: r.name for r in principal_store.all_rows(conn)}
        for row in store.all_rows(conn):
            click.echo(json.dumps({**dump_subscription(row),
                                   "principal": names.get(row.principal_pk)}))


@subscriptions.command("remove")
@click.argument("ident")
@with_appcontext
def subscriptions_remove(ident) -> None:
    """Remove a subscription, its routing rows and its queued deliveries."""
    from .store import subscriptions as store

    with write(_ready().engine) as conn:
        row = store.by_id(conn, ident)
        if row is None:
            raise click.ClickException(f"no subscription {ident!r}")
        store.delete(conn, row.pk)
        audit.record(conn, "operator", "unsubscribe", ident, name=row.name)
    click.echo(json.dumps({"removed": ident}))


@main.group()
def deliveries() -> None:
    """Webhook deliveries: inspect and replay."""


@deliveries.command("list")
@click.option("--state", type=click.Choice(["pending", "delivered", "dead", "dropped"]))
@click.option("--limit", default=50, show_default=True)
@with_appcontext
def deliveries_list(state, limit) -> None:
    """Recent deliveries as JSON lines, newest first."""
    import sqlalchemy as sa

    from .api.subscriptions import describe_delivery
    from .store.schema import deliveries as table

    query = sa.select(table).order_by(table.c.created_us.desc()).limit(limit)
    if state:
        query = query.where(table.c.state == state)
    with read(_ready().engine) as conn:
        for row in conn.execute(query):
            click.echo(json.dumps({**describe_delivery(row),
                                   "subscription_pk": row.subscription_pk}))


@deliveries.command("retry")
@click.argument("ids", nargs=-1)
@with_appcontext
def deliveries_retry(ids) -> None:
    """Queue the given deliveries (default: every dead one) again from the first attempt."""
    from distribution.delivery import retry

    count = retry(_ready().engine, list(ids) or None)
    click.echo(json.dumps({"queued": count}))


@main.command("ingest-queue")
@click.option("--nice", "niceness", default=0, type=click.IntRange(0, 19),
              help="Lower this process's CPU priority by this much first.")
@with_appcontext
def ingest_queue(niceness) -> None:
    """Store the TAXII envelopes waiting in the background (status pending), then exit.

    The service's workers start this by themselves when an envelope waits; at most
    taxii.ingest_workers run at once across all hosts (one more exits at once).
    """
    from . import submissions

    svc = _ready()
    if niceness:
        os.nice(niceness)
    done = submissions.run_queued(svc)
    click.echo(json.dumps({"stored": done, "waiting": submissions.waiting(svc)}))


@main.command("audit")
@click.option("--limit", default=100, show_default=True)
@click.option("--action")
@with_appcontext
def audit_command(limit, action) -> None:
    """The audit trail as JSON lines, newest first."""
    with read(_ready().engine) as conn:
        for row in audit.recent(conn, limit, action):
            click.echo(json.dumps(audit.describe(row)))


@main.group()
def feeds() -> None:
    """Configured feeds ([[feeds]] in the config file)."""


@feeds.command("list")
@with_appcontext
def feeds_list() -> None:
    """The configured feeds as JSON lines."""
    for spec in _ready().settings.feeds:
        click.echo(json.dumps({"name": spec.name, "kind": spec.kind, "url": spec.url,
                               "schedule": spec.cron or spec.interval_seconds,
                               "sectors": list(spec.sectors) or "all", "tlp": spec.tlp,
                               "enabled": spec.enabled}))


@feeds.command("run")
@click.argument("name")
@with_appcontext
def feeds_run(name) -> None:
    """Run one feed now, in this process; prints its counts as JSON."""
    from feeds.runner import FeedBusy, run_feed, status

    svc = _ready()
    spec = next((f for f in svc.settings.feeds if f.name == name), None)
    if spec is None:
        raise click.ClickException(f"no feed named {name!r}; see `infoshare feeds list`")
    _signer(svc)
    try:
        counts = run_feed(svc, spec)
    except FeedBusy as exc:
        raise click.ClickException(str(exc)) from None
    state = next(s for s in status(svc) if s["name"] == name)
    click.echo(json.dumps({"feed": name, **counts, "error": state["last_error"]}))


@feeds.command("pin")
@click.argument("name")
@with_appcontext
def feeds_pin(name) -> None:
    """Fetch a relaying feed's upstream keys (its `jwks`) again and pin them; prints the
    kids added and retired. Runs never refresh pins by themselves."""
    from feeds.base import FeedError
    from feeds.relaying import pin
    from feeds.runner import fetcher_for

    from . import outbound

    svc = _ready()
    spec = next((f for f in svc.settings.feeds if f.name == name), None)
    if spec is None:
        raise click.ClickException(f"no feed named {name!r}; see `infoshare feeds list`")
    fetcher = fetcher_for(spec, outbound.policy(svc.settings))
    try:
        added, retired = pin(svc, spec, fetcher.get)
    except FeedError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"feed": name, "added": added, "retired": retired}))


@feeds.command("clear")
@click.argument("name")
@with_appcontext
def feeds_clear(name) -> None:
    """Forget a feed's listed rejections once you have seen to them; prints how many."""
    from feeds.runner import clear

    svc = _ready()
    if not any(f.name == name for f in svc.settings.feeds):
        raise click.ClickException(f"no feed named {name!r}; see `infoshare feeds list`")
    cleared = clear(svc, name)
    with write(svc.engine) as conn:
        audit.record(conn, "operator", "feed-clear", name, cleared=cleared)
    click.echo(json.dumps({"feed": name, "cleared": cleared}))


@feeds.command("status")
@with_appcontext
def feeds_status() -> None:
    """Each feed's last run, last success, counts and errors, as JSON lines."""
    from feeds.runner import status

    for entry in status(_ready()):
        click.echo(json.dumps(entry))
