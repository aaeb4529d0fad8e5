"""Helpers for connection-fault tests, shared by adapters whose servers can kill sessions.

The server-specific part (how to kill a pool's connections, how to list them) stays with
the adapter's tests; the workload bookkeeping lives here. Kills are triggered by counts of
acknowledged operations, never by a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..core import DataFlow
from ..errors import ConnectionLostError


class Killer:
    """Runs ``kill()`` each time the count of acknowledged operations crosses a mark;
    ``killed`` holds what each kill returned (a count, or the ids it killed)."""

    def __init__(self, kill: Callable[[], Awaitable[Any]], marks: Iterable[int]) -> None:
        self._kill = kill
        self._marks = sorted(marks)
        self.acked = 0
        self.killed: list[Any] = []
        self._pending: list[asyncio.Task[None]] = []

    def ack(self) -> None:
        self.acked += 1
        if self._marks and self.acked >= self._marks[0]:
            self._marks.pop(0)
            self._pending.append(asyncio.create_task(self._run()))

    async def _run(self) -> None:
        self.killed.append(await self._kill())

    async def wait(self) -> None:
        await asyncio.gather(*self._pending)


async def exactly_once_increments(db: DataFlow, counter_model: str, op_model: str,
                                  counter_id: Any, count: int, killer: Killer) -> int:
    """``count`` concurrent transactions, each adding 1 to the counter under a row lock and
    recording its op number (a unique field ``op``). A block that fails with a lost
    connection is run again unless its op row shows it committed. Returns the retries."""
    retries = 0

    async def increment(k: int) -> None:
        nonlocal retries
        while True:
            try:
                async with db.transaction():
                    if await db.express.count(op_model, {"op": k}):
                        break  # an earlier attempt committed, only its ack was lost
                    row = await db.express.read(counter_model, counter_id, for_update=True)
                    assert row is not None
                    await db.express.update(counter_model, counter_id, {"n": row["n"] + 1})
                    await db.express.create(op_model, {"op": k})
                break
            except ConnectionLostError:
                retries += 1  # the server rolled the transaction back: run it again
        killer.ack()

    await asyncio.gather(*(increment(k) for k in range(count)))
    await killer.wait()
    return retries


async def eventually_empty(probe: Callable[[], Awaitable[set[Any]]], attempts: int = 200,
                           pause: float = 0.05) -> set[Any]:
    """Poll ``probe`` (bounded) until it returns an empty set; servers end closed sessions
    asynchronously. Returns what was left at the end."""
    left = await probe()
    for _ in range(attempts):
        if not left:
            break
        await asyncio.sleep(pause)
        left = await probe()
    return left


async def held_session_ids(db: DataFlow, size: int, sql: str) -> set[int]:
    """Hold ``size`` connections of the pool at once; the server's id of each session, read
    with ``sql`` (one value: ``SELECT pg_backend_pid()``, ``SELECT CONNECTION_ID()``)."""
    adapter: Any = db.adapter
    conns = [await adapter.acquire() for _ in range(size)]
    try:
        return {int((await adapter.fetch(c, sql, ()))[0][0]) for c in conns}
    finally:
        for c in conns:
            await adapter.release(c)


async def check_acknowledged_writes(db: DataFlow, model: str, acked: dict[str, Any],
                                    count: int) -> None:
    """Every acknowledged write is in the table, once, as acknowledged: ``acked`` maps the
    ``name`` of each of the ``count`` writes (``w<n>``) to the id it was acknowledged with."""
    assert len(acked) == count
    rows = await db.express.list(model)
    assert len(rows) == count
    assert {r["name"]: r["id"] for r in rows} == acked
    assert all(r["n"] == int(r["name"][1:]) for r in rows)
