"""create_app(settings): the Flask app factory. It wires everything exactly once."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask, Response, request
from sqlalchemy.engine import Engine
from werkzeug.exceptions import (
    HTTPException,
    RequestEntityTooLarge,
    RequestTimeout,
    ServiceUnavailable,
)

from feeds import peers
from feeds import registry as feed_registry

from . import front
from .api import bp as api_bp
from .api.errors import ApiError
from .api.errors import render as render_api
from .authn import Authenticator, Throttled
from .installation import id_space, load_secret
from .publish import Authority
from .settings import Settings, load_settings
from .signing.keys import KeyRing, Signer
from .stix.ids import IdSpace
from .store.engine import connect_engine
from .taxii import bp as taxii_bp
from .taxii.errors import TaxiiError, render
from .web import bp as console_bp
from .web import landing_bp


@dataclass
class Services:
    """What request handlers need, built once per process."""

    settings: Settings
    engine: Engine
    authenticator: Authenticator
    secret: bytes
    keyring: KeyRing
    ids: IdSpace
    _signer: Signer | None = None
    _checked: float = 0.0

    def signer(self) -> Signer:
        """The active key. `infoshare keys rotate` records the new active kid in the
        database; every worker of every host looks at most every ROTATION_CHECK seconds
        and signs with it from then on (its private key must be in this host's keys)."""
        now = time.monotonic()
        if self._signer is None or now - self._checked > ROTATION_CHECK:
            self._checked = now
            wanted = self._active_kid()
            if self._signer is None or (wanted and wanted != self._signer.kid):
                self._signer = self._load(wanted)
        return self._signer

    def _active_kid(self) -> str | None:
        from .store.engine import read
        from .store.schema import installation

        try:
            with read(self.engine) as conn:
                return conn.execute(sa.select(installation.c.value).where(
                    installation.c.name == "active_kid")).scalar()
        except sa.exc.SQLAlchemyError:  # the database is away: keep signing as before
            return None

    def _load(self, kid: str | None) -> Signer:
        from .signing.keys import KeyringError

        if kid and kid != self.keyring.active_kid():
            try:
                return self.keyring.signer_for(kid)
            except KeyringError as exc:
                log.error("the active key %s is not usable here (%s): copy it into %s",
                          kid, exc, self.keyring.dir)
                if self._signer is not None:
                    return self._signer
        return self.keyring.signer()

    def authority(self) -> Authority:
        """What the service publishes with: its id space and its active key."""
        return Authority(self.signer(), self.ids)


log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    feed_registry.validate(settings)
    app = Flask(__name__)
    # one connection per request thread, and room for the scheduler's jobs
    engine = connect_engine(settings.database_url, pool_size=settings.server.threads + 2)
    secret = load_secret(settings)
    app.config.update(
        SECRET_KEY=secret,
        MAX_CONTENT_LENGTH=settings.taxii.max_content_length,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="infoshare_session",
        # Secure when the public URL is https; plain http is for localhost only.
        SESSION_COOKIE_SECURE=settings.server.base_url.startswith("https://"),
    )
    app.extensions["infoshare"] = Services(
        settings=settings, engine=engine, secret=secret,
        authenticator=Authenticator(engine, settings.tiers, settings.auth.key_cache_seconds,
                                    settings.auth.scrypt_log2_n,
                                    hashes_at_once=max(1, settings.server.threads // 2)),
        keyring=KeyRing(settings.data_dir, settings.key_passphrase),
        ids=id_space(settings),
    )
    app.register_blueprint(taxii_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(landing_bp)
    app.before_request(_body_checked)
    app.add_url_rule("/healthz", "healthz", _healthz)
    app.add_url_rule("/.well-known/jwks.json", "jwks", _jwks)
    app.add_url_rule(peers.PEERS_PATH, "peers", _peers)
    app.register_error_handler(HTTPException, _http_error)
    for unavailable in (sa.exc.OperationalError, sa.exc.InterfaceError):
        app.register_error_handler(unavailable, _database_unavailable)
    app.register_error_handler(Throttled, _throttled)
    return app


def _body_checked() -> None:
    """What the front found while reading the body (front.py): too large, or too slow."""
    found = front.flags(request.environ)
    if found.get(front.TOO_LARGE):
        raise RequestEntityTooLarge()
    if found.get(front.TOO_SLOW):
        raise RequestTimeout()
    if found.get(front.BUSY):
        raise ServiceUnavailable(retry_after=5)


def _healthz() -> tuple[dict, int]:
    """Ready when the database answers and takes a write: a full disk or a read-only file
    system makes every publish fail, so it must not look healthy."""
    from flask import current_app

    from .store.engine import write
    from .store.schema import installation

    try:
        with write(current_app.extensions["infoshare"].engine) as conn:
            done = conn.execute(installation.update().where(installation.c.name == "healthz")
                                .values(value=str(time.time()))).rowcount
            if not done:
                conn.execute(installation.insert().values(name="healthz",
                                                          value=str(time.time())))
    except sa.exc.SQLAlchemyError as exc:
        return {"status": "unavailable", "database": type(exc).__name__}, 503
    return {"status": "ok"}, 200


RETRY_AFTER = "5"
ROTATION_CHECK = 5.0  # seconds between looks at the active kid in the database


def _throttled(exc: Throttled):
    """Too many failed authentications (authn.Guard): 429 with Retry-After, in the
    format of the path (the console's log-in page answers it itself)."""
    headers = {"Retry-After": str(exc.retry_after)}
    message = "too many failed authentications; try again later"
    if request.path.startswith("/api/"):
        return render_api(ApiError(429, "too many requests", message, headers=headers))
    return render(TaxiiError(429, "Too many requests", message, headers=headers))


def _database_unavailable(exc: sa.exc.SQLAlchemyError):
    """The database is unreachable or refuses writes (stopped, full, read-only): 503 with
    Retry-After in the path's own format, one log line rather than a traceback."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                str(exc).splitlines()[0][:300])
    message = "the database is unavailable; try again shortly"
    if request.path.startswith("/api/"):
        return render_api(ApiError(503, "service unavailable", message,
                                   headers={"Retry-After": RETRY_AFTER}))
    if request.path.startswith("/taxii2/"):
        return render(TaxiiError(503, "Service unavailable", message,
                                 headers={"Retry-After": RETRY_AFTER}))
    return Response(f"503 Service Unavailable: {message}\n", status=503,
                    headers={"Retry-After": RETRY_AFTER}, content_type="text/plain")


def _jwks() -> Response:
    """The service's public keys, and (a JWK Set may carry other members, RFC 7517 5) the
    hub they belong to and where the keys it pinned for its upstreams are."""
    from flask import current_app, jsonify

    svc = current_app.extensions["infoshare"]
    document = svc.keyring.jwks() | {"infoshare": {
        "identity": svc.ids.identity_id(), "name": svc.settings.taxii.title,
        "peers": peers.PEERS_PATH}}
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _peers() -> Response:
    """The upstream hubs' pinned keys (feeds/peers.py), so that a consumer of this hub
    verifies relayed objects with what this hub serves and nothing else."""
    from flask import current_app, jsonify

    settings = current_app.extensions["infoshare"].settings
    relaying = [spec.name for spec in settings.feeds if spec.options.get("jwks")]
    response = jsonify(peers.served(peers.all_pins(settings.data_dir, relaying)))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _http_error(exc: HTTPException) -> Response | HTTPException:
    """Errors raised outside a TAXII view (404, 405, 413) still answer in TAXII JSON."""
    if request.path.startswith("/api/"):
        return render_api(ApiError(exc.code or 500, exc.name, exc.description or ""))
    if request.path.startswith("/taxii2/"):
        error = TaxiiError(exc.code or 500, exc.name, exc.description or "")
        response = render(error)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
    return exc
