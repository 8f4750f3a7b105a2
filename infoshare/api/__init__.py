"""The JSON API (/api/v1): bulletins and subscriptions."""

from . import subscriptions  # noqa: F401  (registers its routes on the blueprint)
from .bulletins import bp  # noqa: F401
