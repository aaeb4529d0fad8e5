"""REST sources against a real HTTP server on 127.0.0.1: conditional requests, auth, retries,
timeouts, the circuit breaker and the staleness policy."""

from __future__ import annotations

import asyncio
import base64

import pytest
from fabric_support import Route, Serve, Upstream, eventually

from dataflow import DataFlow
from dataflow.fabric import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    CircuitBreakerConfig,
    CircuitOpenError,
    FabricConfigError,
    ProductContext,
    RestSourceConfig,
    SourceError,
    StaleDataError,
    StalenessPolicy,
)


def rest(up: Upstream, **options: object) -> RestSourceConfig:
    options.setdefault("allowlist", ("127.0.0.1",))
    return RestSourceConfig(url=up.url, **options)  # type: ignore[arg-type]


async def test_unchanged_source_costs_a_304_and_a_change_refreshes_dependants(
        db: DataFlow, serve: Serve, upstream: Upstream) -> None:
    upstream.routes["/deals"] = Route(body=[{"id": 1}], headers={"ETag": '"v1"'})
    source = db.source("crm", rest(upstream, poll_interval=0.05))
    computed: list[int] = []

    @db.product("deals", depends_on=["crm"], debounce=0.0)
    async def deals(ctx: ProductContext) -> int:
        computed.append(1)
        return len(await ctx.source("crm").fetch("deals"))

    client = await serve()
    assert (await client.get("/deals")).json() == 1

    async def revalidated() -> bool:
        return bool(source.connector.not_modified >= 3)  # type: ignore[attr-defined]

    await eventually(revalidated)
    later = upstream.hits("/deals")[1:]
    assert len(later) >= 3 and all(h["headers"].get("if-none-match") == '"v1"' for h in later)
    assert computed == [1]  # 304s change nothing

    upstream.routes["/deals"] = Route(body=[{"id": 1}, {"id": 2}], headers={"ETag": '"v2"'})

    async def refreshed() -> bool:
        return (await client.get("/deals")).json() == 2

    await eventually(refreshed)
    assert len(computed) == 2


async def test_last_modified_is_sent_back(db: DataFlow, upstream: Upstream) -> None:
    stamp = "Wed, 21 Oct 2026 07:28:00 GMT"
    upstream.routes["/items"] = Route(body={"a": 1}, headers={"Last-Modified": stamp})
    source = db.source("api", rest(upstream, poll_interval=0.0))
    assert await source.fetch("items") == {"a": 1}
    assert await source.poll() is False
    assert upstream.hits("/items")[1]["headers"]["if-modified-since"] == stamp
    assert source.connector.not_modified == 1  # type: ignore[attr-defined]
    await source.connector.close()


@pytest.mark.parametrize("auth,expected", [
    (BearerAuth(token_env="FABRIC_TEST_TOKEN"), ("authorization", "Bearer s3cret")),
    (BasicAuth(username_env="FABRIC_TEST_USER", password_env="FABRIC_TEST_TOKEN"),
     ("authorization", "Basic " + base64.b64encode(b"alice:s3cret").decode())),
    (ApiKeyAuth(key_env="FABRIC_TEST_TOKEN", header="X-Api-Key"), ("x-api-key", "s3cret")),
])
async def test_auth_comes_from_environment_variables(
        db: DataFlow, upstream: Upstream, monkeypatch: pytest.MonkeyPatch, auth: object,
        expected: tuple[str, str]) -> None:
    upstream.routes["/me"] = Route(body={"ok": True})
    source = db.source("api", rest(upstream, auth=auth))
    with pytest.raises(FabricConfigError, match=r"FABRIC_TEST_TOKEN|FABRIC_TEST_USER"):
        await source.fetch("me")
    assert upstream.log == []  # nothing is sent without the credential
    monkeypatch.setenv("FABRIC_TEST_TOKEN", "s3cret")
    monkeypatch.setenv("FABRIC_TEST_USER", "alice")
    assert await source.fetch("me") == {"ok": True}
    header, value = expected
    assert upstream.log[-1]["headers"][header] == value
    await source.connector.close()


