"""The JSON API (/api/v1): bulletins, and later principals, subscriptions and feeds."""

from .bulletins import bp  # noqa: F401
