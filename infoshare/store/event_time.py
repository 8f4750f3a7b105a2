"""A notice's event time in SQL: when its source says it happened, in microseconds.

The source's time is the notice's `valid_from` (a feed's CAP effective/onset/sent, a KEV
entry's dateAdded, an RSS item's date, or what a bulletin's author gave); without one,
`issued_us` (the report's `published`: when the source issued it, else the first
publication); for rows from before that column, `created_us`. The console lists, sorts
and filters by this time, so a 2020 advisory imported today is not shown as news.

STIX timestamps are text in the stored document; turning them into microseconds needs
each database's own date function, hence the two compilations below.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from .schema import notices


class stamp_us(FunctionElement):  # noqa: N801  (a SQL function, named like one)
    """Microseconds since the epoch of an RFC 3339 UTC timestamp held as text."""

    type = sa.BigInteger()
    inherit_cache = True
    name = "stamp_us"


@compiles(stamp_us, "sqlite")
def _sqlite(element, compiler, **kw):
    # julianday() keeps milliseconds, which is all the service's STIX times carry.
    text = compiler.process(element.clauses, **kw)
    return f"CAST(ROUND((julianday({text}) - 2440587.5) * 86400000.0) AS INTEGER) * 1000"


@compiles(stamp_us, "postgresql")
def _postgresql(element, compiler, **kw):
    text = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM CAST({text} AS TIMESTAMPTZ)) * 1000000 AS BIGINT)"


def event_us():
    """The notices row's event time as a SQL expression (see the module's docstring)."""
    return sa.func.coalesce(stamp_us(notices.c.document["valid_from"].as_string()),
                            notices.c.issued_us, notices.c.created_us)
