"""TAXII 2.1 server side."""

from .views import bp  # noqa: F401
