"""Publishes waiting for the write lock share one transaction, each still whole or absent."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from infoshare.group_commit import Group
from infoshare.store import audit, migrate
from infoshare.store import objects as object_store
from infoshare.store.engine import connect_engine, read
from infoshare.store.schema import audit as audit_table


@pytest.fixture
def engine(database_url):
    engine = connect_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _targets(engine) -> list[str]:
    with read(engine) as conn:
        return sorted(conn.execute(sa.select(audit_table.c.target)).scalars())


def test_waiting_pieces_share_one_transaction_and_a_failure_costs_only_itself(engine):
    group = Group(engine, object_store.lock)
    leader_in, transactions, results = threading.Event(), [], {}

    def work(name: str, fail: bool = False):
        def run(conn):
            transactions.append((name, id(conn.get_transaction())))
            audit.record(conn, "test", "publish", name)
            if name == "first":
                leader_in.set()
                time.sleep(0.5)  # the others queue meanwhile
            if fail:
                raise ValueError(name)
            return name.upper()
        return run

    def call(name: str, fail: bool = False) -> None:
        try:
            results[name] = group.run(work(name, fail))
        except ValueError as exc:
            results[name] = exc

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert leader_in.wait(30)
    others = [threading.Thread(target=call, args=(f"p{n}", n == 3)) for n in range(6)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(60)
    assert results["first"] == "FIRST"
    assert isinstance(results["p3"], ValueError)
    assert {results[f"p{n}"] for n in range(6) if n != 3} == {"P0", "P1", "P2", "P4", "P5"}
    assert _targets(engine) == sorted(["first", "p0", "p1", "p2", "p4", "p5"])  # p3 undone
    shared = {tx for name, tx in transactions if name != "first"}
    assert len(shared) == 1  # the six that queued behind the first went in one commit


def test_a_piece_whose_sql_fails_is_undone_alone_and_the_group_goes_on(engine):
    group = Group(engine, object_store.lock)

    def bad_sql(conn):
        conn.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))

    with pytest.raises(sa.exc.SQLAlchemyError):
        group.run(bad_sql)  # the failure is the piece's own: the group goes on
    assert group.run(lambda conn: audit.record(conn, "t", "a", "after") or 1) == 1
    assert _targets(engine) == ["after"]
