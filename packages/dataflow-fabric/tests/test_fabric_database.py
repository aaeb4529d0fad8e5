"""Database sources: another DataFlow URL (SQLite file, PostgreSQL), read-only, change detection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fabric_support import Serve, eventually

from dataflow import DataFlow
from dataflow.core import live_instances
from dataflow.errors import UnsupportedError
from dataflow.fabric import DatabaseSourceConfig, ProductContext, SourceError
from dataflow.testkit import servers

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


async def _probe_pg(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def other(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DataFlow]:
    """Another database with an ``invoice`` table, written by its own DataFlow instance."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'other.db'}"
    else:
        # the kit's lookup runs its own event loop: give it a thread of its own
        url = await asyncio.to_thread(servers.server_url, "DATAFLOW_POSTGRES_URL", PG_DEFAULT,
                                      _probe_pg, what="PostgreSQL")
    writer = DataFlow(url)

    @writer.model
    class Invoice:
        __tablename__ = "fabric_src_invoice"
        amount: int

    await writer.initialize()
    await writer.express.bulk_delete("Invoice", {}, confirmed=True)
    yield writer
    await writer.drop_tables()
    await writer.close()


async def test_a_database_source_is_read_and_its_changes_refresh_dependants(
        other: DataFlow, db: DataFlow, serve: Serve) -> None:
    await other.express.bulk_create("Invoice", [{"amount": 5}, {"amount": 7}])
    source = db.source("billing", DatabaseSourceConfig(other.url.raw, tables=("fabric_src_invoice",),
                                                       poll_interval=0.05))

    @db.product("billed", depends_on=["billing"], debounce=0.0)
    async def billed(ctx: ProductContext) -> int:
        rows = await ctx.source("billing").fetch("fabric_src_invoice", order_by="amount")
        return sum(r["amount"] for r in rows)

    client = await serve()
    # the adapter package's own change detector, registered through dataflow_source_connectors
    detector = source.connector._detector  # type: ignore[attr-defined]
    assert type(detector).__name__ == {"sqlite": "SQLiteDataVersion",
                                       "postgresql": "PostgresChangeSignature"}[other.url.scheme]
    assert (await client.get("/billed")).json() == 12
    await other.express.create("Invoice", {"amount": 30})

    async def refreshed() -> bool:
        return (await client.get("/billed")).json() == 42

    await eventually(refreshed)
    rows = await source.fetch("fabric_src_invoice", filter={"amount": {"$gt": 6}}, limit=1,
                              order_by="amount")
    assert [r["amount"] for r in rows] == [7]
    with pytest.raises(SourceError, match="no table"):
        await source.connector.read("secrets", {})
    with pytest.raises(SourceError, match="takes"):
        await source.connector.read("fabric_src_invoice", {"data": {"amount": 1}})
    with pytest.raises(UnsupportedError, match="read-only"):  # the default: reads only
        await source.database()
    writable = db.source("billing_rw", DatabaseSourceConfig(other.url.raw, read_only=False,
                                                            tables=("fabric_src_invoice",)))
    target = await writable.database()
    await target.express.create(next(iter(target.models)), {"id": 1000, "amount": 0})
    assert await other.express.count("Invoice") == 4
    await writable.connector.close()


async def test_the_portable_signature_sees_inserts_updates_and_deletes(
        other: DataFlow, db: DataFlow) -> None:
    from dataflow_fabric.database import CountSignature

    first = await other.express.create("Invoice", {"amount": 1})
    source = db.source("billing", DatabaseSourceConfig(other.url.raw, tables=("fabric_src_invoice",),
                                                       poll_interval=3600, change_detection="portable"))
    connector = source.connector
    try:
        await connector.open()
        assert isinstance(connector._detector, CountSignature)  # type: ignore[attr-defined]
        assert await connector.poll() is False
        await other.express.create("Invoice", {"amount": 2})
        assert await connector.poll() is True
        await other.express.update("Invoice", first["id"], {"amount": 3})
        assert await connector.poll() is True
        await other.express.delete("Invoice", first["id"])
        assert await connector.poll() is True
        assert await connector.poll() is False
    finally:
        await connector.close()


def _source_instances(source: str) -> list[DataFlow]:
    return [d for d in live_instances() if d.name.startswith(f"fabric_source_{source}_")]


async def test_concurrent_opens_leave_one_live_instance(other: DataFlow, db: DataFlow) -> None:
    """A source added while the fabric runs is opened by the runtime and by its first user at
    once: the instance of the open that loses is closed, not left live to make nodes DF-702."""
    source = db.source("billing", DatabaseSourceConfig(other.url.raw, read_only=False,
                                                       tables=("fabric_src_invoice",)))
    connector = source.connector
    try:
        await asyncio.gather(connector.open(), connector.open(), source.database())
        assert _source_instances("billing") == [connector.db]  # type: ignore[attr-defined]
    finally:
        await connector.close()
    assert _source_instances("billing") == []


async def test_a_close_during_an_open_leaves_no_live_instance(other: DataFlow, db: DataFlow) -> None:
    source = db.source("billing", DatabaseSourceConfig(other.url.raw, tables=("fabric_src_invoice",)))
    connector = source.connector
    opening = asyncio.ensure_future(connector.open())
    await asyncio.sleep(0)  # the open is under way: it waits for the database
    assert not opening.done()
    await connector.close()
    with pytest.raises(SourceError, match="closed while it was opening"):
        await opening
    assert connector.db is None  # type: ignore[attr-defined]
    assert _source_instances("billing") == []


async def test_postgres_notifications_refresh_without_waiting_for_a_poll(
        other: DataFlow, db: DataFlow, serve: Serve) -> None:
    from dataflow.errors import UnsupportedError

    config = DatabaseSourceConfig(other.url.raw, tables=("fabric_src_invoice",), poll_interval=3600,
                                  notify_channel="fabric_src_invoice_changed")
    if other.url.scheme != "postgresql":
        source = db.source("billing", config)
        with pytest.raises(UnsupportedError, match="no change notifications"):
            await source.connector.open()
        return
    import asyncpg

    conn = await asyncpg.connect(other.url.raw)
    try:  # the database announces its own changes, as an application's trigger would
        await conn.execute("""
            CREATE OR REPLACE FUNCTION fabric_src_invoice_notify() RETURNS trigger AS $$
            BEGIN PERFORM pg_notify('fabric_src_invoice_changed', TG_OP); RETURN NULL; END
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER fabric_src_invoice_notify AFTER INSERT OR UPDATE OR DELETE
            ON fabric_src_invoice FOR EACH STATEMENT EXECUTE FUNCTION fabric_src_invoice_notify();
        """)
        db.source("billing", config)

        @db.product("billed", depends_on=["billing"], debounce=0.0)
        async def billed(ctx: ProductContext) -> int:
            return len(await ctx.source("billing").fetch("fabric_src_invoice"))

        client = await serve()
        assert (await client.get("/billed")).json() == 0
        await other.express.create("Invoice", {"amount": 3})

        async def refreshed() -> bool:
            return (await client.get("/billed")).json() == 1

        await eventually(refreshed)  # poll_interval is an hour: the notification did it
    finally:
        await conn.execute("DROP TRIGGER IF EXISTS fabric_src_invoice_notify ON fabric_src_invoice; "
                           "DROP FUNCTION IF EXISTS fabric_src_invoice_notify()")
        await conn.close()
