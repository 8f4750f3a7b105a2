"""Small helpers every console view uses."""

from __future__ import annotations

from flask import current_app, g

from .. import access


def svc():
    """The app's Services (settings, engine, keyring, signer), built once in create_app."""
    return current_app.extensions["infoshare"]


def principal() -> access.Principal:
    """The logged-in principal; views reach here only through login_required."""
    return g.principal


def can_publish(who: access.Principal | None) -> bool:
    """Publishing, updating, revoking and running feeds need one of these roles."""
    return who is not None and who.has_role("publisher", "admin")


def is_admin(who: access.Principal | None) -> bool:
    return who is not None and who.has_role("admin")
