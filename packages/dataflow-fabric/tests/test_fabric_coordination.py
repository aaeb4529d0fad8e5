"""Coordination in one process: two workers (two DataFlow instances on one SQLite file, each
serving on its own port) in one scope, over the real Redis and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from coordination_support import coordination_backend
from fabric_support import eventually

from dataflow import DataFlow
from dataflow.fabric import FabricConfigError, FileSourceConfig, ProductContext, fabric_of, sign_webhook
from dataflow_fabric.coordination import SharedEntry

LEASE = 3.0  # renewed every LEASE/3: a loaded 2-core CI machine never misses a whole lease


@dataclass
class Worker:
    db: DataFlow
    client: httpx.AsyncClient
    runs: list[str]

    async def health(self) -> dict[str, Any]:
        return dict((await self.client.get("/_health")).json())

    async def total(self) -> tuple[int, str]:
        response = await self.client.get("/total")
        assert response.status_code == 200, response.text
        return int(response.json()), response.headers["x-fabric-freshness"]


@pytest.fixture(params=["redis", "postgresql"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> AsyncIterator[tuple[list[Worker], str, str]]:
    monkeypatch.setenv("HOOK_SECRET", "shared-secret")
    (tmp_path / "feed.json").write_text("[1]")
    async with coordination_backend(request.param) as (coordination, scope):
        workers: list[Worker] = []
        try:
            for n in range(2):
                db = DataFlow(f"sqlite:///{tmp_path / 'shared.db'}", name=f"worker{n}")

                @db.model
                class Item:
                    qty: int

                db.source("feed", FileSourceConfig(tmp_path / "feed.json", watch=False,
                                                   poll_interval=0, webhook_secret_env="HOOK_SECRET"))
                runs: list[str] = []

                def product(db: DataFlow, runs: list[str]) -> None:
                    @db.product("total", depends_on=["Item", "feed"], debounce=0)
                    async def total(ctx: ProductContext) -> int:
                        runs.append(ctx.db.name)
                        items = await ctx.db.express.list("Item")
                        return sum(i["qty"] for i in items) + sum(await ctx.source("feed").fetch())

                product(db, runs)
                handle = await db.start(port=0, coordination=coordination, lease_ttl=LEASE,
                                        coordination_scope=scope)
                workers.append(Worker(db, httpx.AsyncClient(base_url=handle.url, timeout=10), runs))
            yield workers, coordination, scope
        finally:
            for worker in workers:
                await worker.client.aclose()
                await worker.db.stop()
                await worker.db.close()


async def test_one_leader_serves_everyone_and_changes_from_any_worker_reach_it(
        cluster: tuple[list[Worker], str, str]) -> None:
    (a, b), _, _ = cluster
    ha, hb = (await a.health())["coordination"], (await b.health())["coordination"]
    assert (ha["role"], hb["role"]) == ("leader", "follower")
    assert isinstance(ha["token"], int) and hb["token"] is None
    assert await a.total() == (1, "fresh")
    assert await b.total() == (1, "fresh")  # the leader's shared value; the follower computed nothing
    assert b.runs == [] and a.runs == ["worker0"]

    await b.db.express.create("Item", {"qty": 10})  # a write on the follower

    async def both_see(value: int) -> bool:
        return (await a.total())[0] == value and (await b.total()) == (value, "fresh")

    await eventually(lambda: both_see(11))
    assert b.runs == []  # only the leader refreshes
    applied = await fabric_of(a.db).coordinator.applied()  # type: ignore[union-attr]
    assert len(applied) == len(set(applied)) == len(a.runs)


async def test_a_webhook_on_a_follower_refreshes_through_the_leader_and_nonces_are_shared(
        cluster: tuple[list[Worker], str, str], tmp_path: Path) -> None:
    (a, b), _, _ = cluster
    assert await b.total() == (1, "fresh")
    (tmp_path / "feed.json").write_text("[1, 2, 3]")
    ts, nonce, body = str(int(time.time())), secrets.token_hex(12), b"{}"
    headers = {"X-DataFlow-Timestamp": ts, "X-DataFlow-Nonce": nonce,
               "X-DataFlow-Signature": sign_webhook("shared-secret", ts, nonce, body)}
    assert (await b.client.post("/_webhooks/feed", content=body, headers=headers)).status_code == 202

    async def refreshed() -> bool:
        return await b.total() == (6, "fresh")

    await eventually(refreshed)
    replay = await a.client.post("/_webhooks/feed", content=body, headers=headers)
    assert replay.status_code == 401  # the nonce was spent on the other worker
    assert b.runs == []


async def test_a_deposed_leaders_write_is_fenced_off(cluster: tuple[list[Worker], str, str]) -> None:
    (a, b), _, _ = cluster
    leader = fabric_of(a.db).coordinator
    assert leader is not None and leader.token is not None
    before = await leader.read_entry("total", None)
    assert before is not None
    stale_token = leader.token - 1
    late = SharedEntry(b"999", time.time(), stale_token, 10**6, False, False)
    assert await leader.write_entry("total", None, late) is False
    replayed = SharedEntry(b"999", time.time(), leader.token, before.seq, False, False)
    assert await leader.write_entry("total", None, replayed) is False  # same (token, seq): once
    assert (await leader.read_entry("total", None)) == before
    assert await b.total() == (1, "fresh")


async def test_a_follower_takes_over_within_the_lease(cluster: tuple[list[Worker], str, str]) -> None:
    (a, b), _, _ = cluster
    old_token = (await a.health())["coordination"]["token"]
    await a.client.aclose()
    await a.db.stop()  # releases the lease; a crash is the multi-process test's job
    started = asyncio.get_running_loop().time()

    async def leads() -> bool:
        return bool((await b.health())["coordination"]["role"] == "leader")

    await eventually(leads, timeout=LEASE * 3)
    assert asyncio.get_running_loop().time() - started < LEASE * 1.5
    assert (await b.health())["coordination"]["token"] > old_token
    await b.db.express.create("Item", {"qty": 5})

    async def refreshed() -> bool:
        return await b.total() == (6, "fresh")

    await eventually(refreshed)
    assert "worker1" in b.runs
    a.client = httpx.AsyncClient()  # closed again by the fixture


async def test_bad_coordination_settings_are_refused(tmp_path: Path) -> None:
    db = DataFlow(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(FabricConfigError, match="unknown coordination") as info:
            await db.start(port=0, coordination="zookeeper")
        assert info.value.field == "coordination"
        with pytest.raises(FabricConfigError, match="instance's own PostgreSQL"):
            await db.start(port=0, coordination="postgresql")
        with pytest.raises(FabricConfigError, match="lease_ttl"):
            await db.start(port=0, coordination="redis", lease_ttl=0)
    finally:
        await db.stop()
        await db.close()


# --- a Redis restart ---------------------------------------------------------------------------
class OwnRedis:
    """A redis-server of this test's own (no persistence) that can be stopped and started again
    on the same port: the shared Redis is never restarted."""

    def __init__(self, directory: Path) -> None:
        import shutil
        import socket

        self.binary = shutil.which("redis-server")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.directory = directory
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        import redis.asyncio as aioredis

        assert self.binary is not None
        self.process = await asyncio.create_subprocess_exec(
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        client = aioredis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    await client.ping()
                    return
                except Exception:
                    await asyncio.sleep(0.05)
            raise AssertionError("redis-server did not come up")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    from coordination_support import unreachable

    server = OwnRedis(tmp_path)
    if server.binary is None:
        unreachable("redis-server (for the restart test)", FileNotFoundError("redis-server"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_workers_recover_from_a_redis_restart(own_redis: OwnRedis, tmp_path: Path) -> None:
    workers: list[Worker] = []
    try:
        for n in range(2):
            db = DataFlow(f"sqlite:///{tmp_path / 'shared.db'}", name=f"worker{n}")

            @db.model
            class Item:
                qty: int

            runs: list[str] = []

            def product(db: DataFlow, runs: list[str]) -> None:
                @db.product("total", depends_on=["Item"], debounce=0)
                async def total(ctx: ProductContext) -> int:
                    runs.append(ctx.db.name)
                    return sum(i["qty"] for i in await ctx.db.express.list("Item"))

            product(db, runs)
            handle = await db.start(port=0, coordination=own_redis.url, lease_ttl=LEASE,
                                    coordination_scope="restart-test")
            workers.append(Worker(db, httpx.AsyncClient(base_url=handle.url, timeout=10), runs))
        a, b = workers
        assert [(await w.health())["coordination"]["role"] for w in workers] == ["leader", "follower"]
        assert await b.total() == (0, "fresh")
        await own_redis.stop()
        await a.db.express.create("Item", {"qty": 3})  # while Redis is down: only a knows
        # nobody may act as leader once its lease cannot be renewed
        async def no_leader() -> bool:
            return all([(await w.health())["coordination"]["role"] == "follower" for w in workers])

        await eventually(no_leader, timeout=LEASE * 3)
        assert (await b.total())[0] == 0  # still served from what it holds
        await own_redis.start()  # empty: no lease, no shared values, a fresh token counter

        async def one_leader() -> bool:
            roles = [(await w.health())["coordination"]["role"] for w in workers]
            return sorted(roles) == ["follower", "leader"]

        await eventually(one_leader, timeout=LEASE * 5)
        runs_before = {w.db.name: list(w.runs) for w in workers}
        await b.db.express.create("Item", {"qty": 4})

        async def converged() -> bool:
            return all([await w.total() == (7, "fresh") for w in workers])

        await eventually(converged, timeout=10)
        roles = [(await w.health())["coordination"]["role"] for w in workers]
        follower = workers[roles.index("follower")]
        assert follower.runs == runs_before[follower.db.name]  # only the leader refreshed
    finally:
        for worker in workers:
            await worker.client.aclose()
            await worker.db.stop()
            await worker.db.close()


async def test_a_webhook_is_refused_while_the_nonce_store_is_down(
        own_redis: OwnRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "shared-secret")
    (tmp_path / "feed.json").write_text("[1]")
    db = DataFlow("sqlite://:memory:")
    db.source("feed", FileSourceConfig(tmp_path / "feed.json", watch=False, poll_interval=0,
                                       webhook_secret_env="HOOK_SECRET"))
    handle = await db.start(port=0, coordination=own_redis.url, lease_ttl=LEASE,
                            coordination_scope="nonce-test")
    try:
        async with httpx.AsyncClient(base_url=handle.url, timeout=10) as client:
            await own_redis.stop()
            ts, nonce, body = str(int(time.time())), secrets.token_hex(12), b"{}"
            headers = {"X-DataFlow-Timestamp": ts, "X-DataFlow-Nonce": nonce,
                       "X-DataFlow-Signature": sign_webhook("shared-secret", ts, nonce, body)}
            response = await client.post("/_webhooks/feed", content=body, headers=headers)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "DF-1111"
    finally:
        await db.stop()
        await db.close()


async def test_followers_load_a_shared_value_with_a_lower_mark_after_the_store_was_reset(
        cluster: tuple[list[Worker], str, str]) -> None:
    """A Redis restarted without persistence starts tokens again from 1: followers compare
    marks for equality, so the reset store's first value is still loaded."""
    (a, b), coordination, scope = cluster
    leader = fabric_of(a.db).coordinator
    assert leader is not None and leader.token is not None
    await b.db.express.create("Item", {"qty": 1})
    await b.db.express.create("Item", {"qty": 1})

    async def settled() -> bool:
        product = (await a.health())["products"]["total"]
        idle = not product["refresh_pending"] and not product["refreshing"]
        return idle and await b.total() == (3, "fresh")

    await eventually(settled)
    held = await leader.read_entry("total", None)
    assert held is not None and held.seq >= 2
    if coordination.startswith("redis"):  # the store forgets the value, as a restart would
        await leader.client.delete(f"{scope}:entry:total:-")  # type: ignore[attr-defined]
    else:
        await leader.query("execute", "DELETE FROM dataflow_fabric_cache WHERE scope = $1",  # type: ignore[attr-defined]
                           scope)
    reset = SharedEntry(b"42", time.time(), leader.token, 1, False, False)
    assert await leader.write_entry("total", None, reset)
    await leader.publish({"kind": "refreshed", "product": "total", "tenant": None})

    async def loaded() -> bool:
        return await b.total() == (42, "fresh")

    await eventually(loaded)
