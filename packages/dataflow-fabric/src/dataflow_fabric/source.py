"""A registered source: its connector behind a circuit breaker and a staleness policy.

Connectors (from the ``dataflow_source_connectors`` hook) are plain objects with
``async open()``, ``async read(key, params) -> data``, ``async poll() -> bool`` (did the
data change since the last poll? cheap) and ``async close()``; a connector that can see
changes itself calls the ``on_change`` callback the fabric sets on it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dataflow.errors import DataFlowError, UnsupportedError

from .breaker import CircuitBreaker
from .config import SourceConfig, StalenessPolicy
from .errors import CircuitOpenError, SourceError, StaleDataError

log = logging.getLogger("dataflow.fabric")


class Connector(Protocol):
    poll_interval: float
    on_change: Callable[[], None] | None

    async def open(self) -> None: ...

    async def read(self, key: str | None, params: Mapping[str, Any]) -> Any: ...

    async def poll(self) -> bool: ...

    async def close(self) -> None: ...


@dataclass
class ReadLog:
    """What one product computation read: sources, and which of them were served stale."""

    sources: set[str] = field(default_factory=set)
    #: what stream sources handed out, acknowledged when the computation succeeds
    receipts: dict[str, Any] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)


current_reads: contextvars.ContextVar[ReadLog | None] = contextvars.ContextVar(
    "dataflow_fabric_reads", default=None)


@dataclass
class _Copy:
    value: Any
    at: float  # monotonic time of the read that produced it


class Source:
    def __init__(self, name: str, config: SourceConfig, connector: Connector) -> None:
        self.name = name
        self.config = config
        self.connector = connector
        self.breaker = CircuitBreaker(config.circuit)
        self.policy: StalenessPolicy = config.staleness
        self._copies: dict[tuple[str | None, str], _Copy] = {}
        self.last_success: float | None = None  # wall clock
        self.last_error: str | None = None
        self.opened = False

    @property
    def healthy(self) -> bool:
        return self.opened and self.breaker.state != "open"

    async def fetch(self, key: str | None = None, **params: Any) -> Any:
        """The source's data at ``key`` (a REST path, a table, a JSON key of a file)."""
        reads = current_reads.get()
        if reads is not None:
            reads.sources.add(self.name)
        slot = (key, json.dumps(params, sort_keys=True, default=repr) if params else "")
        if self.breaker.allow():
            try:
                value = await self.connector.read(key, params)
            except Exception as exc:
                self.breaker.record_failure()
                self.last_error = _describe(exc)
                log.warning("source %s: read of %r failed: %s", self.name, key, self.last_error)
                return self._fallback(slot, reads, exc)
            if reads is not None and hasattr(self.connector, "acknowledge"):
                reads.receipts[self.name] = getattr(self.connector, "receipt", None)
            self.breaker.record_success()
            self.last_success = time.time()
            self.last_error = None
            self.opened = True
            self._copies[slot] = _Copy(value, time.monotonic())
            return value
        return self._fallback(slot, reads, CircuitOpenError(
            f"source {self.name!r} is unavailable (circuit open, next trial in "
            f"{self.breaker.retry_in():.0f}s).", fix="check the source's health at /fabric/_health."))

    def _fallback(self, slot: tuple[str | None, str], reads: ReadLog | None,
                  exc: Exception) -> Any:
        copy = self._copies.get(slot)
        error = exc if isinstance(exc, DataFlowError) else SourceError(
            f"source {self.name!r} could not be read ({type(exc).__name__}).")
        if copy is None:
            raise error from exc
        age = time.monotonic() - copy.at
        if self.policy.max_age is not None and age > self.policy.max_age and self.policy.on_stale == "fail":
            raise StaleDataError(
                f"source {self.name!r} is down and its last good data is {age:.0f}s old "
                f"(max_age={self.policy.max_age:g}s).", fix="restore the source or relax its "
                "StalenessPolicy.") from exc
        if reads is not None:
            reads.stale.add(self.name)
        return copy.value

    async def database(self) -> Any:
        """A database source's own DataFlow instance, to write with (``read_only=False``)."""
        opener = getattr(self.connector, "database", None)
        if opener is None:
            raise UnsupportedError(f"source {self.name!r} is a {self.config.kind} source, not a "
                                   "database.", field="source")
        return await opener()

    async def poll(self) -> bool:
        """Ask the connector whether the data changed (behind the breaker)."""
        if not self.breaker.allow():
            return False
        try:
            changed = await self.connector.poll()
        except Exception as exc:
            self.breaker.record_failure()
            self.last_error = _describe(exc)
            log.warning("source %s: poll failed: %s", self.name, self.last_error)
            return False
        self.breaker.record_success()
        self.last_success = time.time()
        self.last_error = None
        self.opened = True
        return changed

    def health(self) -> dict[str, Any]:
        return {
            "kind": self.config.kind,
            "healthy": self.healthy,
            "opened": self.opened,
            "circuit": self.breaker.state,
            "consecutive_failures": self.breaker.failures,
            "last_success_age": None if self.last_success is None
            else round(time.time() - self.last_success, 3),
            "last_error": self.last_error,
        }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DataFlowError):
        return f"{exc.code} {exc.message}"
    return type(exc).__name__
