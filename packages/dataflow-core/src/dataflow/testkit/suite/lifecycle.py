"""Event loops and the instance's life: one ``asyncio.run`` per call, close from any loop,
reopen after close (as SQLAlchemy's engine does after ``dispose()``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ._helpers import MakeDB


def _model(db: Any) -> None:
    @db.model
    class KitLoopRow:
        label: str


class TestLifecycle:
    def test_each_call_in_its_own_event_loop(self, make_db: MakeDB) -> None:
        """``asyncio.run(create)``, ``asyncio.run(count)``, ``asyncio.run(close)``: each loop
        ends after its call; the next call must not touch the dead loop's connections."""
        db = make_db()
        _model(db)
        for i in range(5):
            rec = asyncio.run(db.express.create("KitLoopRow", {"label": f"r{i}"}))
            assert asyncio.run(db.express.count("KitLoopRow")) == i + 1
            assert asyncio.run(db.express.read("KitLoopRow", rec["id"])) == rec
        asyncio.run(db.close())
        assert db.pool_stats()["active"] == 0
        # and it reopens in yet another loop
        asyncio.run(db.initialize())
        rec = asyncio.run(db.express.create("KitLoopRow", {"label": "after"}))
        assert asyncio.run(db.express.read("KitLoopRow", rec["id"])) == rec
        db.close_sync()

    @pytest.mark.asyncio
    async def test_close_from_another_loop_and_close_sync(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await db.express.create("KitLoopRow", {"label": "a"})
        # the sync API opens connections on its own loop too; close_sync closes both
        assert await asyncio.to_thread(db.express_sync.count, "KitLoopRow") == 1
        await asyncio.to_thread(db.close_sync)
        assert db.pool_stats()["active"] == 0
        rec = await db.express.create("KitLoopRow", {"label": "b"})  # reopened here
        assert await db.express.read("KitLoopRow", rec["id"]) == rec
        # close() awaited on this loop closes the sync loop's connections as well
        assert await asyncio.to_thread(db.express_sync.read, "KitLoopRow", rec["id"]) == rec
        await db.close()
        await db.close()  # closing twice is harmless

    @pytest.mark.asyncio
    async def test_a_closed_instance_reopens_on_next_use(self, make_db: MakeDB) -> None:
        """A module-level ``db`` used by two app lifespans (``async with db:`` twice, as two
        test clients of one app do) works in both."""
        db = make_db()
        _model(db)
        for round_ in range(3):
            async with db:
                rec = await db.express.create("KitLoopRow", {"label": f"round{round_}"})
                assert await db.express.read("KitLoopRow", rec["id"]) == rec
                async with db.transaction():
                    await db.express.create("KitLoopRow", {"label": f"tx{round_}"})
                assert await db.express.count("KitLoopRow", {"label": f"tx{round_}"}) == 1
        # after close, an explicit initialize() reopens too
        plan = await db.initialize()
        assert plan is not None
        assert await db.express.count("KitLoopRow", {"label": "missing"}) == 0
