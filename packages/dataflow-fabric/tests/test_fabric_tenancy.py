"""Multi-tenancy: the extractor binds db.tenant() for the computation; caches are per tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fabric_support import eventually
from starlette.requests import Request

from dataflow import DataFlow
from dataflow.fabric import ProductContext


def tenant_of(request: Request) -> str | None:
    return request.headers.get("x-tenant")


@pytest.fixture
async def tenant_db() -> AsyncIterator[DataFlow]:
    db = DataFlow("sqlite://:memory:", multi_tenant=True)

    @db.model
    class Note:
        text: str

    calls: list[str | None] = []
    db.calls = calls  # type: ignore[attr-defined]

    @db.product("notes", depends_on=["Note"], debounce=0.0)
    async def notes(ctx: ProductContext) -> list[str]:
        calls.append(ctx.tenant)
        return [n["text"] for n in await ctx.express.list("Note", order_by="text")]

    @db.product("find", mode="parameterized", depends_on=["Note"])
    async def find(ctx: ProductContext, text: str = "") -> int:
        return await ctx.express.count("Note", {"text": {"$like": f"%{text}%"}})

    async with db.tenant("acme"):
        await db.express.create("Note", {"text": "acme memo"})
    async with db.tenant("globex"):
        await db.express.create("Note", {"text": "globex plan"})
    yield db
    await db.stop()
    await db.close()


async def test_each_tenant_gets_its_own_values_and_no_tenant_is_401(tenant_db: DataFlow) -> None:
    handle = await tenant_db.start(port=0, tenant_extractor=tenant_of, enable_writes=True)
    calls = tenant_db.calls  # type: ignore[attr-defined]
    assert calls == []  # nothing is warmed without knowing the tenants
    async with httpx.AsyncClient(base_url=handle.url) as client:
        anonymous = await client.get("/notes")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "DF-1108"
        assert (await client.get("/_batch", params={"products": "notes"})).status_code == 401
        assert (await client.post("/Note", json={"text": "x"})).status_code == 401
        assert calls == []

        acme = {"x-tenant": "acme"}
        globex = {"x-tenant": "globex"}
        assert (await client.get("/notes", headers=acme)).json() == ["acme memo"]
        assert (await client.get("/notes", headers=globex)).json() == ["globex plan"]
        cached = await client.get("/notes", headers=acme)
        assert cached.json() == ["acme memo"] and cached.headers["x-fabric-freshness"] == "fresh"
        assert sorted(c for c in calls if c) == ["acme", "globex"]
        assert (await client.get("/find", params={"text": "memo"}, headers=acme)).json() == 1
        assert (await client.get("/find", params={"text": "memo"}, headers=globex)).json() == 0

        created = await client.post("/Note", json={"text": "acme second"}, headers=acme)
        assert created.status_code == 201 and created.json()["tenant_id"] == "acme"
        spoof = await client.post("/Note", json={"text": "x", "tenant_id": "globex"}, headers=acme)
        assert spoof.status_code == 400 and spoof.json()["error"]["code"] == "DF-803"

        async def refreshed() -> bool:
            got = await client.get("/notes", headers=acme)
            return bool(got.json() == ["acme memo", "acme second"])

        await eventually(refreshed)
        assert (await client.get("/notes", headers=globex)).json() == ["globex plan"]
        assert (await client.get("/notes/_trace")).status_code == 401
        traced = (await client.get("/notes/_trace", headers=globex)).json()["refreshes"]
        assert traced and {r["tenant"] for r in traced} == {"globex"}
