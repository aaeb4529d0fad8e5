"""``uninterrupted``: clean-up that a second cancellation cannot cut short."""

from __future__ import annotations

import asyncio

import pytest

from dataflow.interrupts import uninterrupted


async def test_cleanup_runs_to_its_end_through_repeated_cancellation() -> None:
    steps: list[int] = []
    cleanup_started = asyncio.Event()

    async def cleanup() -> str:  # e.g. ROLLBACK, then hand the connection back
        cleanup_started.set()
        for i in range(5):
            await asyncio.sleep(0)
            steps.append(i)
        return "clean"

    async def operation() -> str:
        return await uninterrupted(cleanup())

    task = asyncio.create_task(operation())
    await cleanup_started.wait()
    for _ in range(3):  # cancelled again and again while the clean-up is running
        task.cancel()
        await asyncio.sleep(0)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == [0, 1, 2, 3, 4]


async def test_without_cancellation_the_result_and_errors_pass_through() -> None:
    async def value() -> int:
        await asyncio.sleep(0)
        return 7

    async def failing() -> None:
        await asyncio.sleep(0)
        raise LookupError("from the clean-up")

    assert await uninterrupted(value()) == 7
    with pytest.raises(LookupError, match="from the clean-up"):
        await uninterrupted(failing())
