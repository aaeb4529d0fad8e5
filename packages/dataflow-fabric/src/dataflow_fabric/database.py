"""Database connector: another DataFlow URL, read through express, never written.

Change detection: the adapter package's ``database:<scheme>`` detector when one is
registered (``factory(db, tables)`` -> object with ``async signature()``), else a
signature every backend can answer: row count and newest ``updated_at`` per table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from dataflow import plugins
from dataflow.core import DataFlow
from dataflow.errors import UnsupportedError

from .config import DatabaseSourceConfig
from .errors import SourceError

_ids = itertools.count(1)


async def _close(db: DataFlow, detector: Any) -> None:
    closer = getattr(detector, "close", None)
    try:
        if closer is not None:
            await closer()
    finally:
        await db.close()


class CountSignature:
    """Row count and newest ``updated_at`` of each table, through express."""

    def __init__(self, db: DataFlow, models: list[str]) -> None:
        self.db = db
        self.models = models

    async def signature(self) -> Hashable:
        parts = []
        for name in self.models:
            spec = self.db.get_model(name)
            count = await self.db.express.count(name)
            newest = None
            if "updated_at" in spec.fields:
                rows = await self.db.express.list(name, order_by="-updated_at", limit=1)
                newest = rows[0]["updated_at"] if rows else None
            parts.append((name, count, newest))
        return tuple(parts)


class DatabaseConnector:
    def __init__(self, name: str, config: DatabaseSourceConfig) -> None:
        self.name = name
        self.config = config
        self.poll_interval = config.poll_interval
        self.on_change: Callable[[], None] | None = None
        self.db: DataFlow | None = None
        self._tables: dict[str, str] = {}  # table -> model name
        self._detector: Any = None
        self._last: Hashable = None
        self._pending = False  # a notification arrived since the last poll
        self._closes = 0  # close() calls: an open under way when it changes is discarded

    async def open(self) -> None:
        """Open the source's own DataFlow instance (once: concurrent opens share the first).

        A source added while the fabric runs is opened by the runtime and, at the same time,
        perhaps by a first read or ``database()``; the instance of every open that loses the
        race is closed here, never left live (a leaked instance makes nodes ambiguous, DF-702).
        """
        if self.db is not None:
            return
        closes = self._closes
        db = DataFlow(self.config.url, name=f"fabric_source_{self.name}_{next(_ids)}",
                      auto_migrate=False, existing_schema_mode=True)
        detector: Any = None
        try:
            models = await db.register_schema_as_models(
                list(self.config.tables) if self.config.tables else None)
            tables = {db.get_model(m).table: m for m in models}
            scheme = db.url.scheme.split("+")[0]
            factory = (plugins.source_connectors().get(f"database:{scheme}")
                       if self.config.change_detection == "auto" else None)
            detector = (factory(db, list(tables)) if factory is not None
                        else CountSignature(db, list(tables.values())))
            last = await detector.signature()
            if self.config.notify_channel:
                listen = getattr(detector, "listen", None)
                if listen is None:
                    raise UnsupportedError(
                        f"source {self.name!r}: {scheme} has no change notifications to listen to.",
                        field="notify_channel", fix="leave notify_channel unset: changes are polled.")
                await listen(self.config.notify_channel, self._notified)
        except BaseException:
            await _close(db, detector)
            raise
        if self.db is not None:  # another open finished first: use its instance
            await _close(db, detector)
            return
        if closes != self._closes:  # close() ran while this open was under way
            await _close(db, detector)
            raise SourceError(f"source {self.name!r} was closed while it was opening.")
        self._tables, self._detector, self._last = tables, detector, last
        self.db = db

    async def database(self) -> DataFlow:
        """The source's DataFlow instance, for writes (only with ``read_only=False``)."""
        if self.config.read_only:
            raise UnsupportedError(f"source {self.name!r} is read-only; nothing was written.",
                                   field="read_only",
                                   fix="declare it with DatabaseSourceConfig(..., read_only=False).")
        await self.open()
        assert self.db is not None
        return self.db

    def _notified(self) -> None:
        self._pending = True
        if self.on_change is not None:
            self.on_change()

    async def close(self) -> None:
        self._closes += 1
        if self.db is not None:
            db, self.db = self.db, None
            await _close(db, self._detector)

    async def read(self, key: str | None, params: Mapping[str, Any]) -> Any:
        await self.open()
        assert self.db is not None
        if key is None or key not in self._tables:
            raise SourceError(f"source {self.name!r} has no table {key!r:.80}; "
                              f"tables: {', '.join(sorted(self._tables)) or 'none'}.", field="key")
        allowed = {"filter", "order_by", "limit", "offset"}
        unknown = set(params) - allowed
        if unknown:
            raise SourceError(f"source {self.name!r}: fetch() takes {', '.join(sorted(allowed))}, "
                              f"not {', '.join(sorted(unknown))}.")
        return await self.db.express.list(self._tables[key], params.get("filter"),
                                          order_by=params.get("order_by"),
                                          limit=params.get("limit"), offset=params.get("offset"))

    async def poll(self) -> bool:
        await self.open()
        notified, self._pending = self._pending, False
        current: Hashable = await self._detector.signature()
        changed = bool(current != self._last)
        self._last = current
        return changed or notified
