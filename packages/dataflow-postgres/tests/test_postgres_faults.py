"""Connection faults under load: the server terminates every connection of the pool
(``pg_terminate_backend``) again and again while 400 writes and 120 transactions run.

What must hold: the workload completes (DataFlow reconnects; a call that reports DF-903
is retried by the workload, idempotently), every acknowledged write is in the table, no
transaction is applied twice or half, and no connection is leaked (``pool_stats()`` back
to idle, the server's count of our connections equal to the pool's).

No timings: kills are triggered by the number of acknowledged writes, not by a clock.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pg_support import run_sql

from dataflow import DataFlow, field
from dataflow.errors import ConnectionLostError
from dataflow.testkit.faults import (
    Killer,
    check_acknowledged_writes,
    eventually_empty,
    exactly_once_increments,
    held_session_ids,
)
from dataflow_postgres.adapter import PostgresAdapter

POOL = 4
WRITES = 400
TRANSACTIONS = 120
#: after how many acknowledged operations each round of kills happens
KILL_AT = (40, 150, 260)
#: the server's default, read by the isolation test and in RELIABILITY.md
ISOLATION = "read committed"


async def _server_pids(url: str, app: str) -> set[int]:
    rows = await run_sql(url, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", app)
    return {int(r[0]) for r in rows}


async def _terminate_all(url: str, app: str) -> int:
    rows = await run_sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = $1", app)
    return sum(1 for r in rows if r[0])


async def _pool_pids(db: DataFlow) -> set[int]:
    """Hold every connection of the pool at once; their server pids."""
    return await held_session_ids(db, POOL, "SELECT pg_backend_pid()")


async def test_writes_survive_repeated_termination_of_every_connection(
        make_db: Any, pg_url: str) -> None:
    app = f"df_fault_{uuid.uuid4().hex[:8]}"
    db: DataFlow = make_db(pool_size=POOL, application_name=app)

    @db.model
    class PgFaultRow:
        name: str = field(unique=True)
        n: int

    await db.initialize()
    killer = Killer(lambda: _terminate_all(pg_url, app), KILL_AT)
    acked: dict[str, Any] = {}
    lost = 0

    async def write(k: int) -> None:
        nonlocal lost
        name = f"w{k}"
        try:
            rec = await db.express.create("PgFaultRow", {"name": name, "n": k})
        except ConnectionLostError:
            # outcome unknown (lost after sending): finish it idempotently
            lost += 1
            rec = await db.express.upsert("PgFaultRow", {"name": name, "n": k}, conflict_on="name")
        acked[name] = rec["id"]
        killer.ack()

    await asyncio.gather(*(write(k) for k in range(WRITES)))
    await killer.wait()
    print(f"terminated {killer.killed} backends; {lost} calls DF-903")
    assert len(killer.killed) == len(KILL_AT) and all(n >= 1 for n in killer.killed)
    await check_acknowledged_writes(db, "PgFaultRow", acked, WRITES)
    # no leak: all connections back, and the server holds exactly the pool's
    stats = db.pool_stats()
    assert stats["active"] == 0 and stats["idle"] <= POOL
    pids = await _pool_pids(db)
    assert len(pids) == POOL and await _server_pids(pg_url, app) == pids
    assert db.pool_stats()["active"] == 0 and db.pool_stats()["idle"] == POOL
    await db.drop_tables()
    await db.close()
    assert await eventually_empty(lambda: _server_pids(pg_url, app)) == set()


async def test_transactions_survive_termination_exactly_once(make_db: Any, pg_url: str) -> None:
    app = f"df_faulttx_{uuid.uuid4().hex[:8]}"
    db: DataFlow = make_db(pool_size=POOL, application_name=app)

    @db.model
    class PgFaultCounter:
        n: int = 0

    @db.model
    class PgFaultOp:
        op: int = field(unique=True)

    counter = await db.express.create("PgFaultCounter", {})
    killer = Killer(lambda: _terminate_all(pg_url, app), [m * TRANSACTIONS // WRITES for m in KILL_AT])
    failures = await exactly_once_increments(db, "PgFaultCounter", "PgFaultOp", counter["id"],
                                             TRANSACTIONS, killer)
    print(f"terminated {killer.killed} backends; {failures} blocks DF-903")
    assert all(n >= 1 for n in killer.killed)
    final = await db.express.read("PgFaultCounter", counter["id"])
    assert final is not None and final["n"] == TRANSACTIONS  # none lost, none twice
    assert await db.express.count("PgFaultOp") == TRANSACTIONS
    assert db.pool_stats()["active"] == 0
    pids = await _pool_pids(db)
    assert await _server_pids(pg_url, app) == pids and len(pids) == POOL


async def test_bulk_upsert_whose_backend_is_terminated_mid_way_gives_a_df_error(
        make_db: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The COPY path of bulk_upsert: rows are copied into a temporary table, then the server
    terminates the backend (a real ``pg_terminate_backend``, issued right after the COPY, so
    the kill lands at the same point every run) before the INSERT ... SELECT. The adapter
    used to ask the detached connection ``is_closed()`` while cleaning up, and a bare
    asyncpg ``InterfaceError`` escaped. Now the lost connection is a DF error (or the
    retried call succeeds), every row is written exactly once, and the pool recovers."""
    db: DataFlow = make_db(pool_size=2)

    @db.model
    class KillUpsertRow:
        code: str = field(unique=True)
        n: int = 0

    await db.initialize()
    adapter = db.adapter
    assert isinstance(adapter, PostgresAdapter)
    copy_temp = adapter._copy_temp
    kills: list[int] = []

    async def copy_then_terminate(conn: Any, *args: Any) -> None:
        await copy_temp(conn, *args)
        if len(kills) < want_kills:
            kills.append(conn.get_server_pid())
            await run_sql(pg_url, "SELECT pg_terminate_backend($1)", kills[-1])

    monkeypatch.setattr(adapter, "_copy_temp", copy_then_terminate)
    rows = [{"code": f"c{i}", "n": i} for i in range(2_500)]  # over the COPY threshold
    want_kills = 1  # once: the adapter re-runs the rolled-back transaction on a fresh connection
    result = await db.express.bulk_upsert("KillUpsertRow", rows, conflict_on="code")
    assert (result["inserted"], result["updated"], len(kills)) == (2_500, 0, 1)
    want_kills = 3  # every attempt: the caller gets DF-903, never a driver exception
    with pytest.raises(ConnectionLostError):
        await db.express.bulk_upsert("KillUpsertRow", [{**r, "n": -1} for r in rows],
                                     conflict_on="code")
    assert len(kills) == 3
    assert await db.express.count("KillUpsertRow", {"n": -1}) == 0  # rolled back, not half
    assert await db.express.count("KillUpsertRow") == 2_500
    assert db.pool_stats()["active"] == 0


async def test_isolation_is_the_server_default_read_committed(make_db: Any) -> None:
    """DataFlow sets no isolation level: PostgreSQL's READ COMMITTED, with row locks
    (``read(..., for_update=True)``) for read-modify-write."""
    db: DataFlow = make_db(pool_size=1)

    @db.model
    class PgIso:
        n: int = 0

    await db.initialize()
    adapter = db.adapter
    assert isinstance(adapter, PostgresAdapter)

    async def level(conn: Any) -> str:
        return str(await conn.fetchval("SHOW transaction_isolation"))

    assert await adapter.run(level) == ISOLATION
    async with db.transaction():
        assert await db._run(level) == ISOLATION


@pytest.mark.parametrize("for_update", [True, False])
def test_for_update_compiles_to_a_locking_select(for_update: bool) -> None:
    from dataflow.model import build_model_spec
    from dataflow.query.ast import Comparison, Select
    from dataflow_postgres.dialect import PostgresCompiler

    class PgLockShape:
        n: int

    spec = build_model_spec(PgLockShape)
    sql = PostgresCompiler().compile(Select(spec, Comparison("id", "eq", 1), limit=1,
                                            for_update=for_update)).sql
    assert sql.endswith(" LIMIT 1 FOR UPDATE") is for_update
