"""Fixtures: a DataFlow on embedded SQLite, the fabric served by db.start() on a free port,
and a real HTTP server on 127.0.0.1 standing in for a REST upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fabric_support import Serve, Upstream, _start_upstream

from dataflow import DataFlow


@pytest.fixture
async def db() -> AsyncIterator[DataFlow]:
    instance = DataFlow("sqlite://:memory:")

    @instance.model
    class User:
        name: str
        active: bool = True

    yield instance
    await instance.stop()
    await instance.close()


@pytest.fixture
async def serve(db: DataFlow) -> AsyncIterator[Serve]:
    """``client = await serve(**start_options)``: db.start() on a free port, an httpx client on it."""
    clients: list[httpx.AsyncClient] = []

    async def start(**options: Any) -> httpx.AsyncClient:
        handle = await db.start(host="127.0.0.1", port=0, **options)
        client = httpx.AsyncClient(base_url=handle.url, timeout=10)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    await db.stop()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up, server = _start_upstream("127.0.0.1")
    yield up
    server.shutdown()
    server.server_close()


@pytest.fixture
def second_upstream() -> Iterator[Upstream]:
    """Another server on a different loopback address (127.0.0.2), for redirect checks."""
    up, server = _start_upstream("127.0.0.2")
    yield up
    server.shutdown()
    server.server_close()
