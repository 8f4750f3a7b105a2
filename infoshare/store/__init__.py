"""Storage: SQLAlchemy Core tables and the queries over them.

Nothing here imports the web layer. The same code runs on SQLite (embedded default) and
PostgreSQL; where the two differ (locking, pragmas) the difference lives in engine.py.
"""

from .engine import connect_engine, read, write  # noqa: F401
