"""The `infoshare` command: operators' verbs, built on Flask's CLI.

Commands print JSON where another program may read the answer (principals add) and plain
lines where a person will (init). Errors exit non-zero with a message, never a traceback.
"""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from . import sectors
from .app import create_app
from .passwords import new_password
from .settings import ROLES, ConfigError, load_settings
from .store import migrate
from .store import principals as principal_store
from .store.engine import read, write


def _create_app():
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _svc():
    return current_app.extensions["infoshare"]


def _ready():
    """The services, once the schema is current; otherwise a message saying what to run."""
    svc = _svc()
    if migrate.current_version(svc.engine) < len(migrate.MIGRATIONS):
        raise click.ClickException("the database schema is missing or old: run "
                                   "`infoshare db upgrade` (or `infoshare init`) first")
    return svc


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main() -> None:
    """infoshare: threat and hazard notices as signed STIX 2.1 over TAXII 2.1."""


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Create or migrate the schema (safe to run again)."""
    before, after = migrate.upgrade(_svc().engine)
    click.echo(json.dumps({"schema_version_before": before, "schema_version": after}))


@main.command("init")
@with_appcontext
def init() -> None:
    """Upgrade the schema; on first run create an admin and a demo reader and print them."""
    svc = _svc()
    migrate.upgrade(svc.engine)
    with read(svc.engine) as conn:
        if principal_store.count(conn) > 0:
            click.echo("infoshare: data directory ready (principals exist already).")
            return
    accounts = [
        dict(name="admin", org="infoshare operators", tier=svc.settings.tiers.names()[-1],
             all_sectors=True, roles=("admin", "publisher", "reader"),
             compartments=tuple(svc.settings.compartments)),
        dict(name="demo-reader", org="Demo Water Utility", tier="partner",
             sector_codes=("water", "energy"), roles=("reader",)),
    ]
    click.echo("infoshare: first run. These credentials are shown once; keep them:")
    with write(svc.engine) as conn:
        for account in accounts:
            password = new_password()
            _, key = principal_store.add(conn, svc.settings.tiers, password=password,
                                         log2_n=svc.settings.auth.scrypt_log2_n,
                                         known_compartments=svc.settings.compartments,
                                         **account)
            click.echo(f"  {account['name']:<12} password {password}   api key {key}")


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
    try:
        with write(svc.engine) as conn:
            principal_id, key = principal_store.add(
                conn, svc.settings.tiers, name=name, org=org, tier=tier,
                sector_codes=sector_codes, all_sectors=all_sectors,
                compartments=compartments, roles=roles or ("reader",), password=password,
                log2_n=svc.settings.auth.scrypt_log2_n,
                known_compartments=svc.settings.compartments)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"id": principal_id, "name": name, "api_key": key}))


@principals.command("list")
@with_appcontext
def principals_list() -> None:
    """All principals as JSON lines."""
    with read(_ready().engine) as conn:
        for row in principal_store.all_rows(conn):
            click.echo(json.dumps(principal_store.describe(row)))


@principals.command("disable")
@click.argument("name")
@with_appcontext
def principals_disable(name) -> None:
    """Refuse all further requests from NAME (its keys and password stop working)."""
    with write(_ready().engine) as conn:
        if not principal_store.set_disabled(conn, name):
            raise click.ClickException(f"no principal named {name!r}")
    click.echo(json.dumps({"name": name, "disabled": True}))


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
    run(settings, host or settings.server.host, port or settings.server.port,
        workers or settings.server.workers)
