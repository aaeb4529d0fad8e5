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
                          timeout: bool = False, turns_each: tuple[int, ...] = TURNS) -> None:
        ex = db.express
        for turns in turns_each:
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

    async def test_cancelled_bulk_upsert_writes_all_or_nothing(self, make_db: MakeDB) -> None:
        """Three batches of 700 rows (one statement each, or all streamed into one staging
        COPY), enough that some cancellations land between batches or mid-stream."""
        db = make_db()
        _model(db)
        ex = db.express
        size = 2_100
        attempt = {"n": 0}

        async def state() -> tuple[int, int]:
            return (int(await ex.count("KitCancelRow", {"label": "up"})),
                    int(await ex.count("KitCancelRow", {"label": "up", "n": attempt["n"]})))

        async def upsert() -> Any:
            attempt["n"] += 1
            return await ex.bulk_upsert("KitCancelRow", [
                {"id": 10_000 + i, "label": "up", "n": attempt["n"]} for i in range(size)],
                batch_size=700)

        def whole(before: tuple[int, int], after: tuple[int, int]) -> bool:
            # either nothing of this attempt is there, or every row carries it
            return (after[1] == 0 and after[0] == before[0]) or after == (size, size)

        # from the first statements to well inside the write
        await self._check_each(db, "bulk_upsert", upsert, state, whole,
                               turns_each=(0, 3, 10, 40, 100, 250, 500, 1000, 2000, 4000))

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