async def test_retries_with_backoff_then_success(db: DataFlow, upstream: Upstream) -> None:
    upstream.routes["/flaky"] = [Route(503), Route(503), Route(body={"ok": 1})]
    source = db.source("api", rest(upstream, retries=2, backoff=0.01))
    assert await source.fetch("flaky") == {"ok": 1}
    assert len(upstream.hits("/flaky")) == 3
    upstream.routes["/bad"] = Route(404, {"error": "nope"})
    with pytest.raises(SourceError, match="404"):
        await source.fetch("bad")
    assert len(upstream.hits("/bad")) == 1  # a 4xx is not retried
    await source.connector.close()


async def test_timeouts_fail_the_read(db: DataFlow, upstream: Upstream) -> None:
    upstream.routes["/slow"] = Route(body=1, delay=0.5)
    source = db.source("api", rest(upstream, timeout=0.1, retries=0))
    with pytest.raises(SourceError, match="ReadTimeout"):
        await source.fetch("slow")
    await source.connector.close()


async def test_circuit_opens_half_opens_and_closes(db: DataFlow, serve: Serve, upstream: Upstream) -> None:
    upstream.routes["/x"] = Route(500)
    source = db.source("api", rest(upstream, retries=0, poll_interval=3600, circuit=CircuitBreakerConfig(
        failure_threshold=2, recovery_timeout=0.3)))
    client = await serve()
    for _ in range(2):
        with pytest.raises(SourceError):
            await source.fetch("x")
    assert source.breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        await source.fetch("x")
    assert len(upstream.hits("/x")) == 2  # the open circuit sent nothing
    health = await client.get("/_health")
    assert health.status_code == 503
    assert health.json()["sources"]["api"]["circuit"] == "open"
    metrics = (await client.get("/_metrics")).text
    assert 'dataflow_fabric_source_circuit_state{source="api"} 2.0' in metrics

    await asyncio.sleep(0.35)
    assert source.breaker.state == "half_open"
    upstream.routes["/x"] = Route(body={"back": True})
    assert await source.fetch("x") == {"back": True}
    assert source.breaker.state == "closed"
    assert (await client.get("/_health")).status_code == 200


async def test_a_failed_half_open_trial_opens_again(db: DataFlow, upstream: Upstream) -> None:
    upstream.routes["/x"] = Route(500)
    source = db.source("api", rest(upstream, retries=0, circuit=CircuitBreakerConfig(
        failure_threshold=1, recovery_timeout=0.1)))
    with pytest.raises(SourceError):
        await source.fetch("x")
    await asyncio.sleep(0.15)
    with pytest.raises(SourceError):
        await source.fetch("x")  # the trial
    assert source.breaker.state == "open"
    await source.connector.close()


async def test_a_down_source_serves_its_last_good_data_marked_stale(
        db: DataFlow, serve: Serve, upstream: Upstream) -> None:
    upstream.routes["/deals"] = Route(body=[1, 2, 3])
    db.source("crm", rest(upstream, retries=0, poll_interval=0.0))

    @db.product("deals", mode="virtual", depends_on=["crm"])
    async def deals(ctx: ProductContext) -> int:
        return len(await ctx.source("crm").fetch("deals"))

    client = await serve()
    fresh = await client.get("/deals")
    assert fresh.json() == 3 and fresh.headers["x-fabric-freshness"] == "fresh"
    upstream.routes["/deals"] = Route(503)
    stale = await client.get("/deals")
    assert stale.status_code == 200 and stale.json() == 3
    assert stale.headers["x-fabric-freshness"] == "stale"


async def test_staleness_policy_fail_refuses_old_data(db: DataFlow, upstream: Upstream) -> None:
    upstream.routes["/deals"] = Route(body=[1])
    source = db.source("crm", rest(upstream, retries=0, poll_interval=0.0,
                                   staleness=StalenessPolicy(max_age=0.5, on_stale="fail")))
    assert await source.fetch("deals") == [1]
    upstream.routes["/deals"] = Route(503)
    assert await source.fetch("deals") == [1]  # young enough
    await asyncio.sleep(0.6)
    with pytest.raises(StaleDataError, match="max_age"):
        await source.fetch("deals")
    await source.connector.close()
