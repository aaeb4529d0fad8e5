"""The fabric runtime of one DataFlow instance: registry, cache, scheduler, change detection.

* Cache: one entry per (tenant, parameter combination) and product, holding the value's
  JSON rendering. Materialized products keep one entry per tenant; parameterized ones an
  LRU bounded by ``max_entries`` with a ``ttl``; virtual products are never cached.
* Single flight: concurrent requests for one missing key share one computation (a task
  of its own, so a client that goes away does not cancel it for the others).
* Change detection: ``db.on_write`` (express and node writes, after commit) and source
  polls / file events mark dependants: materialized products refresh after ``debounce``
  seconds (changes during a refresh schedule one more), parameterized entries are dropped.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dataflow import plugins
from dataflow.core import DataFlow
from dataflow.errors import DataFlowError, did_you_mean

from .config import SourceConfig
from .coordination import Coordinator
from .coordination import follower as coordinated
from .errors import FabricConfigError, ProductFailedError, SourceError, UnknownProductError
from .metrics import CIRCUIT_VALUES, FabricMetrics
from .params import cache_key, parse_query
from .products import ProductContext, ProductFunction, ProductSpec, build_spec, render
from .source import ReadLog, Source, current_reads
from .webhooks import MemoryNonces, NonceStore

log = logging.getLogger("dataflow.fabric")
Key = tuple[str | None, tuple[tuple[str, Any], ...]]
TRACE_LENGTH = 50
#: a failed refresh is retried after RETRY_BASE seconds, doubling up to RETRY_MAX
RETRY_BASE = 1.0
RETRY_MAX = 60.0


@dataclass
class Entry:
    value: Any
    body: bytes
    computed_at: float          # wall clock (seconds)
    born: float                 # monotonic, for TTL and age
    stale: bool = False         # computed from stale source data, or its refresh failed
    version: int = 0
    computed_at_iso: str = ""
    #: response headers per freshness, built on first use (the value never changes)
    headers: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.computed_at_iso = dt.datetime.fromtimestamp(self.computed_at, dt.UTC).isoformat()

    def raw_headers(self, freshness: str) -> list[tuple[bytes, bytes]]:
        found = self.headers.get(freshness)
        if found is None:
            found = self.headers[freshness] = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
                (b"x-fabric-freshness", freshness.encode()),
                (b"x-fabric-computed-at", self.computed_at_iso.encode()),
                (b"cache-control", b"no-cache"),
            ]
        return found


@dataclass
class Served:
    entry: Entry
    freshness: str  # fresh | stale | cold


@dataclass
class ProductState:
    spec: ProductSpec
    entries: collections.OrderedDict[Key, Entry] = field(default_factory=collections.OrderedDict)
    inflight: dict[Key, asyncio.Task[Entry]] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)      # what changed since the last refresh
    timer: asyncio.TimerHandle | None = None
    refreshing: asyncio.Task[None] | None = None
    trace: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=TRACE_LENGTH))
    subscribers: set[tuple[str | None, asyncio.Queue[bytes | None]]] = field(default_factory=set)
    last_error: str | None = None
    versions: int = 0
    #: tenants whose shared value the leader is refreshing (followers serve it marked stale)
    remote_pending: set[str | None] = field(default_factory=set)
    #: (token, seq) of the shared value each entry was loaded from (followers)
    shared_marks: dict[Key, tuple[int, int]] = field(default_factory=dict)
    failures: int = 0  # consecutive failed refreshes


class Fabric:
    """Sources, products and their runtime for one DataFlow instance (``fabric_of(db)``)."""

    def __init__(self, db: DataFlow) -> None:
        self.db = db
        self.sources: dict[str, Source] = {}
        self.products: dict[str, ProductState] = {}
        self.metrics = FabricMetrics()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = False
        self.tenant_aware = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop_listening: Any = None
        self._start_lock: asyncio.Lock | None = None
        #: nonces of accepted webhook calls (shared through Redis under Redis coordination)
        self.nonces: NonceStore = MemoryNonces()
        #: the worker's membership in a coordination scope (None: one process)
        self.coordinator: Coordinator | None = None
        self._serving = False  # start() finished

    # --- declaration ------------------------------------------------------------------
    def add_source(self, name: str, config: SourceConfig) -> Source:
        if not isinstance(name, str) or not name or name in self.sources:
            raise FabricConfigError(f"source name must be a new non-empty str, got {name!r:.60}.",
                                    field="name")
        kind = getattr(config, "kind", None)
        factories = plugins.source_connectors()
        factory = factories.get(str(kind))
        if factory is None:
            kinds = ", ".join(k for k in sorted(factories) if ":" not in k)
            raise FabricConfigError(f"no connector for source kind {kind!r:.40}; installed: {kinds}.",
                                    field="kind", fix="install the package that registers it.")
        source = Source(name, config, factory(name, config))
        self.sources[name] = source
        if self.started:
            self._spawn(self._open_source(source, fail_fast=False))
        return source

    def add_product(self, name: str, fn: ProductFunction, *, mode: str = "materialized",
                    depends_on: Sequence[str] = (), ttl: float = 60.0, max_entries: int = 1024,
                    debounce: float = 0.1, timeout: float | None = 30.0) -> ProductSpec:
        if name in self.products:
            raise FabricConfigError(f"a product named {name!r:.60} is already declared.", field="name")
        spec = build_spec(name, fn, mode, depends_on, ttl, max_entries, debounce, timeout)
        self.products[name] = ProductState(spec)
        return spec

    def state(self, name: str) -> ProductState:
        found = self.products.get(name)
        if found is None:
            raise UnknownProductError(f"no product named {name!r:.80}.{did_you_mean(name, self.products)}",
                                      fix=f"known products: {', '.join(self.products) or 'none'}.")
        return found

    # --- lifecycle --------------------------------------------------------------------
    async def start(self, *, dev_mode: bool = False, fail_fast: bool = True,
                    tenant_aware: bool = False, coordinator: Coordinator | None = None) -> None:
        """Open sources, listen for writes, start polling, and warm materialized products.

        With a ``coordinator`` only the leader polls and refreshes; followers serve the
        values it shares."""
        if self.started:
            return
        self._check_dependencies()
        self.loop = asyncio.get_running_loop()
        self.tenant_aware = tenant_aware
        self.started = True
        self.coordinator = coordinator  # a follower until the first election says otherwise
        try:
            for source in self.sources.values():
                if not self._standby(source):
                    await self._open_source(source, fail_fast)
            self._stop_listening = self.db.on_write(self._on_write)
            if coordinator is not None:
                await coordinator.start(self)
                if coordinator.nonces is not None:
                    self.nonces = coordinator.nonces
                for source in self.sources.values():
                    if self._leader_only(source) and not self._follows:
                        await self._open_source(source, fail_fast)
                if self._follows and not tenant_aware:
                    for state in coordinated.materialized(self):
                        await coordinated.load_shared(self, state, (None, ()))
            if not dev_mode and not tenant_aware:
                for state in self.products.values():
                    if state.spec.mode == "materialized" and not self._follows:
                        try:
                            await self._compute(state, (None, ()), None, {}, "start")
                        except ProductFailedError:
                            if fail_fast:
                                raise
        except BaseException:
            await self.stop()
            raise
        self._serving = True

    async def ensure_started(self) -> None:
        """Start lazily (an app mounted without ``db.start``): dev-mode style, no warm-up."""
        if self.started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self.started:
                await self.start(dev_mode=True, fail_fast=False, tenant_aware=self.tenant_aware)

    async def _open_source(self, source: Source, fail_fast: bool) -> None:
        connector = source.connector
        loop = asyncio.get_running_loop()
        connector.on_change = lambda: self._spawn(self._poll_source(source))
        try:
            await connector.open()
            source.opened = True
        except Exception as exc:
            source.breaker.record_failure()
            source.last_error = type(exc).__name__ if not isinstance(exc, DataFlowError) else exc.message
            if fail_fast:
                raise SourceError(f"source {source.name!r} could not be opened ({source.last_error}).",
                                  fix="fix the source, or start with fail_fast=False to serve "
                                  "without it.") from exc
            log.warning("source %s could not be opened: %s", source.name, source.last_error)
        if connector.poll_interval and connector.poll_interval > 0:
            task = loop.create_task(self._poll_forever(source), name=f"fabric-poll-{source.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self.coordinator is not None:
            coordinator, self.coordinator = self.coordinator, None
            self.nonces = MemoryNonces()
            await coordinator.stop()
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        for task in list(self._tasks):
            task.cancel()
        for state in self.products.values():
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            for task in [*state.inflight.values(), *([state.refreshing] if state.refreshing else [])]:
                task.cancel()
            for _, queue in list(state.subscribers):
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(None)  # ends the event stream
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for source in self.sources.values():
            try:
                await source.connector.close()
            except Exception:
                log.exception("closing source %s failed", source.name)
            source.opened = False
        self.started = self._serving = False

    def _check_dependencies(self) -> None:
        known = set(self.db.models) | set(self.sources)
        for state in self.products.values():
            for dep in state.spec.depends_on:
                if dep not in known:
                    raise FabricConfigError(
                        f"product {state.spec.name!r} depends on {dep!r:.60}, which is neither a "
                        f"model nor a source.{did_you_mean(dep, known)}", field="depends_on")

    def _spawn(self, coro: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            coro.close()
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- change detection -------------------------------------------------------------
    def _on_write(self, models: frozenset[str]) -> None:
        loop = self.loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.changed(models)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self.changed, models)

    async def _poll_forever(self, source: Source) -> None:
        interval = source.connector.poll_interval
        while True:
            await asyncio.sleep(interval if source.breaker.state == "closed"
                                else max(interval, min(source.breaker.retry_in(), 60.0)))
            if not self._follows:  # under coordination only the leader polls
                await self._poll_source(source)

    async def _poll_source(self, source: Source) -> None:
        if await source.poll():
            self.changed(frozenset((source.name,)))

    async def source_changed(self, name: str) -> None:
        """Source ``name`` says it changed (a webhook): revalidate it, refresh dependants."""
        if not self._follows:  # a follower only tells the leader, which revalidates
            await self.sources[name].poll()  # connectors that keep copies revalidate them
        self.changed(frozenset((name,)))

    def changed(self, names: frozenset[str], *, announce: bool = True) -> None:
        """Models or sources ``names`` changed: mark and schedule their dependants (and, under
        coordination, tell the other workers: the leader refreshes, all drop parameterized)."""
        follows = self._follows
        for state in self.products.values():
            hit = names.intersection(state.spec.depends_on)
            if not hit:
                continue
            mode = state.spec.mode
            if mode == "parameterized":
                state.entries.clear()
            elif mode == "materialized":
                if follows:
                    state.remote_pending.update(key[0] for key in state.entries)
                    continue
                state.dirty |= hit
                self._schedule(state)
        if announce and self.coordinator is not None:
            self._spawn(coordinated.announce(self, names))

    @property
    def _follows(self) -> bool:
        return self.coordinator is not None and not self.coordinator.is_leader

    @staticmethod
    def _leader_only(source: Source) -> bool:
        """Consumers (streams) run on the leader only: followers would take its partitions."""
        return bool(getattr(source.connector, "leader_only", False))

    def _standby(self, source: Source) -> bool:
        return self._follows and self._leader_only(source)

    # --- coordination (see coordination/follower.py) ----------------------------------
    def on_message(self, message: dict[str, Any]) -> None:
        coordinated.on_message(self, message)

    def on_leadership(self, leader: bool) -> None:
        if self._serving:  # won while starting: the warm-up computes everything anyway
            coordinated.on_leadership(self, leader)

    def on_resync(self) -> None:
        coordinated.on_resync(self)

    def _schedule(self, state: ProductState, delay: float | None = None) -> None:
        if state.timer is not None or state.refreshing is not None or self.loop is None:
            return  # a refresh is due (or running, and will look at dirty when done)
        state.timer = self.loop.call_later(state.spec.debounce if delay is None else delay,
                                           self._start_refresh, state)

    def _start_refresh(self, state: ProductState) -> None:
        state.timer = None
        assert self.loop is not None
        if self._follows:
            state.dirty = set()
            return
        state.refreshing = self.loop.create_task(self._refresh(state),
                                                 name=f"fabric-refresh-{state.spec.name}")

    async def _refresh(self, state: ProductState) -> None:
        trigger = sorted(state.dirty)
        state.dirty = set()
        keys = list(state.entries) or ([] if self.tenant_aware else [(None, ())])
        failed = False
        try:
            if self.coordinator is not None:  # every worker serves the old value marked stale
                state.remote_pending.update(key[0] for key in keys)
                await coordinated.mark_pending(self, state)
            for key in keys:
                try:
                    await self._compute(state, key, key[0], {}, "change", trigger)
                except ProductFailedError:
                    failed = True
                    old = state.entries.get(key)
                    if old is not None:
                        old.stale = True
        finally:
            state.refreshing = None
            if self.coordinator is not None:
                state.remote_pending.difference_update(key[0] for key in keys)
            state.failures = state.failures + 1 if failed else 0
            if state.dirty:
                self._schedule(state)
            elif failed:  # try again later, backing off, until it works or something changes
                state.dirty.update(trigger or ["retry"])
                self._schedule(state, min(RETRY_MAX, RETRY_BASE * 2 ** (state.failures - 1)))

    # --- serving ----------------------------------------------------------------------
    async def get(self, name: str, tenant: str | None,
                  query: Sequence[tuple[str, str]] = ()) -> Served:
        state = self.state(name)
        spec = state.spec
        kwargs = parse_query(spec.params, query) if spec.params else {}
        if not spec.params and query:
            parse_query((), query)  # names the unexpected parameter (DF-1102)
        if spec.mode == "virtual":
            live = await self._compute(state, None, tenant, kwargs, "request")
            return Served(live, "stale" if live.stale else "fresh")
        key: Key = (tenant, cache_key(kwargs))
        entry = state.entries.get(key)
        if entry is None and spec.mode == "materialized" and self._follows:
            entry = await coordinated.load_shared(self, state, key)
            if entry is None:  # the leader has no value for it yet: ask, and compute one here
                self._spawn(coordinated.want(self, state, tenant))
        if entry is not None:
            if spec.mode == "parameterized" and time.monotonic() - entry.born > spec.ttl:
                del state.entries[key]
            else:
                state.entries.move_to_end(key)
                self.metrics.product(name).hits.inc()
                pending = state.dirty or (state.remote_pending and tenant in state.remote_pending)
                return Served(entry, "stale" if entry.stale or pending else "fresh")
        self.metrics.product(name).misses.inc()
        task = state.inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._compute(state, key, tenant, kwargs, "request"))
            state.inflight[key] = task
            task.add_done_callback(lambda _t: state.inflight.pop(key, None))
        entry = await asyncio.shield(task)
        return Served(entry, "stale" if entry.stale else "cold")

    async def _compute(self, state: ProductState, key: Key | None, tenant: str | None,
                       kwargs: dict[str, Any], trigger: str,
                       inputs: Sequence[str] = ()) -> Entry:
        spec = state.spec
        reads = ReadLog()
        token = current_reads.set(reads)
        started = time.monotonic()
        record: dict[str, Any] = {
            "started_at": dt.datetime.now(dt.UTC).isoformat(), "trigger": trigger,
            "inputs_changed": list(inputs), "tenant": tenant}
        try:
            ctx = ProductContext(self.db, self.sources, spec.name, tenant)
            async with asyncio.timeout(spec.timeout):
                if tenant is not None:
                    async with self.db.tenant(tenant):
                        value = await spec.fn(ctx, **kwargs)
                else:
                    value = await spec.fn(ctx, **kwargs)
            body = render(value)
        except Exception as exc:  # TimeoutError from the product's timeout included
            elapsed = time.monotonic() - started
            code = exc.code if isinstance(exc, DataFlowError) else "DF-1103"
            log.exception("product %s failed (%s)", spec.name, trigger)
            self.metrics.refresh_failures.labels(spec.name).inc()
            self.metrics.refresh_seconds.labels(spec.name).observe(elapsed)
            state.last_error = f"{code} {type(exc).__name__}"
            record.update(duration_ms=round(elapsed * 1000, 3), error={
                "code": code, "type": type(exc).__name__}, sources_read=sorted(reads.sources))
            if spec.mode != "virtual":
                state.trace.append(record)
            raise ProductFailedError(
                f"product {spec.name!r} failed; the error is logged on the server.") from exc
        finally:
            current_reads.reset(token)
        elapsed = time.monotonic() - started
        self.metrics.refresh_seconds.labels(spec.name).observe(elapsed)
        state.last_error = None
        state.versions += 1
        entry = Entry(value, body, time.time(), time.monotonic(), stale=bool(reads.stale),
                      version=state.versions)
        record.update(duration_ms=round(elapsed * 1000, 3), error=None,
                      sources_read=sorted(reads.sources), stale_sources=sorted(reads.stale))
        if spec.mode != "virtual":
            state.trace.append(record)
        if key is not None and spec.mode != "virtual":
            state.entries[key] = entry
            state.entries.move_to_end(key)
            while len(state.entries) > spec.max_entries:  # tenants x parameter combinations
                state.entries.popitem(last=False)
            if spec.mode == "materialized":
                self._publish(state, tenant, entry)
                if self.coordinator is not None and self.coordinator.is_leader:
                    await coordinated.share(self, state, tenant, entry)
        if reads.receipts:
            await self._acknowledge(reads.receipts)
        return entry

    async def _acknowledge(self, receipts: dict[str, Any]) -> None:
        """A computation succeeded: stream sources may commit what it read (at-least-once)."""
        for name, receipt in receipts.items():
            try:
                await self.sources[name].connector.acknowledge(receipt)  # type: ignore[attr-defined]
            except Exception as exc:
                log.warning("source %s: acknowledging messages failed (%s); they may be "
                            "delivered again", name, type(exc).__name__)

    # --- events -----------------------------------------------------------------------
    def subscribe(self, state: ProductState, tenant: str | None) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)
        state.subscribers.add((tenant, queue))
        return queue

    def unsubscribe(self, state: ProductState, tenant: str | None,
                    queue: asyncio.Queue[bytes | None]) -> None:
        state.subscribers.discard((tenant, queue))

    def _publish(self, state: ProductState, tenant: str | None, entry: Entry) -> None:
        message = (f"event: refresh\nid: {entry.version}\ndata: ".encode() + entry.body + b"\n\n")
        for who, queue in list(state.subscribers):
            if who != tenant:
                continue
            if queue.full():  # a slow reader gets the newest values, not a backlog
                queue.get_nowait()
            queue.put_nowait(message)

    # --- observability ----------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        sources = {name: s.health() | ({"standby": True} if self._standby(s) else {})
                   for name, s in self.sources.items()}
        products = {}
        healthy = all(s.healthy or self._standby(s) for s in self.sources.values())
        for name, state in self.products.items():
            ages = [now - e.born for e in state.entries.values()]
            failing = state.last_error is not None and state.spec.mode == "materialized"
            healthy = healthy and not failing
            products[name] = {
                "mode": state.spec.mode,
                "age": round(min(ages), 3) if ages else None,
                "cached_entries": len(state.entries),
                "refresh_pending": bool(state.dirty) or state.timer is not None,
                "refreshing": state.refreshing is not None,
                "last_error": state.last_error,
            }
        report = {"status": "ok" if healthy else "unhealthy", "started": self.started,
                  "sources": sources, "products": products}
        if self.coordinator is not None:
            report["coordination"] = self.coordinator.health()
        return healthy, report

    def render_metrics(self) -> bytes:
        m = self.metrics
        for name, source in self.sources.items():
            state = source.breaker.state
            m.source_up.labels(name).set(0 if state == "open" else 1)
            m.source_circuit.labels(name).set(CIRCUIT_VALUES[state])
            m.source_failures.labels(name).set(source.breaker.failures)
        return m.render()


_fabrics: weakref.WeakKeyDictionary[DataFlow, Fabric] = weakref.WeakKeyDictionary()


def fabric_of(db: DataFlow) -> Fabric:
    """The fabric runtime of ``db`` (created on first use)."""
    found = _fabrics.get(db)
    if found is None:
        found = _fabrics[db] = Fabric(db)
    return found
