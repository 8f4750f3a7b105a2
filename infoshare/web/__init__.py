"""The analyst console under /console: server-rendered pages, a little plain JavaScript.

Each module registers the routes of one page (or one form) on the shared blueprint; they
are imported here only for that side effect.
"""

from . import (  # noqa: F401  (each registers its routes on the blueprint)
    admin,
    admin_audit,
    admin_principal,
    bulletin_list,
    bulletin_page,
    compose,
    feeds,
    login,
    overview,
    subscriptions,
    unknown,
)
from .blueprint import bp  # noqa: F401
from .landing import landing_bp  # noqa: F401
