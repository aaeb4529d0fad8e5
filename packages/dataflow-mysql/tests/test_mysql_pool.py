"""Pool sizing from the server, pool_stats(), one pool per event loop, and recovery after
the server kills connections (``KILL <id>``), with no connection leaked."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomysql
import pytest

from dataflow import DataFlow
from dataflow.errors import ConnectionLostError
from dataflow.pool import ServerInfo, default_pool_size
from dataflow_mysql.adapter import MySQLAdapter


async def server_threads(raw: aiomysql.Connection, ids: set[int] | None = None) -> set[int]:
    """Connection ids the server has open for our database (other than ``raw`` itself)."""
    async with raw.cursor() as cur:
        await cur.execute("SELECT ID FROM information_schema.PROCESSLIST "
                          "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()")
        found = {int(r[0]) for r in await cur.fetchall()}
    return found if ids is None else found & ids


async def connect(db: DataFlow) -> None:
    await db.adapter.run(db.adapter.fetch, "SELECT 1", ())  # type: ignore[attr-defined]


async def pool_thread_ids(db: DataFlow, n: int) -> set[int]:
    """Open ``n`` pooled connections at once and return their server ids."""
    adapter = db.adapter
    assert isinstance(adapter, MySQLAdapter)
    conns = [await adapter.acquire() for _ in range(n)]
    try:
        return {int((await adapter.fetch(c, "SELECT CONNECTION_ID()", ()))[0][0]) for c in conns}
    finally:
        for c in conns:
            await adapter.release(c)


async def test_pool_is_sized_from_max_connections(make_db: Any, raw: aiomysql.Connection,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    async with raw.cursor() as cur:
        await cur.execute("SELECT @@max_connections")
        max_conn = int((await cur.fetchall())[0][0])
    monkeypatch.delenv("DATAFLOW_POOL_SIZE", raising=False)
    monkeypatch.setenv("DATAFLOW_WORKER_COUNT", "4")
    db: DataFlow = make_db()
    await connect(db)
    stats = db.pool_stats()
    assert stats["server_max_connections"] == max_conn
    assert stats["max"] == default_pool_size(ServerInfo(max_connections=max_conn), 4)
    assert set(stats) >= {"active", "idle", "max", "utilization"}
    monkeypatch.setenv("DATAFLOW_POOL_SIZE", "3")
    db2: DataFlow = make_db()
    await connect(db2)
    assert db2.pool_stats()["max"] == 3
    db3: DataFlow = make_db(pool_size=2)
    await connect(db3)
    assert db3.pool_stats()["max"] == 2


async def test_pool_stats_counts_active_connections(make_db: Any) -> None:
    db: DataFlow = make_db(pool_size=3)
    await connect(db)
    adapter = db.adapter
    conn = await adapter.acquire()
    try:
        stats = db.pool_stats()
        assert stats["active"] == 1 and stats["max"] == 3
        assert stats["utilization"] == pytest.approx(1 / 3)
    finally:
        await adapter.release(conn)
    assert db.pool_stats()["active"] == 0


async def test_reconnects_after_kill_without_leaking(make_db: Any, raw: aiomysql.Connection) -> None:
    db: DataFlow = make_db(pool_size=3)

    @db.model
    class MyKill:
        n: int

    await db.express.bulk_create("MyKill", [{"n": i} for i in range(5)])
    ids = await pool_thread_ids(db, 3)
    assert len(ids) == 3 and await server_threads(raw, ids) == ids
    async with raw.cursor() as cur:
        for i in ids:
            await cur.execute(f"KILL {i}")
    await asyncio.sleep(0.05)
    assert await server_threads(raw, ids) == set()
    # every pooled connection is dead: reads and writes still work
    assert await db.express.count("MyKill") == 5
    assert (await db.express.create("MyKill", {"n": 99}))["n"] == 99
    results = await asyncio.gather(*(db.express.count("MyKill") for _ in range(10)))
    assert results == [6] * 10
    stats = db.pool_stats()
    assert stats["active"] == 0 and stats["idle"] <= 3
    fresh = await pool_thread_ids(db, 3)
    assert not fresh & ids and await server_threads(raw, fresh) == fresh
    # killed mid-transaction: the block fails with DF-903, the next call works
    with pytest.raises(ConnectionLostError):
        async with db.transaction():
            await db.express.create("MyKill", {"n": 100})
            async with raw.cursor() as cur:
                for i in await server_threads(raw, fresh):
                    await cur.execute(f"KILL {i}")
            await db.express.create("MyKill", {"n": 101})
    assert await db.express.count("MyKill") == 6  # the transaction's writes are gone
    assert db.pool_stats()["active"] == 0
    # no leak: closing leaves no connection of ours on the server
    every = await pool_thread_ids(db, 3)
    await db.drop_tables()
    await db.close()
    await asyncio.sleep(0.05)
    assert await server_threads(raw, every) == set()


async def test_a_pool_per_event_loop_all_closed(make_db: Any, raw: aiomysql.Connection) -> None:
    db: DataFlow = make_db(pool_size=2)

    @db.model
    class MyLoop:
        n: int

    await db.express.create("MyLoop", {"n": 1})
    await asyncio.to_thread(db.express_sync.create, "MyLoop", {"n": 2})  # the sync API's loop
    assert await db.express.count("MyLoop") == 2
    assert db.pool_stats()["pools"] == 2
    before = await server_threads(raw)
    ours = await pool_thread_ids(db, 2)
    await db.drop_tables()
    await db.close()
    await asyncio.sleep(0.1)
    after = await server_threads(raw)
    assert not after & ours and len(after) <= len(before) - 2


async def test_a_statement_over_max_allowed_packet_does_not_poison_the_pool(
        make_db: Any, raw: aiomysql.Connection) -> None:
    """The server refuses a statement over ``max_allowed_packet`` (1153) and closes that
    connection; the client reads the error cleanly, so the pool used to keep the dead socket
    and hand it to the next caller, whose write then failed with DF-903. The adapter now
    discards it: the error names max_allowed_packet, nothing is written, and every next
    write -- reads are retried anyway -- succeeds on a live connection."""
    from dataflow.errors import DatabaseError

    db: DataFlow = make_db(pool_size=1)

    @db.model
    class PacketNote:
        body: str

    await db.initialize()
    adapter = db.adapter
    assert isinstance(adapter, MySQLAdapter)
    too_big = "x" * (adapter.max_allowed_packet + 1)
    for attempt in (lambda: db.express.create("PacketNote", {"body": too_big}),
                    lambda: db.express.bulk_create("PacketNote", [{"body": too_big}]),
                    lambda: db.express.upsert("PacketNote", {"id": 9, "body": too_big})):
        with pytest.raises(DatabaseError, match="max_allowed_packet") as err:
            await attempt()
        assert not isinstance(err.value, ConnectionLostError)
        # the one pooled connection was the dead one: a write (never retried) must work
        created = await db.express.create("PacketNote", {"body": "after"})
        assert (await db.express.read("PacketNote", created["id"]))["body"] == "after"
    # inside a transaction the server's close ends the transaction too: caught or not,
    # the block cannot commit, and says so (DF-903) instead of reporting success
    with pytest.raises(ConnectionLostError):
        async with db.transaction():
            await db.express.create("PacketNote", {"body": "rolled back"})
            with pytest.raises(DatabaseError, match="max_allowed_packet"):
                await db.express.create("PacketNote", {"body": too_big})
    assert (await db.express.create("PacketNote", {"body": "after tx"}))["id"]
    assert await db.express.count("PacketNote") == 4
    assert db.pool_stats()["active"] == 0
    assert len(await pool_thread_ids(db, 1)) == 1
