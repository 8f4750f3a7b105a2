"""The analyst console under /console: server-rendered pages, a little plain JavaScript."""

from .views import bp  # noqa: F401
