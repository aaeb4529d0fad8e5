"""One resource per event loop (a connection, a pool), created once per loop.

DataFlow runs on the caller's event loop and on the sync API's background loop; driver
objects belong to the loop that made them. :class:`PerLoop` keeps one per loop and makes
sure tasks that ask at the same time share one creation instead of racing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

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
