"""Shared fixtures: the database backends and a live server per backend."""

from __future__ import annotations

import pytest

from .pg import PostgresServer, Unavailable


@pytest.fixture(scope="session")
def postgres():
    try:
        server = PostgresServer()
    except Unavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A fresh empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def engine(database_url):
    """A fresh store on each backend, at the current schema."""
    from infoshare.store import migrate
    from infoshare.store.engine import connect_engine

    engine = connect_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    """One headless Debian chromium per test module (tests/browser.py)."""
    from .browser import ARGS, ARTIFACTS, CHROMIUM, require_chromium

    sync_api = require_chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()
