"""Products: materialized, parameterized, virtual; change-driven refresh; single flight; errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fabric_support import Serve, eventually

from dataflow import DataFlow
from dataflow.fabric import FabricConfigError, ProductContext


async def test_materialized_is_computed_at_start_and_refreshed_after_a_write(
        db: DataFlow, serve: Serve) -> None:
    calls: list[int] = []

    @db.product("stats", depends_on=["User"], debounce=0.01)
    async def stats(ctx: ProductContext) -> dict[str, int]:
        calls.append(1)
        return {"users": await ctx.express.count("User")}

    await db.express.create("User", {"name": "a"})
    client = await serve()
    assert len(calls) == 1  # warmed by start, before any request
    first = await client.get("/stats")
    assert first.status_code == 200 and first.json() == {"users": 1}
    assert first.headers["x-fabric-freshness"] == "fresh"
    assert "x-fabric-computed-at" in first.headers
    assert len(calls) == 1

    await db.express.create("User", {"name": "b"})

    async def refreshed() -> bool:
        return (await client.get("/stats")).json() == {"users": 2}

    await eventually(refreshed)
    # the trace names the change that caused the refresh
    trace = (await client.get("/stats/_trace")).json()["refreshes"]
    assert trace[0]["trigger"] == "change" and trace[0]["inputs_changed"] == ["User"]


async def test_dev_mode_skips_the_warm_up(db: DataFlow, serve: Serve) -> None:
    calls: list[int] = []

    @db.product("stats", depends_on=["User"])
    async def stats(ctx: ProductContext) -> int:
        calls.append(1)
        return await ctx.express.count("User")

    client = await serve(dev_mode=True)
    assert calls == []
    response = await client.get("/stats")
    assert response.json() == 0 and response.headers["x-fabric-freshness"] == "cold"
    assert (await client.get("/stats")).headers["x-fabric-freshness"] == "fresh"
    assert calls == [1]


async def test_writes_in_a_burst_are_debounced_into_few_refreshes(db: DataFlow, serve: Serve) -> None:
    calls: list[int] = []

    @db.product("stats", depends_on=["User"], debounce=0.2)
    async def stats(ctx: ProductContext) -> int:
        calls.append(1)
        return await ctx.express.count("User")

    client = await serve()
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(20):
        await db.express.create("User", {"name": f"u{i}"})
    windows = int((loop.time() - started) / 0.2) + 1  # debounce windows the burst spanned

    async def settled() -> bool:
        return (await client.get("/stats")).json() == 20

    await eventually(settled)
    assert len(calls) <= 1 + windows + 1 < 21  # start, one refresh per window, one after the last


async def test_refresh_waits_for_commit_and_skips_rolled_back_writes(db: DataFlow, serve: Serve) -> None:
    @db.product("stats", depends_on=["User"], debounce=0.0)
    async def stats(ctx: ProductContext) -> int:
        return await ctx.express.count("User")

    client = await serve()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.transaction():
            await db.express.create("User", {"name": "gone"})
            raise Boom
    await asyncio.sleep(0.1)
    trace = (await client.get("/stats/_trace")).json()["refreshes"]
    assert [t["trigger"] for t in trace] == ["start"]  # the rollback announced nothing

    async with db.transaction():
        await db.express.create("User", {"name": "kept"})
        await asyncio.sleep(0.1)
        inside = (await client.get("/stats/_trace")).json()["refreshes"]
        assert [t["trigger"] for t in inside] == ["start"]  # not before the commit

    async def refreshed() -> bool:
        return (await client.get("/stats")).json() == 1

    await eventually(refreshed)


async def test_node_writes_refresh_dependants(db: DataFlow, serve: Serve) -> None:
    from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder

    @db.product("stats", depends_on=["User"], debounce=0.0)
    async def stats(ctx: ProductContext) -> int:
        return await ctx.express.count("User")

    client = await serve()
    wf = WorkflowBuilder()
    wf.add_node("UserCreateNode", "add", {"name": "from a node"})
    await AsyncLocalRuntime().execute(wf.build())

    async def refreshed() -> bool:
        return (await client.get("/stats")).json() == 1

    await eventually(refreshed)


async def test_parameterized_validates_caches_per_combination_and_bounds_the_cache(
        db: DataFlow, serve: Serve) -> None:
    calls: list[tuple[str, int]] = []

    @db.product("search", mode="parameterized", depends_on=["User"], max_entries=2)
    async def search(ctx: ProductContext, q: str = "", limit: int = 10) -> list[str]:
        calls.append((q, limit))
        rows = await ctx.express.list("User", {"name": {"$like": f"%{q}%"}}, limit=limit)
        return [r["name"] for r in rows]

    await db.express.bulk_create("User", [{"name": n} for n in ("ann", "bob", "anna")])
    client = await serve()
    assert calls == []  # parameterized products are computed on request

    r = await client.get("/search", params={"q": "ann"})
    assert r.json() == ["ann", "anna"] and r.headers["x-fabric-freshness"] == "cold"
    r = await client.get("/search", params={"q": "ann", "limit": "10"})  # the default, spelled out
    assert r.headers["x-fabric-freshness"] == "fresh"
    assert calls == [("ann", 10)]

    bad = await client.get("/search", params={"limit": "ten"})
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "limit" and bad.json()["error"]["code"] == "DF-1102"
    unknown = await client.get("/search", params={"qq": "x"})
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "qq"

    await client.get("/search", params={"q": "b"})
    await client.get("/search", params={"q": "o"})  # evicts the least recently used: q=ann
    await client.get("/search", params={"q": "ann"})
    assert calls.count(("ann", 10)) == 2

    await db.express.create("User", {"name": "annabel"})  # a change drops the cached entries

    async def recomputed() -> bool:
        return (await client.get("/search", params={"q": "ann"})).json() == ["ann", "anna", "annabel"]

    await eventually(recomputed)


async def test_parameterized_entries_expire_after_their_ttl(db: DataFlow, serve: Serve) -> None:
    calls: list[int] = []

    @db.product("now", mode="parameterized", ttl=0.5)
    async def now(ctx: ProductContext, n: int = 1) -> int:
        calls.append(n)
        return n

    client = await serve()
    await client.get("/now")
    await client.get("/now")
    assert calls == [1]
    await asyncio.sleep(0.6)
    assert (await client.get("/now")).headers["x-fabric-freshness"] == "cold"
    assert calls == [1, 1]


async def test_virtual_is_computed_on_every_request(db: DataFlow, serve: Serve) -> None:
    calls: list[int] = []

    @db.product("live", mode="virtual", depends_on=["User"])
    async def live(ctx: ProductContext) -> int:
        calls.append(1)
        return len(calls)

    client = await serve()
    assert calls == []
    assert [(await client.get("/live")).json() for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("mode", ["materialized", "parameterized"])
async def test_concurrent_requests_for_a_cold_key_compute_once(
        db: DataFlow, serve: Serve, mode: str) -> None:
    calls: list[int] = []
    release = asyncio.Event()

    async def slow(ctx: ProductContext) -> str:
        calls.append(1)
        await release.wait()
        return "done"

    db.product("slow", mode=mode)(slow)
    client = await serve(dev_mode=True)
    requests = [asyncio.create_task(client.get("/slow")) for _ in range(20)]

    async def one_started() -> bool:
        return len(calls) >= 1

    await eventually(one_started)
    await asyncio.sleep(0.1)  # give the other requests time to arrive
    release.set()
    responses = await asyncio.gather(*requests)
    assert {r.json() for r in responses} == {"done"}
    assert calls == [1]


async def test_a_failing_product_is_a_500_without_details_and_keeps_its_last_good_value(
        db: DataFlow, serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    @db.product("fragile", depends_on=["User"], debounce=0.0)
    async def fragile(ctx: ProductContext) -> int:
        n = await ctx.express.count("User")
        if n == 1:
            raise RuntimeError("secret connection string postgres://admin:hunter2@db")
        return n

    @db.product("broken", mode="virtual")
    async def broken(ctx: ProductContext) -> int:
        raise KeyError("internal detail")

    client = await serve()
    assert (await client.get("/fragile")).json() == 0
    await db.express.create("User", {"name": "x"})

    async def failed() -> bool:
        trace = (await client.get("/fragile/_trace")).json()["refreshes"]
        return trace[0]["error"] is not None

    await eventually(failed)
    served = await client.get("/fragile")
    assert served.status_code == 200 and served.json() == 0
    assert served.headers["x-fabric-freshness"] == "stale"
    assert "hunter2" in caplog.text  # logged server-side ...

    r = await client.get("/broken")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "DF-1103"
    assert "internal detail" not in r.text and "Traceback" not in r.text and "KeyError" not in r.text
    trace = (await client.get("/fragile/_trace")).json()["refreshes"]
    assert "hunter2" not in str(trace)  # ... never served
    health = await client.get("/_health")
    assert health.status_code == 503 and health.json()["products"]["fragile"]["last_error"]


async def test_unknown_product_is_404(db: DataFlow, serve: Serve) -> None:
    @db.product("stats")
    async def stats(ctx: ProductContext) -> int:
        return 1

    client = await serve()
    r = await client.get("/stat")
    assert r.status_code == 404 and r.json()["error"]["code"] == "DF-1101"
    assert "stats" in r.json()["error"]["message"]  # did you mean
    assert (await client.get("/stats", params={"x": "1"})).status_code == 400


def test_declarations_are_checked(db: DataFlow) -> None:
    async def takes_params(ctx: ProductContext, q: str = "") -> str:
        return q

    with pytest.raises(FabricConfigError, match="parameterized"):
        db.product("p", mode="materialized")(takes_params)
    with pytest.raises(FabricConfigError, match="mode"):
        db.product("p", mode="eager")(takes_params)
    with pytest.raises(FabricConfigError, match="name"):
        db.product("_health")(takes_params)

    def not_async(ctx: Any) -> int:
        return 1

    with pytest.raises(FabricConfigError, match="async"):
        db.product("p")(not_async)

    async def odd_type(ctx: ProductContext, q: dict[str, int] | None = None) -> None:
        return None

    with pytest.raises(FabricConfigError, match="q"):
        db.product("p", mode="parameterized")(odd_type)


async def test_an_unknown_dependency_is_refused_at_start(db: DataFlow) -> None:
    @db.product("stats", depends_on=["Usr"])
    async def stats(ctx: ProductContext) -> int:
        return 1

    with pytest.raises(FabricConfigError, match="User"):
        await db.start(port=0)


async def test_fail_fast_refuses_to_start_on_a_failing_source_or_product(db: DataFlow, tmp_path: Any) -> None:
    from dataflow.fabric import DatabaseSourceConfig, ProductFailedError, SourceError

    db.source("gone", DatabaseSourceConfig(f"sqlite:///{tmp_path}/no/such/dir/x.db", poll_interval=3600))
    with pytest.raises(SourceError, match="gone"):
        await db.start(port=0, fail_fast=True)
    handle = await db.start(port=0, fail_fast=False)
    import httpx

    async with httpx.AsyncClient(base_url=handle.url) as client:
        health = await client.get("/_health")
        assert health.status_code == 503
        gone = health.json()["sources"]["gone"]
        assert gone["healthy"] is False and gone["opened"] is False and gone["last_error"]
    await db.stop()

    other = DataFlow("sqlite://:memory:")

    @other.product("broken")
    async def broken(ctx: ProductContext) -> int:
        raise RuntimeError("no")

    with pytest.raises(ProductFailedError):
        await other.start(port=0, fail_fast=True)
    await other.close()


async def test_writes_from_the_sync_api_in_another_thread_refresh_dependants(
        db: DataFlow, serve: Serve) -> None:
    @db.product("stats", depends_on=["User"], debounce=0.0)
    async def stats(ctx: ProductContext) -> int:
        return await ctx.express.count("User")

    client = await serve()
    await asyncio.to_thread(db.express_sync.create, "User", {"name": "from a thread"})

    async def refreshed() -> bool:
        return (await client.get("/stats")).json() == 1

    await eventually(refreshed)


async def test_a_product_that_runs_past_its_timeout_fails_cleanly(db: DataFlow, serve: Serve) -> None:
    @db.product("stuck", mode="virtual", timeout=0.05)
    async def stuck(ctx: ProductContext) -> int:
        await asyncio.sleep(30)
        return 1

    client = await serve()
    r = await client.get("/stuck")
    assert r.status_code == 500 and r.json()["error"]["code"] == "DF-1103"


async def test_max_entries_bounds_materialized_values_per_tenant_too(db: DataFlow) -> None:
    from dataflow.fabric import fabric_of

    @db.product("mine", max_entries=2)
    async def mine(ctx: ProductContext) -> str | None:
        return ctx.tenant

    fabric = fabric_of(db)
    await fabric.start(dev_mode=True, tenant_aware=True)
    for tenant in ("a", "b", "c", "a"):
        assert (await fabric.get("mine", tenant)).entry.value == tenant
    assert [key[0] for key in fabric.state("mine").entries] == ["c", "a"]
    await fabric.stop()


async def test_a_failed_refresh_is_retried_with_backoff(
        db: DataFlow, serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataflow_fabric import runtime

    monkeypatch.setattr(runtime, "RETRY_BASE", 0.05)
    outcomes = ["ok", "fail", "fail", "ok"]

    @db.product("flaky", depends_on=["User"], debounce=0.0)
    async def flaky(ctx: ProductContext) -> int:
        if outcomes.pop(0) == "fail":
            raise RuntimeError("transient")
        return await ctx.express.count("User")

    client = await serve()
    await db.express.create("User", {"name": "a"})  # one change; the retries need no other

    async def recovered() -> bool:
        r = await client.get("/flaky")
        return bool(r.json() == 1 and r.headers["x-fabric-freshness"] == "fresh")

    await eventually(recovered)
    trace = (await client.get("/flaky/_trace")).json()["refreshes"]
    assert [t["error"] is None for t in trace] == [True, False, False, True]
    assert trace[0]["inputs_changed"] == ["User"]
