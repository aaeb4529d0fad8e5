"""The HTTP surface: batch, SSE, health, metrics, write pass-through, mounting the app."""

from __future__ import annotations

import asyncio
import json

import httpx
import uvicorn
from fabric_support import Serve, eventually
from starlette.applications import Starlette
from starlette.routing import Mount

from dataflow import DataFlow
from dataflow.fabric import ProductContext, create_app


def _declare(db: DataFlow) -> None:
    @db.product("count", depends_on=["User"], debounce=0.0)
    async def count(ctx: ProductContext) -> int:
        return await ctx.express.count("User")

    @db.product("names", mode="parameterized", depends_on=["User"])
    async def names(ctx: ProductContext, prefix: str = "") -> list[str]:
        rows = await ctx.express.list("User", {"name": {"$like": f"{prefix}%"}}, order_by="name")
        return [r["name"] for r in rows]


async def test_batch_returns_several_products(db: DataFlow, serve: Serve) -> None:
    _declare(db)
    await db.express.create("User", {"name": "ann"})
    client = await serve()
    r = await client.get("/_batch", params={"products": "count,names"})
    assert r.status_code == 200
    body = r.json()
    assert body["count"]["data"] == 1 and body["names"]["data"] == ["ann"]
    assert body["count"]["meta"]["freshness"] == "fresh" and body["names"]["meta"]["freshness"] == "cold"
    missing = await client.get("/_batch", params={"products": "count,nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "DF-1101"
    empty = await client.get("/_batch")
    assert empty.status_code == 400 and empty.json()["error"]["field"] == "products"


async def test_events_stream_carries_each_refreshed_value(db: DataFlow, serve: Serve) -> None:
    _declare(db)
    client = await serve()
    received: list[dict[str, str]] = []
    subscribed = asyncio.Event()

    async def listen() -> None:
        async with client.stream("GET", "/count/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            event: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(": subscribed"):
                    subscribed.set()
                elif line.startswith(("event:", "data:", "id:")):
                    key, _, value = line.partition(": ")
                    event[key] = value
                elif line == "" and event:
                    received.append(event)
                    event = {}
                    if len(received) == 2:
                        return

    task = asyncio.create_task(listen())
    await asyncio.wait_for(subscribed.wait(), 5)
    await db.express.create("User", {"name": "a"})
    await eventually(lambda: _has(received, 1))
    await db.express.create("User", {"name": "b"})
    await asyncio.wait_for(task, 5)
    assert [json.loads(e["data"]) for e in received] == [1, 2]
    assert all(e["event"] == "refresh" for e in received)
    assert int(received[1]["id"]) > int(received[0]["id"])
    not_materialized = await client.get("/names/events")
    assert not_materialized.status_code == 400


async def _has(items: list[dict[str, str]], n: int) -> bool:
    return len(items) >= n


async def test_health_and_metrics(db: DataFlow, serve: Serve) -> None:
    _declare(db)
    client = await serve()
    await client.get("/count")
    await client.get("/count")
    await client.get("/names", params={"prefix": "a"})
    await client.get("/names", params={"prefix": 1.5})  # a str is fine: still 200
    health = await client.get("/_health")
    assert health.status_code == 200
    assert health.json()["products"]["count"]["mode"] == "materialized"
    assert health.json()["products"]["count"]["age"] is not None
    metrics = await client.get("/_metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'dataflow_fabric_requests_total{product="count",status="200"} 2.0' in text
    assert 'dataflow_fabric_cache_hits_total{product="count"} 2.0' in text
    assert 'dataflow_fabric_cache_misses_total{product="names"} 2.0' in text
    assert 'dataflow_fabric_request_seconds_count{product="count"} 2.0' in text
    assert "dataflow_fabric_refresh_seconds_bucket" in text


async def test_writes_pass_through_validate_and_refresh_dependants(db: DataFlow, serve: Serve) -> None:
    _declare(db)
    client = await serve(enable_writes=True)
    created = await client.post("/User", json={"name": "zed"})
    assert created.status_code == 201 and created.json()["name"] == "zed"

    async def refreshed() -> bool:
        return (await client.get("/count")).json() == 1

    await eventually(refreshed)
    bad = await client.post("/User", json={"name": 5})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "name"
    unknown_field = await client.post("/User", json={"nme": "x"})
    assert unknown_field.status_code == 400 and unknown_field.json()["error"]["code"] == "DF-302"
    no_model = await client.post("/Usr", json={"name": "x"})
    assert no_model.status_code == 404
    not_json = await client.post("/User", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    bulk = await client.post("/User", json=[{"name": "a"}, {"name": "b"}])
    assert bulk.status_code == 201
    assert await db.express.count("User") == 3


async def test_writes_are_off_by_default(db: DataFlow, serve: Serve) -> None:
    _declare(db)
    client = await serve()
    r = await client.post("/User", json={"name": "x"})
    assert r.status_code == 405
    assert await db.express.count("User") == 0


async def test_the_app_mounts_in_another_starlette_app(db: DataFlow) -> None:
    _declare(db)
    await db.express.create("User", {"name": "m"})
    outer = Starlette(routes=[Mount("/api", app=create_app(db))])
    server = uvicorn.Server(uvicorn.Config(outer, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _started(server))
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/fabric") as client:
            assert (await client.get("/count")).json() == 1
            await db.express.create("User", {"name": "n"})

            async def refreshed() -> bool:
                return (await client.get("/count")).json() == 2

            await eventually(refreshed)
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server) -> bool:
    return server.started
