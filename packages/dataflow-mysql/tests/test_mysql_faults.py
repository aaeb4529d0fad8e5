"""Connection faults under load: the server kills every connection of the pool
(``KILL <id>``) again and again while 400 writes and 120 transactions run.

What must hold: the workload completes (the pool drops dead connections and opens new
ones; a call that reports DF-903 is retried by the workload, idempotently), every
acknowledged write is in the table, no transaction is applied twice or half, and no
connection is leaked (``pool_stats()`` back to idle, the server's count of our
connections equal to the pool's).

No timings: kills are triggered by the number of acknowledged writes, not by a clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomysql
import pytest

from dataflow import DataFlow, field
from dataflow.errors import ConnectionLostError
from dataflow.testkit.faults import (
    Killer,
    check_acknowledged_writes,
    eventually_empty,
    exactly_once_increments,
    held_session_ids,
)
from dataflow_mysql.adapter import MySQLAdapter

POOL = 4
WRITES = 400
TRANSACTIONS = 120
#: after how many acknowledged operations each round of kills happens
KILL_AT = (40, 150, 260)
#: InnoDB's default, which DataFlow keeps
ISOLATION = "REPEATABLE-READ"


def _pool_threads(db: DataFlow) -> set[int]:
    """Server thread ids of every connection the adapter's pools hold (idle or in use)."""
    adapter = db.adapter
    assert isinstance(adapter, MySQLAdapter)
    ids = set()
    for pool in adapter._pools.values():
        for conn in [*pool._free, *pool._used]:
            if not conn.closed:
                ids.add(int(conn.thread_id()))
    return ids


async def _server_threads(raw: aiomysql.Connection, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    async with raw.cursor() as cur:
        await cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN "
                          f"({', '.join(str(int(i)) for i in ids)})")
        return {int(r[0]) for r in await cur.fetchall()}


async def _hold_all(db: DataFlow) -> set[int]:
    """Hold every connection of the pool at once; their server thread ids."""
    return await held_session_ids(db, POOL, "SELECT CONNECTION_ID()")


def _killer(db: DataFlow, raw: aiomysql.Connection, marks: list[int]) -> Killer:
    """Kills every connection of the pool (``KILL <id>``); each kill records the ids."""
    lock = asyncio.Lock()

    async def kill() -> set[int]:
        ids = _pool_threads(db)
        async with lock, raw.cursor() as cur:
            for i in ids:
                await cur.execute(f"KILL {int(i)}")
        return ids

    return Killer(kill, marks)


async def test_writes_survive_repeated_kills_of_every_connection(
        make_db: Any, raw: aiomysql.Connection) -> None:
    db: DataFlow = make_db(pool_size=POOL)

    @db.model
    class MyFaultRow:
        name: str = field(unique=True, max_length=32)
        n: int

    await db.initialize()
    killer = _killer(db, raw, list(KILL_AT))
    acked: dict[str, Any] = {}
    retried: list[int] = []

    async def write(k: int) -> None:
        name = f"w{k}"
        while True:
            try:
                rec = await db.express.upsert("MyFaultRow", {"name": name, "n": k},
                                              conflict_on="name")
                break
            except ConnectionLostError:
                retried.append(k)  # outcome unknown (lost after sending): upsert is idempotent
        acked[name] = rec["id"]
        killer.ack()

    await asyncio.gather(*(write(k) for k in range(WRITES)))
    await killer.wait()
    killed = set().union(*killer.killed)
    print(f"killed {[len(k) for k in killer.killed]} connections; {len(retried)} calls DF-903")
    assert len(killer.killed) == len(KILL_AT) and all(killer.killed)
    await check_acknowledged_writes(db, "MyFaultRow", acked, WRITES)
    # no leak: the killed sessions are gone, all connections are back, and the server
    # holds exactly the pool's
    assert await eventually_empty(lambda: _server_threads(raw, killed)) == set()
    stats = db.pool_stats()
    assert stats["active"] == 0 and stats["idle"] <= POOL
    held = await _hold_all(db)
    assert len(held) == POOL and not held & killed
    assert _pool_threads(db) == held and await _server_threads(raw, held) == held
    assert db.pool_stats()["active"] == 0 and db.pool_stats()["idle"] == POOL
    await db.drop_tables()
    await db.close()
    assert await eventually_empty(lambda: _server_threads(raw, held)) == set()


async def test_transactions_survive_kills_exactly_once(make_db: Any, raw: aiomysql.Connection) -> None:
    db: DataFlow = make_db(pool_size=POOL)

    @db.model
    class MyFaultCounter:
        n: int = 0

    @db.model
    class MyFaultOp:
        op: int = field(unique=True)

    counter = await db.express.create("MyFaultCounter", {})
    killer = _killer(db, raw, [m * TRANSACTIONS // WRITES for m in KILL_AT])
    retried = await exactly_once_increments(db, "MyFaultCounter", "MyFaultOp", counter["id"],
                                            TRANSACTIONS, killer)
    assert all(killer.killed)
    print(f"killed {[len(k) for k in killer.killed]} connections; {retried} blocks DF-903")
    final = await db.express.read("MyFaultCounter", counter["id"])
    assert final is not None and final["n"] == TRANSACTIONS  # none lost, none twice
    assert await db.express.count("MyFaultOp") == TRANSACTIONS
    assert db.pool_stats()["active"] == 0
    held = await _hold_all(db)
    assert await _server_threads(raw, held) == held and len(held) == POOL


async def test_isolation_is_the_server_default_repeatable_read(make_db: Any) -> None:
    """DataFlow sets no isolation level: InnoDB's REPEATABLE READ; a locking read
    (``read(..., for_update=True)``) sees the latest committed row, not the snapshot."""
    db: DataFlow = make_db(pool_size=1)

    @db.model
    class MyIso:
        n: int = 0

    await db.initialize()
    adapter = db.adapter
    assert isinstance(adapter, MySQLAdapter)

    async def level(conn: Any) -> str:
        # MariaDB < 11.1 names it tx_isolation; MySQL 8 only transaction_isolation
        rows = await adapter.fetch(conn, "SHOW SESSION VARIABLES WHERE Variable_name IN "
                                         "('tx_isolation', 'transaction_isolation')", ())
        return str(rows[0][1])

    assert await adapter.run(level) == ISOLATION


@pytest.mark.parametrize("for_update", [True, False])
def test_for_update_compiles_to_a_locking_select(for_update: bool) -> None:
    from dataflow.model import build_model_spec
    from dataflow.query.ast import Comparison, Select
    from dataflow_mysql.dialect import MySQLCompiler

    class MyLockShape:
        n: int

    spec = build_model_spec(MyLockShape)
    sql = MySQLCompiler().compile(Select(spec, Comparison("id", "eq", 1), limit=1,
                                         for_update=for_update)).sql
    assert sql.endswith(" LIMIT 1 FOR UPDATE") is for_update
