"""PerLoop: one creation per loop, shared by concurrent callers; a failure reaches them all."""

from __future__ import annotations

import asyncio

from dataflow.loops import PerLoop


async def test_concurrent_callers_share_one_creation() -> None:
    made: list[int] = []

    async def create() -> int:
        await asyncio.sleep(0.01)
        made.append(1)
        return len(made)

    per_loop: PerLoop[int] = PerLoop(create)
    results = await asyncio.gather(*(per_loop.get() for _ in range(20)))
    assert results == [1] * 20 and made == [1]
    assert per_loop.items == {asyncio.get_running_loop(): 1}


async def test_a_failed_creation_reaches_every_waiter_and_is_retried_later() -> None:
    attempts: list[int] = []

    async def create() -> str:
        attempts.append(1)
        await asyncio.sleep(0.01)
        if len(attempts) == 1:
            raise ConnectionRefusedError("down")
        return "up"

    per_loop: PerLoop[str] = PerLoop(create)
    outcomes = await asyncio.gather(*(per_loop.get() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(o, ConnectionRefusedError) for o in outcomes)
    assert await per_loop.get() == "up"
    assert len(attempts) == 2


def test_each_loop_gets_its_own() -> None:
    calls: list[asyncio.AbstractEventLoop] = []

    async def create() -> asyncio.AbstractEventLoop:
        calls.append(asyncio.get_running_loop())
        return calls[-1]

    per_loop: PerLoop[asyncio.AbstractEventLoop] = PerLoop(create)
    first = asyncio.run(per_loop.get())
    second = asyncio.run(per_loop.get())
    assert first is not second and len(per_loop.items) == 2
