"""SSRF defence of REST sources, against real servers on loopback addresses."""

from __future__ import annotations

import pytest
from fabric_support import Route, Upstream

from dataflow import DataFlow
from dataflow.fabric import AddressRefusedError, FabricConfigError, RestSourceConfig


async def test_loopback_is_refused_by_default_and_nothing_is_sent(db: DataFlow, upstream: Upstream) -> None:
    upstream.routes["/x"] = Route(body=1)
    for host in ("127.0.0.1", "localhost", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "0177.0.0.1"):
        try:
            source = db.source(f"s-{host}", RestSourceConfig(url=f"http://{host}:{upstream.port}",
                                                             retries=0))
        except FabricConfigError:  # a spelling httpx will not parse is refused when declared
            continue
        with pytest.raises(AddressRefusedError, match="loopback"):
            await source.fetch("x")
        await source.connector.close()
    assert upstream.log == []


async def test_allow_private_and_allowlists_open_it(db: DataFlow, upstream: Upstream) -> None:
    upstream.routes["/x"] = Route(body=1)
    configs = [
        RestSourceConfig(url=upstream.url, allow_private=True),
        RestSourceConfig(url=upstream.url, allowlist=("127.0.0.0/8",)),
        RestSourceConfig(url=upstream.url, allowlist=("127.0.0.1",)),
        RestSourceConfig(url=f"http://localhost:{upstream.port}", allowlist=("LOCALHOST",)),
    ]
    for i, config in enumerate(configs):
        source = db.source(f"s{i}", config)
        assert await source.fetch("x") == 1
        await source.connector.close()
    assert len(upstream.log) == len(configs)


async def test_every_redirect_is_checked_again(
        db: DataFlow, upstream: Upstream, second_upstream: Upstream) -> None:
    second_upstream.routes["/secret"] = Route(body={"secret": True})
    upstream.routes["/go"] = Route(302, headers={"Location": f"{second_upstream.url}/secret"})
    guarded = db.source("guarded", RestSourceConfig(url=upstream.url, allowlist=("127.0.0.1/32",),
                                                    retries=0))
    with pytest.raises(AddressRefusedError, match=r"127\.0\.0\.2"):
        await guarded.fetch("go")
    assert len(upstream.hits("/go")) == 1
    assert second_upstream.log == []  # the refused hop never received a byte
    opened = db.source("opened", RestSourceConfig(url=upstream.url,
                                                  allowlist=("127.0.0.1/32", "127.0.0.2/32")))
    assert await opened.fetch("go") == {"secret": True}
    await guarded.connector.close()
    await opened.connector.close()


async def test_the_checked_address_is_the_one_connected_to(db: DataFlow, upstream: Upstream) -> None:
    """Resolution happens once per request and the connection goes to that address, so an
    answer that changes afterwards (DNS rebinding) cannot redirect the request."""
    upstream.routes["/x"] = Route(body="pinned")
    answers = [["127.0.0.1"], ["10.9.8.7"]]  # the second lookup would rebind to a private host
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return answers[min(len(lookups) - 1, 1)]

    source = db.source("api", RestSourceConfig(url=f"http://api.fabric.test:{upstream.port}",
                                               allowlist=("127.0.0.1/32",), resolver=resolver,
                                               retries=0, poll_interval=0.0))
    assert await source.fetch("x") == "pinned"
    assert lookups == ["api.fabric.test"]
    assert upstream.log[0]["headers"]["host"] == f"api.fabric.test:{upstream.port}"
    assert list(source.connector.transport.connected) == [("api.fabric.test", "127.0.0.1")]  # type: ignore[attr-defined]
    with pytest.raises(AddressRefusedError, match=r"10\.9\.8\.7"):
        await source.connector.read("x", {})  # the rebound answer is checked and refused
    assert len(upstream.log) == 1
    assert await source.fetch("x") == "pinned"  # the source serves its last good copy instead
    assert source.breaker.failures == 1
    await source.connector.close()


async def test_a_name_with_any_private_address_is_refused(db: DataFlow, upstream: Upstream) -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "169.254.169.254"]

    source = db.source("api", RestSourceConfig(url="http://mixed.fabric.test", resolver=resolver))
    with pytest.raises(AddressRefusedError, match="metadata"):
        await source.fetch("x")
    await source.connector.close()
