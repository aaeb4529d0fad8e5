"""A background event loop for the sync API.

``express_sync`` and ``LocalRuntime`` submit coroutines here and block for the
result, so they work with or without a running loop in the caller's thread and
never nest event loops. The thread is a daemon: a process that never closes its
DataFlow still exits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import DataFlowError

T = TypeVar("T")

Binding = tuple[tuple[contextvars.ContextVar[Any], Any], ...]
#: in a caller's thread inside a sync ``with db.transaction():``: context variables (the
#: open transaction block) that the block's sync calls see, on top of the caller's own
_bound: contextvars.ContextVar[Binding] = contextvars.ContextVar("dataflow_portal_bound",
                                                                default=())
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


def call(coro: Coroutine[Any, Any, T], *, context: contextvars.Context | None = None) -> T:
    """Run ``coro`` on the portal loop and wait for its result.

    It runs in a copy of the caller's context (tenant bindings follow), plus what a sync
    transaction block bound in this thread; or in ``context`` when given.
    """
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
    ctx = context
    if ctx is None:
        pairs = _bound.get()
        if not pairs:
            return asyncio.run_coroutine_threadsafe(coro, portal).result()
        ctx = context_for_call()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def finish(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            done.cancel()
        elif task.exception() is not None:
            done.set_exception(task.exception())  # type: ignore[arg-type]
        else:
            done.set_result(task.result())

    def start() -> None:
        try:
            portal.create_task(coro, context=ctx).add_done_callback(finish)
        except BaseException as exc:  # e.g. the context is already entered
            coro.close()
            done.set_exception(exc)

    portal.call_soon_threadsafe(start)
    return done.result()


def context_for_call() -> contextvars.Context:
    """A copy of the caller's context with this thread's bound variables set."""
    ctx = contextvars.copy_context()
    pairs = _bound.get()
    if pairs:
        ctx.run(_apply, pairs)
    return ctx


def _apply(pairs: Binding) -> None:
    for var, value in pairs:
        var.set(value)


def bind(var: contextvars.ContextVar[Any], value: Any) -> contextvars.Token[Binding]:
    """Until :func:`unbind`, this thread's sync calls see ``var`` set to ``value``."""
    return _bound.set((*_bound.get(), (var, value)))


def unbind(token: contextvars.Token[Binding]) -> None:
    _bound.reset(token)


def is_portal_loop(candidate: asyncio.AbstractEventLoop) -> bool:
    return candidate is _loop
