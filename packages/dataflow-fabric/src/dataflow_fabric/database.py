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

    async def open(self) -> None:
        if self.db is not None:
            return
        db = DataFlow(self.config.url, name=f"fabric_source_{self.name}_{next(_ids)}",
                      auto_migrate=False, existing_schema_mode=True)
        try:
            models = await db.register_schema_as_models(
                list(self.config.tables) if self.config.tables else None)
            self._tables = {db.get_model(m).table: m for m in models}
            scheme = db.url.scheme.split("+")[0]
            factory = (plugins.source_connectors().get(f"database:{scheme}")
                       if self.config.change_detection == "auto" else None)
            self._detector = (factory(db, list(self._tables)) if factory is not None
                              else CountSignature(db, list(self._tables.values())))
            self._last = await self._detector.signature()
            if self.config.notify_channel:
                listen = getattr(self._detector, "listen", None)
                if listen is None:
                    raise UnsupportedError(
                        f"source {self.name!r}: {scheme} has no change notifications to listen to.",
                        field="notify_channel", fix="leave notify_channel unset: changes are polled.")
                await listen(self.config.notify_channel, self._notified)
        except BaseException:
            closer = getattr(self._detector, "close", None)
            if closer is not None:
                await closer()
            await db.close()
            raise
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
        if self.db is not None:
            db, self.db = self.db, None
            closer = getattr(self._detector, "close", None)
            if closer is not None:
                await closer()
            await db.close()

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
