"""One ``asyncio.run`` per call (scripts, notebooks, CLI commands): no session piles up.

Before: each call's event loop got its own pool, and pools of loops that had ended were
never closed -- after 10 runs of create + count the server held about 20 sessions, and
``asyncio.run(db.close())`` raised a bare "Event loop is closed".
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from dataflow import DataFlow


def _sessions(url: str, app: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app))
        finally:
            await conn.close()

    return asyncio.run(count())


def test_dead_loops_leave_no_sessions_and_close_works_from_any_loop(pg_url: str) -> None:
    app = f"df_loops_{uuid.uuid4().hex[:8]}"
    db = DataFlow(pg_url, application_name=app, pool_size=2)

    @db.model
    class LoopRow:
        label: str

    try:
        for i in range(10):
            asyncio.run(db.express.create("LoopRow", {"label": f"r{i}"}))
            assert asyncio.run(db.express.count("LoopRow")) == i + 1
            # only the pool of the loop that ran last can still hold sessions
            assert _sessions(pg_url, app) <= 2
        asyncio.run(db.close())
        assert _sessions(pg_url, app) == 0
        # reopens on next use, with the data in place; close_sync from sync code
        assert asyncio.run(db.express.count("LoopRow")) == 10
        assert _sessions(pg_url, app) >= 1
        db.close_sync()
        assert _sessions(pg_url, app) == 0
    finally:
        asyncio.run(db.drop_tables())
        asyncio.run(db.close())
    assert _sessions(pg_url, app) == 0
