"""SQLite: the reported reproduction of a cancelled bulk write losing a later write.

``bulk_create`` cancelled after one loop turn left the shared connection inside an open
transaction: the next ``create`` returned an id, yet after ``close()`` the file held no
such row, and other connections met "database is locked". Checked here on a file (closed
and opened again by a fresh instance) and in memory (through the sync API's connection).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dataflow import DataFlow

pytestmark = pytest.mark.asyncio


def _model(db: DataFlow) -> None:
    @db.model
    class Item:
        label: str


async def _cancelled_ops(db: DataFlow, turns: int) -> None:
    ex = db.express
    seed = await ex.create("Item", {"label": "seed"})

    async def timed_out() -> Any:
        return await asyncio.wait_for(ex.bulk_create("Item", [{"label": "w"}] * 10), 10)

    operations: list[Any] = [
        lambda: ex.bulk_create("Item", [{"label": "x"}] * 10),
        lambda: ex.update("Item", seed["id"], {"label": "y"}),
        lambda: ex.upsert("Item", {"id": seed["id"], "label": "z"}),
        lambda: ex.bulk_delete("Item", {"label": "x"}),
        timed_out,
    ]
    for make in operations:
        task = asyncio.ensure_future(make())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5])
async def test_a_write_after_a_cancelled_operation_is_durable(tmp_path: Path, turns: int) -> None:
    path = tmp_path / "cancel.db"
    db = DataFlow(f"sqlite:///{path}")
    _model(db)
    await _cancelled_ops(db, turns)
    ack = await db.express.create("Item", {"label": "ack"})
    # another process's view while this instance is still open: not locked out
    other = sqlite3.connect(path, timeout=1)
    try:
        assert other.execute("SELECT id FROM item WHERE label = 'ack'").fetchall() == [(ack["id"],)]
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
    await db.close()
    again = DataFlow(f"sqlite:///{path}")
    _model(again)
    try:
        assert await again.express.read("Item", ack["id"]) == ack
        async with again.transaction():  # no "cannot start a transaction within a transaction"
            await again.express.create("Item", {"label": "after"})
        assert await again.express.count("Item", {"label": "after"}) == 1
    finally:
        await again.close()


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5])
async def test_in_memory_write_after_a_cancelled_operation_is_committed(turns: int) -> None:
    db = DataFlow()
    _model(db)
    try:
        await _cancelled_ops(db, turns)
        ack = await db.express.create("Item", {"label": "ack"})
        # the sync API has its own connection: it sees only committed rows
        found = await asyncio.to_thread(db.express_sync.read, "Item", ack["id"])
        assert found == ack
    finally:
        await db.close()
