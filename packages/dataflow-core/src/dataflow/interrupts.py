"""Clean-up that a cancellation cannot cut short.

A task cancelled while DataFlow holds a connection must still roll back and hand the
connection back clean. :func:`uninterrupted` runs such clean-up to its end even when the
calling task is cancelled (again) meanwhile, and re-raises the cancellation afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def uninterrupted(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` to completion; a cancellation that arrives meanwhile is raised after it."""
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation below is what the caller sees
        raise asyncio.CancelledError
    return task.result()
