"""Cancellation: a task cancelled mid-operation rolls back what it interrupted.

Real tasks are cancelled after 0, 1, 2, ... turns of the event loop, so the cancellation
lands before, between and during the statements of each operation (bulk_create, update,
upsert, bulk_delete, a ``db.transaction()`` block) and through ``asyncio.timeout``.
After each one: ``CancelledError`` (or ``TimeoutError``) was raised, never a DF error;
the interrupted work is all there or not at all; the connection came back clean (a new
transaction starts, and a later create is committed: another connection -- the sync
API's -- sees it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ._helpers import MakeDB

pytestmark = pytest.mark.asyncio

#: loop turns before the cancellation (0: before the task first runs)
TURNS = (0, 1, 2, 3, 4, 5, 6, 8, 11, 15, 20, 30)
BULK = 25


def _model(db: Any) -> None:
    @db.model
    class KitCancelRow:
        label: str
        n: int = 0


async def _cancel_after(turns: int, work: Callable[[], Awaitable[Any]], *,
                        timeout: bool) -> str:
    """Run ``work`` in a task, cancel it after ``turns`` loop turns; what happened."""
    if timeout:
        async def timed() -> Any:
            async with asyncio.timeout(None) as cm:
                loop = asyncio.get_running_loop()

                async def expire() -> None:
                    for _ in range(turns):
                        await asyncio.sleep(0)
                    cm.reschedule(loop.time())

                expiry = asyncio.create_task(expire())
                try:
                    return await work()
                finally:
                    expiry.cancel()

        task = asyncio.create_task(timed())
    else:
        task = asyncio.ensure_future(work())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    except TimeoutError:
        return "timed out"
    return "completed"


async def _committed(db: Any, label: str) -> int:
    """Rows with ``label`` as another connection (the sync API's) sees them: committed."""
    return int(await asyncio.to_thread(db.express_sync.count, "KitCancelRow", {"label": label}))


@pytest.mark.asyncio
@pytest.mark.requires("transactions")
class TestCancellation:
    async def _check_each(self, db: Any, op: str,
                          work: Callable[[], Awaitable[Any]],
                          state: Callable[[], Awaitable[Any]],
                          allowed: Callable[[Any, Any], bool],
                          timeout: bool = False) -> None:
        ex = db.express
        for turns in TURNS:
            before = await state()
            outcome = await _cancel_after(turns, work, timeout=timeout)
            assert outcome in ("cancelled", "timed out", "completed"), (op, turns, outcome)
            assert not db.in_transaction()
            after = await state()
            assert allowed(before, after), f"{op} cancelled after {turns} turns left {after!r}"
            # the connection came back clean: a new transaction starts and commits, and a
            # plain create is committed (another connection sees both)
            async with db.transaction():
                await ex.create("KitCancelRow", {"label": f"tx-{op}-{turns}"})
            await ex.create("KitCancelRow", {"label": f"ack-{op}-{turns}"})
            assert await _committed(db, f"tx-{op}-{turns}") == 1, (op, turns)
            assert await _committed(db, f"ack-{op}-{turns}") == 1, (op, turns)

    async def test_cancelled_bulk_create_writes_all_or_nothing(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        ex = db.express

        async def state() -> int:
            return int(await ex.count("KitCancelRow", {"label": "bulk"}))

        for timeout in (False, True):
            await self._check_each(
                db, f"bulk_create-{timeout}",
                lambda: ex.bulk_create("KitCancelRow", [{"label": "bulk"}] * BULK),
                state, lambda b, a: a - b in (0, BULK), timeout=timeout)

    async def test_cancelled_update_and_upsert_leave_the_row_whole(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        ex = db.express
        row = await ex.create("KitCancelRow", {"label": "row", "n": 0})
        counter = {"n": 0}

        async def state() -> Any:
            rec = await ex.read("KitCancelRow", row["id"])
            return rec["n"] if rec is not None else None

        async def update() -> Any:
            counter["n"] += 1
            return await ex.update("KitCancelRow", row["id"], {"n": counter["n"]})

        async def upsert() -> Any:
            counter["n"] += 1
            return await ex.upsert("KitCancelRow", {"id": row["id"], "label": "row",
                                                    "n": counter["n"]})

        def one_step(b: Any, a: Any) -> bool:
            return a in (b, counter["n"])

        await self._check_each(db, "update", update, state, one_step)
        await self._check_each(db, "upsert", upsert, state, one_step)
        await self._check_each(db, "update-timeout", update, state, one_step, timeout=True)

    async def test_cancelled_bulk_delete_deletes_all_or_nothing(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        ex = db.express

        async def state() -> int:
            return int(await ex.count("KitCancelRow", {"label": "doomed"}))

        async def refill_and_delete() -> Any:
            return await ex.bulk_delete("KitCancelRow", {"label": "doomed"})

        for turns in TURNS:
            await ex.bulk_create("KitCancelRow", [{"label": "doomed"}] * 5)
            before = await state()
            outcome = await _cancel_after(turns, refill_and_delete, timeout=False)
            assert outcome in ("cancelled", "completed")
            assert await state() in (0, before)
            await ex.create("KitCancelRow", {"label": f"ack-{turns}"})
            assert await _committed(db, f"ack-{turns}") == 1
            await ex.bulk_delete("KitCancelRow", {"label": "doomed"})

    async def test_cancelled_transaction_block_rolls_back(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        ex = db.express

        async def block() -> None:
            async with db.transaction():
                await ex.create("KitCancelRow", {"label": "block"})
                await ex.bulk_create("KitCancelRow", [{"label": "block"}] * 3)
                await ex.create("KitCancelRow", {"label": "block"})

        async def state() -> int:
            return int(await ex.count("KitCancelRow", {"label": "block"}))

        for timeout in (False, True):
            await self._check_each(db, f"transaction-{timeout}", block, state,
                                   lambda b, a: a - b in (0, 5), timeout=timeout)

    async def test_cancellation_is_not_reported_as_a_database_error(self,
                                                                     make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        ex = db.express
        await ex.count("KitCancelRow")
        seen: list[str] = []
        for turns in TURNS:
            task = asyncio.create_task(ex.bulk_create("KitCancelRow", [{"label": "c"}] * BULK))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
                seen.append("completed")
            except asyncio.CancelledError:
                seen.append("cancelled")
            # any other exception (a DF-901/DF-903 in place of the cancellation) fails here
        assert "cancelled" in seen

    async def test_a_cancelled_task_inside_a_transaction_never_commits_half(
            self, make_db: MakeDB) -> None:
        """A task that joined the caller's transaction is cancelled mid-write while the block
        goes on: its write is all there or absent at commit, or (where it cannot be undone
        alone) the block refuses to commit anything (DF-801) -- never a part of it."""
        from ...errors import TransactionError

        db = make_db()
        _model(db)
        ex = db.express
        for turns in TURNS:
            tag = f"j{turns}"
            committed = True
            try:
                async with db.transaction():
                    await ex.create("KitCancelRow", {"label": f"{tag}-before"})
                    task = asyncio.ensure_future(
                        ex.bulk_create("KitCancelRow", [{"label": f"{tag}-bulk"}] * BULK))
                    for _ in range(turns):
                        await asyncio.sleep(0)
                    task.cancel()
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass
                    try:
                        await ex.create("KitCancelRow", {"label": f"{tag}-after"})
                    except TransactionError as exc:
                        assert exc.code == "DF-801"
            except TransactionError as exc:
                assert exc.code == "DF-801" and "rolled back" in str(exc)
                committed = False
            before = await _committed(db, f"{tag}-before")
            bulk = await _committed(db, f"{tag}-bulk")
            after = await _committed(db, f"{tag}-after")
            if committed:
                assert (before, after) == (1, 1) and bulk in (0, BULK), (turns, bulk)
            else:
                assert (before, bulk, after) == (0, 0, 0), turns
