"""``DataFlow(echo=True)`` and ``DataFlow(monitoring=True)``: what reaches the database, seen.

Both wrap the adapter *instance* once, at construction, so they work for any adapter,
a third party's included: a SQL adapter's driver primitives (``fetch``, ``execute``,
``executemany``: one call, one statement), or a non-SQL adapter's statement methods.

* ``echo``: each statement is logged on the ``dataflow.sql`` logger (INFO) with its bound
  parameters redacted: their count and types, never their values.
* ``monitoring``: each statement is an OpenTelemetry span ``dataflow.statement`` (attributes
  ``db.system``, ``db.statement`` -- the SQL text, without values -- and ``dataflow.instance``),
  and each node run a span ``dataflow.node <Type>``. It needs ``opentelemetry-api`` (the
  ``[monitoring]`` extra); without it, ``monitoring=True`` is refused (DF-101). Spans go to
  whatever tracer provider the application configured.

Only :class:`~dataflow.core.DataFlow` imports this module, and only when a flag is set.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .core import DataFlow

SQL_LOG = logging.getLogger("dataflow.sql")
DRIVER_CALLS = ("fetch", "execute", "executemany")
STATEMENT_CALLS = ("select", "count", "insert", "update", "delete", "upsert")


def redact(params: Any, many: bool = False) -> str:
    """``[3 parameters: int, str, NoneType]`` (``many``: rows of them): never the values."""
    if many:
        rows = list(params) if params is not None else []
        width = len(rows[0]) if rows else 0
        return f"[{len(rows)} rows of {width} parameters, redacted]"
    values = tuple(params or ())
    if not values:
        return "[no parameters]"
    kinds = ", ".join(type(v).__name__ for v in values[:8]) + (", ..." if len(values) > 8 else "")
    return f"[{len(values)} parameters redacted: {kinds}]"


class Observer:
    """The echo and monitoring switches of one DataFlow instance."""

    def __init__(self, db: DataFlow, *, echo: bool, monitoring: bool) -> None:
        self.instance = db.name
        self.system = db.adapter.capabilities.name
        self.echo = echo
        self.tracer: Any = None
        if monitoring:
            try:
                from opentelemetry import trace
            except ImportError as exc:
                raise ConfigurationError(
                    "monitoring=True needs opentelemetry-api, which is not installed.",
                    fix='install dataflow-core\'s [monitoring] extra from its path, e.g. '
                    'pip install "./packages/dataflow-core[monitoring]".') from exc
            self.tracer = trace.get_tracer("dataflow")
        self._wrap(db.adapter)

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[None]:
        if self.tracer is None:
            yield
            return
        with self.tracer.start_as_current_span(name, attributes={
                "dataflow.instance": self.instance, **attributes}):
            yield

    def _wrap(self, adapter: Any) -> None:
        sql = all(callable(getattr(adapter, n, None)) for n in DRIVER_CALLS)
        for name in DRIVER_CALLS if sql else STATEMENT_CALLS:
            original = getattr(adapter, name, None)
            if original is not None:
                setattr(adapter, name, self._watched(name, original, sql))

    def _watched(self, name: str, original: Any, sql: bool) -> Any:
        @functools.wraps(original)
        async def watched(conn: Any, arg: Any, *rest: Any) -> Any:
            text = arg if sql else type(arg).__name__
            if self.echo:
                detail = redact(rest[0] if rest else None, many=name == "executemany") if sql else ""
                SQL_LOG.info("%s %s %s", self.instance, text, detail)
            with self.span("dataflow.statement", **{"db.system": self.system,
                                                    "db.statement": str(text)[:2000]}):
                return await original(conn, arg, *rest)

        return watched