class _CleanupSpy:
    """Watches the adapter's clean-up calls (the real ones run): whether one is in flight, and
    every one that a cancellation cut short. Installed on the instance, so DataFlow's calls
    and the adapter's own (``self.release(...)``) both pass through it."""

    STEPS = ("interrupted", "rollback", "rollback_to_savepoint", "release")

    def __init__(self, adapter: Any) -> None:
        self.started = asyncio.Event()
        self.in_flight: dict[str, int] = {}
        self.cut: list[str] = []
        self.calls: list[str] = []
        #: called once, synchronously, when the next rollback step has started (in flight, its
        #: real call not yet made): a cancellation it requests lands inside that step for sure
        self.on_start: Callable[[], None] | None = None
        for name in self.STEPS:
            setattr(adapter, name, self._wrap(name, getattr(adapter, name)))

    def _wrap(self, name: str, real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def step(*args: Any) -> Any:
            if name != "release":
                self.started.set()
            self.calls.append(name)
            self.in_flight[name] = self.in_flight.get(name, 0) + 1
            hook = self.on_start if name != "release" else None
            if hook is not None:
                self.on_start = None
                hook()
            try:
                return await real(*args)
            except asyncio.CancelledError:
                self.cut.append(name)
                raise
            finally:
                self.in_flight[name] -= 1
        return step

    landed_at_start = False

    def cancel_on_start(self, task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` again from inside its next rollback step, as it starts."""
        self.landed_at_start = False

        def cancel() -> None:
            self.landed_at_start = self.rolling_back()
            task.cancel()
        self.on_start = cancel

    def rolling_back(self) -> bool:
        return any(self.in_flight.get(n, 0) for n in ("interrupted", "rollback", "rollback_to_savepoint"))


#: loop turns between the start of the clean-up and the second cancellation (None: cancelled
#: again on every turn until the task has ended; "start": the moment its first rollback step
#: starts, from inside it -- the one timing that lands during the rollback on every backend,
#: however fast the database answers)
SECOND: tuple[int | str | None, ...] = ("start", 0, 1, 2, 3, 5, 8, None)


@pytest.mark.asyncio
@pytest.mark.requires("transactions")
class TestSecondCancellation:
    """A second cancellation that lands while the first one's clean-up (rollback, connection
    hand-back) is running: the clean-up still runs to its end, the task ends cancelled, the
    interrupted work is absent, the connection is clean for the next caller, and the next
    acknowledged write is committed."""

    async def _second(self, task: asyncio.Task[Any], spy: _CleanupSpy,
                      turns: int | str | None) -> bool | None:
        """Cancel ``task`` again once its clean-up started (after ``turns`` loop turns): whether
        that cancellation landed while a rollback step was in flight; ``None`` when the task
        ended (cancelled) before any clean-up started."""
        started = asyncio.ensure_future(spy.started.wait())
        await asyncio.wait((started, task), return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return None
        landed = False
        if turns == "start":
            landed = spy.landed_at_start
        elif turns is None:
            while not task.done():
                landed = landed or spy.rolling_back()
                task.cancel()
                await asyncio.sleep(0)
        else:
            assert isinstance(turns, int)
            for _ in range(turns):
                await asyncio.sleep(0)
            landed = spy.rolling_back()
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return landed

    async def _after(self, db: Any, spy: _CleanupSpy, label: str, case: str,
                     allowed: tuple[int, ...] = (0,)) -> None:
        assert spy.cut == [], f"{case}: a clean-up step was cut short: {spy.cut}"
        assert not db.in_transaction()
        assert db.pool_stats()["active"] == 0, f"{case}: a connection was not handed back"
        assert await _committed(db, label) in allowed, f"{case}: the interrupted write is half there"
        # the next caller: a transaction and a plain write, both committed
        async with db.transaction():
            await db.express.create("KitCancelRow", {"label": f"tx-{case}"})
        await db.express.create("KitCancelRow", {"label": f"ack-{case}"})
        assert await _committed(db, f"tx-{case}") == 1, case
        assert await _committed(db, f"ack-{case}") == 1, case

    async def test_a_second_cancellation_during_a_blocks_rollback(self, make_db: MakeDB) -> None:
        db = make_db(pool_size=1)  # the next caller gets the connection that was cleaned up
        _model(db)
        await db.express.count("KitCancelRow")
        spy = _CleanupSpy(db.adapter)
        landed, steps = 0, set()
        for turns in SECOND:
            case = f"block-{turns}"
            inside = asyncio.Event()

            async def block(label: str = f"{case}-work", inside: asyncio.Event = inside) -> None:
                async with db.transaction():
                    await db.express.create("KitCancelRow", {"label": label})
                    await db.express.bulk_create("KitCancelRow", [{"label": label}] * 3)
                    inside.set()
                    await asyncio.Event().wait()  # until cancelled

            task = asyncio.create_task(block())
            await inside.wait()
            spy.started.clear()
            spy.calls.clear()
            if turns == "start":
                spy.cancel_on_start(task)
            task.cancel()
            hit = await self._second(task, spy, turns)
            spy.on_start = None
            assert hit is not None, f"{case}: the cancelled block cleaned nothing up"
            landed += hit
            steps.update(spy.calls)
            assert "release" in spy.calls, f"{case}: the connection was not handed back"
            await self._after(db, spy, f"{case}-work", case)
        if "rollback" in steps:  # where the clean-up waits on the database at all
            assert landed, "no second cancellation landed while the rollback was in flight"

    async def test_a_second_cancellation_during_an_operations_rollback(
            self, make_db: MakeDB) -> None:
        db = make_db(pool_size=1)
        _model(db)
        await db.express.count("KitCancelRow")
        spy = _CleanupSpy(db.adapter)
        reached = 0
        for first in TURNS[1:]:
            for turns in (0, 2, None):
                case = f"bulk-{first}-{turns}"
                label = f"{case}-work"
                spy.started.clear()
                task = asyncio.ensure_future(
                    db.express.bulk_create("KitCancelRow", [{"label": label}] * BULK))
                for _ in range(first):
                    await asyncio.sleep(0)
                if task.done():  # finished before the first cancellation: nothing to clean up
                    await db.express.bulk_delete("KitCancelRow", {"label": label})
                    continue
                task.cancel()
                if await self._second(task, spy, turns) is None:
                    continue  # cancelled before it reached the database
                reached += 1
                # a cancellation that lands during COMMIT may find it done: all or nothing
                await self._after(db, spy, label, case, allowed=(0, BULK))
        assert reached, "no cancellation landed while the operation was running"
