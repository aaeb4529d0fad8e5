"""The parked connection: after a statement ends cleanly, its pooled connection stays
checked out for the next statement on the same event loop (no pool round per statement).

What must hold: consecutive statements of a lone caller share one backend; the parked
connection counts as idle; a statement cancelled mid-flight is never parked (the next caller
does not meet it mid-statement); a parked connection the server terminated is replaced and
a write through it lands exactly once; a transaction may take the parked connection and
leaves it clean; concurrent callers each get their own connection; close() ends it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pg_support import run_sql

from dataflow import DataFlow
from dataflow_postgres.adapter import PostgresAdapter


async def _pid(conn: Any) -> int:
    return int(await conn.fetchval("SELECT pg_backend_pid()"))


def _adapter(db: DataFlow) -> PostgresAdapter:
    adapter = db.adapter
    assert isinstance(adapter, PostgresAdapter)
    return adapter


async def test_a_lone_caller_keeps_one_backend_and_it_counts_as_idle(make_db: Any) -> None:
    db: DataFlow = make_db(pool_size=4)

    @db.model
    class ParkRow:
        name: str

    await db.initialize()
    adapter = _adapter(db)
    first = await adapter.run(_pid)
    rec = await db.express.create("ParkRow", {"name": "a"})
    assert await db.express.read("ParkRow", rec["id"]) == rec
    assert await adapter.run(_pid) == first
    stats = db.pool_stats()
    assert stats["active"] == 0 and stats["idle"] >= 1


async def test_a_cancelled_statement_is_not_handed_to_the_next_caller(
        make_db: Any, pg_url: str) -> None:
    app = f"df_park_{uuid.uuid4().hex[:8]}"
    db: DataFlow = make_db(pool_size=1, application_name=app)
    adapter = _adapter(db)
    parked = await adapter.run(_pid)  # the only connection, parked

    async def sleep(conn: Any) -> None:
        await conn.fetchval("SELECT pg_sleep(600)")

    task = asyncio.ensure_future(adapter.run(sleep))
    for _ in range(10_000):  # until the server runs it
        rows = await run_sql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                                  "= $1 AND query LIKE 'SELECT pg_sleep%'", app)
        if rows[0][0]:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the statement never reached the server")
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    # the same (only) connection serves the next statement, with the sleep cancelled
    assert await adapter.run(_pid) == parked
    assert await adapter.run(lambda conn: conn.fetchval("SELECT 41 + 1")) == 42
    assert db.pool_stats()["active"] == 0


async def test_a_terminated_parked_connection_is_replaced_and_writes_land_once(
        make_db: Any, pg_url: str) -> None:
    app = f"df_parkkill_{uuid.uuid4().hex[:8]}"
    db: DataFlow = make_db(pool_size=2, application_name=app)

    @db.model
    class ParkKill:
        name: str

    rec = await db.express.create("ParkKill", {"name": "before"})
    killed = await run_sql(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = $1", app)
    assert killed and all(r[0] for r in killed)
    assert await db.express.read("ParkKill", rec["id"]) == rec
    await run_sql(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = $1", app)
    await db.express.create("ParkKill", {"name": "after"})
    assert sorted(r["name"] for r in await db.express.list("ParkKill")) == ["after", "before"]
    assert db.pool_stats()["active"] == 0
    live = await run_sql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                      app)
    assert live[0][0] <= 2


async def test_a_transaction_takes_the_parked_connection_and_leaves_it_clean(
        make_db: Any) -> None:
    db: DataFlow = make_db(pool_size=1)

    @db.model
    class ParkTx:
        name: str

    await db.initialize()
    adapter = _adapter(db)
    parked = await adapter.run(_pid)

    class Boom(Exception):
        pass

    try:
        async with db.transaction():
            await db.express.create("ParkTx", {"name": "rolled back"})
            assert await db._run(_pid) == parked
            raise Boom
    except Boom:
        pass
    # not left inside the rolled-back transaction (whose insert was given a transaction id)
    assert await adapter.run(lambda conn: conn.fetchval("SELECT txid_current_if_assigned()")) is None
    assert await db.express.count("ParkTx") == 0
    assert db.pool_stats()["active"] == 0


async def test_concurrent_callers_get_their_own_connections(make_db: Any) -> None:
    db: DataFlow = make_db(pool_size=3)
    adapter = _adapter(db)
    gate = asyncio.Event()
    entered = 0

    async def hold(conn: Any) -> int:
        nonlocal entered
        entered += 1
        if entered == 3:
            gate.set()
        await gate.wait()  # all three hold a connection at once
        return await _pid(conn)

    pids = await asyncio.gather(*(adapter.run(hold) for _ in range(3)))
    assert len(set(pids)) == 3
    stats = db.pool_stats()
    assert stats["active"] == 0 and stats["idle"] == 3


async def test_callers_waiting_in_the_pool_get_the_connection_instead_of_the_slot(
        make_db: Any) -> None:
    """One connection, many callers at once: a finished statement hands its connection to a
    caller waiting in the pool rather than parking it (parking would leave that caller
    waiting for a release that never comes)."""
    db: DataFlow = make_db(pool_size=1)
    adapter = _adapter(db)
    pids = await asyncio.gather(*(adapter.run(_pid) for _ in range(6)))
    assert len(set(pids)) == 1
    assert db.pool_stats()["active"] == 0


async def test_close_ends_the_parked_session(pg_url: str) -> None:
    app = f"df_parkclose_{uuid.uuid4().hex[:8]}"
    db = DataFlow(pg_url, application_name=app, pool_size=2)
    await _adapter(db).run(_pid)
    await db.close()
    rows = await run_sql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                      app)
    assert rows[0][0] == 0


async def _gone(pg_url: str, pid: int) -> bool:
    """Has the server ended backend ``pid`` (its client closed it)? Waits for the session to
    go, a bounded number of polls."""
    for _ in range(500):
        rows = await run_sql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
        if not rows[0][0]:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_connection_taken_before_a_lost_connection_expired_the_pool_is_not_parked(
        make_db: Any, pg_url: str) -> None:
    """A statement is in flight on one connection while the server terminates another
    caller's (inside a transaction: DF-903, and the pool's connections are expired, since the
    server likely dropped them all). The in-flight statement then ends cleanly, but its
    connection is from before the expiry: it is closed, not parked for the next statement."""
    from dataflow.errors import ConnectionLostError

    app = f"df_parkgen_{uuid.uuid4().hex[:8]}"
    db: DataFlow = make_db(pool_size=3, application_name=app)
    adapter = _adapter(db)
    holding, gate = asyncio.Event(), asyncio.Event()

    async def hold(conn: Any) -> int:
        pid = await _pid(conn)
        holding.set()
        await gate.wait()  # in flight while the other connection is lost
        return pid

    older = asyncio.ensure_future(adapter.run(hold))
    await holding.wait()
    try:
        with pytest.raises(ConnectionLostError):
            async with db.transaction():
                rows = await db._run(adapter.fetch, "SELECT pg_backend_pid()", ())
                victim = int(rows[0][0])
                # the timeout makes the server wait until the backend has ended
                ended = await run_sql(pg_url, "SELECT pg_terminate_backend($1, 5000)", victim)
                assert ended[0][0] is True
                await db._run(adapter.fetch, "SELECT 1", ())
    finally:
        gate.set()
    held = await older
    assert await adapter.run(_pid) != held  # a fresh connection, not the one from before
    assert await _gone(pg_url, held)
    assert db.pool_stats()["active"] == 0


async def test_the_connection_that_expired_the_pool_is_not_parked(
        make_db: Any, pg_url: str) -> None:
    """CREATE EXTENSION expires the pool (connections opened before it lack the extension's
    type codecs): the connection that ran it is from the old generation and is closed after
    its statement, not parked."""
    db: DataFlow = make_db(pool_size=2)
    adapter = _adapter(db)
    before = await adapter.run(_pid)  # parked
    await adapter.run(adapter.apply_ddl, ["CREATE EXTENSION IF NOT EXISTS plpgsql"])
    assert await adapter.run(_pid) != before
    assert await _gone(pg_url, before)
