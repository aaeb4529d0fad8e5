"""A background event loop for the sync API.

``express_sync`` and ``LocalRuntime`` submit coroutines here and block for the
result, so they work with or without a running loop in the caller's thread and
never nest event loops. The thread is a daemon: a process that never closes its
DataFlow still exits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import DataFlowError

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _start() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is not None and _thread is not None and _thread.is_alive():
            return _loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="dataflow-sync", daemon=True)
        thread.start()
        ready.wait()
        _loop, _thread = loop, thread
        return loop


def loop() -> asyncio.AbstractEventLoop:
    return _start()


def call(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the portal loop and wait for its result."""
    portal = _start()
    if threading.current_thread() is _thread:
        coro.close()
        raise DataFlowError(
            "a sync DataFlow call was made from inside DataFlow's own sync loop.",
            fix="use the async API (await db.express...) inside async code.",
        )
    from .core import live_instances

    if any(db.in_transaction() for db in live_instances()):
        coro.close()
        from .errors import TransactionError

        raise TransactionError(
            "a sync DataFlow call was made inside 'async with db.transaction()': it would run "
            "outside the transaction and wait for the connection the transaction holds.",
            fix="inside async code use the async API: await db.express..., "
            "await AsyncLocalRuntime().execute_workflow_async(...).",
        )
    return asyncio.run_coroutine_threadsafe(coro, portal).result()


def is_portal_loop(candidate: asyncio.AbstractEventLoop) -> bool:
    return candidate is _loop
