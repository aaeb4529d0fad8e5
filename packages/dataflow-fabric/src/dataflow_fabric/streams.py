"""Stream connectors: Kafka (aiokafka, a consumer group) and WebSocket (the ``websockets``
client). Messages land in a bounded window (the last ``window_size`` messages and/or the last
``window_seconds`` seconds); ``fetch()`` returns the window, oldest first, and each batch of
new messages marks the source changed.

Kafka delivery is at-least-once: auto-commit is off, and the offsets of the messages a
product computation read are committed only after that computation succeeded. A worker that
dies before the commit gets those messages again (after a restart, or another group member
gets them after a rebalance). WebSocket has no acknowledgements: messages that arrive while
disconnected are lost; the client reconnects with exponential backoff.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from dataflow.errors import UnsupportedError

from .config import StreamSourceConfig
from .errors import FabricConfigError, SourceError

log = logging.getLogger("dataflow.fabric")


@dataclass
class Message:
    at: float                 # monotonic arrival time
    value: Any
    position: tuple[str, int, int] | None = None  # (topic, partition, offset) for Kafka


def stream_connector(name: str, config: StreamSourceConfig) -> StreamConnector:
    scheme = config.url.split("://", 1)[0].lower() if "://" in config.url else ""
    if scheme == "kafka":
        return KafkaConnector(name, config)
    if scheme in ("ws", "wss"):
        return WebSocketConnector(name, config)
    raise FabricConfigError(f"source {name!r}: stream url must be kafka://host:port/topic or "
                            f"ws(s)://..., got {config.url!r:.100}.", field="url")


class StreamConnector:
    """The window and its change signalling; subclasses feed it from ``_consume``."""

    poll_interval = 0.0  # the consumer signals changes itself
    leader_only = True   # under coordination only the leader consumes

    def __init__(self, name: str, config: StreamSourceConfig) -> None:
        if config.window_size is None and config.window_seconds is None:
            raise FabricConfigError(f"source {name!r}: give window_size and/or window_seconds.",
                                    field="window_size")
        if config.window_size is not None and config.window_size < 1:
            raise FabricConfigError(f"source {name!r}: window_size must be >= 1.", field="window_size")
        if config.format not in ("json", "text"):
            raise FabricConfigError(f"source {name!r}: format must be 'json' or 'text'.",
                                    field="format")
        self.name = name
        self.config = config
        self.on_change: Callable[[], None] | None = None
        self.window: collections.deque[Message] = collections.deque(maxlen=config.window_size)
        self.received = 0
        self._polled = 0
        self.connected = False
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        #: what the last read covered (acknowledged once the computation that read it succeeded)
        self.receipt: Any = None

    def decode(self, raw: bytes | str | None) -> Any:
        if raw is None:
            return None
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if self.config.format == "text":
            return text
        try:
            return json.loads(text)
        except ValueError:
            log.warning("source %s: a message is not JSON; skipped", self.name)
            raise

    def add(self, messages: list[Message]) -> None:
        if not messages:
            return
        self.window.extend(messages)
        self.received += len(messages)
        if self.on_change is not None:
            self.on_change()

    def _prune(self) -> None:
        if self.config.window_seconds is not None:
            horizon = time.monotonic() - self.config.window_seconds
            while self.window and self.window[0].at < horizon:
                self.window.popleft()

    async def open(self) -> None:
        if self._task is None:
            ready = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(ready),
                                                                name=f"fabric-stream-{self.name}")
            try:
                await asyncio.wait_for(ready.wait(), self.config.connect_timeout)
            except TimeoutError:
                raise SourceError(f"source {self.name!r}: could not connect to {self._where} within "
                                  f"{self.config.connect_timeout:g}s ({self.last_error or 'no answer'}); "
                                  "still retrying in the background.") from None

    @property
    def _where(self) -> str:
        return self.config.url.split("?")[0]

    async def _run(self, ready: asyncio.Event) -> None:
        delay = self.config.reconnect_initial
        while True:
            try:
                await self._consume(ready)
                delay = self.config.reconnect_initial
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.warning("source %s: stream lost (%s); reconnecting in %.2fs", self.name,
                            self.last_error, delay)
            self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.reconnect_max)

    async def _consume(self, ready: asyncio.Event) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def poll(self) -> bool:
        changed = self.received != self._polled
        self._polled = self.received
        return changed

    async def read(self, key: str | None, params: Mapping[str, Any]) -> Any:
        if key is not None or params:
            raise SourceError(f"source {self.name!r}: a stream is read whole: fetch() without a "
                              "key or parameters.")
        self._prune()
        messages = list(self.window)
        self.receipt = self._receipt(messages)
        return [m.value for m in messages]

    def _receipt(self, messages: list[Message]) -> Any:
        return None

    async def acknowledge(self, receipt: Any) -> None:
        """The computation that read ``receipt`` succeeded."""


class WebSocketConnector(StreamConnector):
    def __init__(self, name: str, config: StreamSourceConfig) -> None:
        super().__init__(name, config)
        try:
            import websockets  # noqa: F401
        except ImportError as exc:
            raise UnsupportedError(f"source {name!r} needs websockets, which is not installed.",
                                   field="url", fix="pip install 'dataflow-fabric[streams]'.") from exc

    async def _consume(self, ready: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.config.url, open_timeout=self.config.connect_timeout,
                           additional_headers=self.config.headers or None) as socket:
            self.connected, self.last_error = True, None
            ready.set()
            async for raw in socket:
                try:
                    value = self.decode(raw)
                except ValueError:
                    continue
                self.add([Message(time.monotonic(), value)])


class KafkaConnector(StreamConnector):
    def __init__(self, name: str, config: StreamSourceConfig) -> None:
        super().__init__(name, config)
        try:
            import aiokafka  # noqa: F401
        except ImportError as exc:
            raise UnsupportedError(f"source {name!r} needs aiokafka, which is not installed.",
                                   field="url", fix="pip install 'dataflow-fabric[streams]'.") from exc
        parts = urlsplit(config.url)
        self.servers = parts.netloc
        self.topic = parts.path.strip("/")
        if not self.servers or not self.topic or "/" in self.topic:
            raise FabricConfigError(f"source {name!r}: a Kafka url is kafka://host:port[,host:port]/"
                                    f"topic, got {config.url!r:.100}.", field="url")
        self.group = config.group_id or f"dataflow-fabric-{name}"
        self._consumer: Any = None
        self._committed: dict[tuple[str, int], int] = {}

    async def _consume(self, ready: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer

        session = self.config.session_timeout_ms
        consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.servers.split(","), group_id=self.group,
            enable_auto_commit=False, auto_offset_reset=self.config.start_from,
            session_timeout_ms=session, heartbeat_interval_ms=max(100, session // 3),
            rebalance_timeout_ms=session, request_timeout_ms=max(session + 5000, 10000))
        await consumer.start()
        self._consumer = consumer
        try:
            self.connected, self.last_error = True, None
            ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                now = time.monotonic()
                messages = []
                for tp, records in batches.items():
                    for record in records:
                        try:
                            value = self.decode(record.value)
                        except ValueError:
                            continue
                        messages.append(Message(now, value, (tp.topic, tp.partition, record.offset)))
                self.add(messages)
        finally:
            self._consumer = None
            await consumer.stop()

    def _receipt(self, messages: list[Message]) -> Any:
        top: dict[tuple[str, int], int] = {}
        for message in messages:
            if message.position is not None:
                topic, partition, offset = message.position
                top[(topic, partition)] = max(top.get((topic, partition), -1), offset)
        return top

    async def acknowledge(self, receipt: Any) -> None:
        from aiokafka import TopicPartition

        consumer = self._consumer
        if consumer is None or not receipt:
            return
        offsets = {TopicPartition(t, p): o + 1 for (t, p), o in receipt.items()
                   if o + 1 > self._committed.get((t, p), -1)}
        if not offsets:
            return
        await consumer.commit(offsets)
        for tp, offset in offsets.items():
            self._committed[(tp.topic, tp.partition)] = offset
