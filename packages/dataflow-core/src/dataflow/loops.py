"""One resource per event loop (a connection, a pool), created once per loop.

DataFlow runs on the caller's event loop and on the sync API's background loop; driver
objects belong to the loop that made them. :class:`PerLoop` keeps one per loop and makes
sure tasks that ask at the same time share one creation instead of racing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """``await per_loop.get()``: this loop's resource, made by ``create()`` on first use."""

    def __init__(self, create: Callable[[], Awaitable[T]],
                 items: dict[asyncio.AbstractEventLoop, T] | None = None) -> None:
        self._create = create
        #: the resource of each loop (adapters read it for stats and close)
        self.items: dict[asyncio.AbstractEventLoop, T] = {} if items is None else items
        self._pending: dict[asyncio.AbstractEventLoop, asyncio.Future[T]] = {}

    async def get(self) -> T:
        loop = asyncio.get_running_loop()
        item = self.items.get(loop)
        if item is not None:
            return item
        pending = self._pending.get(loop)
        if pending is not None:
            return await pending
        pending = loop.create_future()
        self._pending[loop] = pending
        try:
            item = await self._create()
        except BaseException as exc:
            del self._pending[loop]
            pending.set_exception(exc)
            pending.exception()  # waiters get it; nobody else needs to retrieve it
            raise
        self.items[loop] = item
        del self._pending[loop]
        pending.set_result(item)
        return item


async def close_per_loop(items: dict[asyncio.AbstractEventLoop, T],
                         close: Callable[[T], Awaitable[Any]],
                         abandon: Callable[[T], None] | None = None) -> None:
    """Close every loop's resource in ``items`` (emptied first, in place: a :class:`PerLoop`
    shares the dict) on the loop that owns it: this loop's directly, a running other loop's
    through ``run_coroutine_threadsafe``. One whose loop is closed or not running cannot be
    awaited there: ``abandon(item)`` drops it without the loop (nothing when not given)."""
    loop = asyncio.get_running_loop()
    owned = dict(items)
    items.clear()
    for owner, item in owned.items():
        if owner is loop:
            await close(item)
        elif not owner.is_closed() and owner.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_awaited(close(item)), owner))
        elif abandon is not None:
            abandon(item)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
