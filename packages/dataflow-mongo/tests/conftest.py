"""Run DataFlow's contract kit (and the MongoDB-only tests) against a MongoDB server.

The server: ``DATAFLOW_MONGO_URL`` when set (a real MongoDB, e.g. a testcontainers
``mongo:7`` replica set); otherwise a ``secantusd-py`` test server (the ``secantusdb``
package: MongoDB wire protocol, a replica set with transactions) started here on a free
port with in-memory storage, and always stopped at the end of the session. Locally an
unreachable server skips with the reason; under ``CI=true`` it fails the run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio

from dataflow.testkit import Backend
from dataflow.testkit.plugin import *  # noqa: F403  (the kit's fixtures, markers and gate)
from dataflow.testkit.servers import unreachable
from dataflow_mongo.capabilities import MongoCapabilities

#: the database every test uses on the server (collections are dropped after each test)
DATABASE = "dataflow_test"
STARTUP_SECONDS = 30.0


def database_url(base: str, name: str | None = None) -> tuple[str, str]:
    """``base`` pointed at a fresh database (its name is returned too)."""
    name = name or f"t_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, "")), name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ping(url: str) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, serverSelectionTimeoutMS=2000)
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


def _server_binary() -> str | None:
    beside = Path(sys.executable).with_name("secantusd-py")
    return str(beside) if beside.exists() else shutil.which("secantusd-py")


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    url = os.environ.get("DATAFLOW_MONGO_URL")
    if url:
        try:
            asyncio.run(asyncio.wait_for(_ping(url), 15))
        except Exception as exc:
            unreachable(f"MongoDB at {url}", f"{type(exc).__name__}: {exc}")
        yield url
        return
    binary = _server_binary()
    if binary is None:
        unreachable("the MongoDB test server", "secantusd-py is not installed "
                    "(pip install ./packages/dataflow-mongo[test]) and DATAFLOW_MONGO_URL is unset")
        return
    port = _free_port()
    # the server's log goes to a file: a pipe nobody reads would fill and stall the server
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", str(port),
                             "--storage-path", ":memory:"],
                            stdout=subprocess.DEVNULL, stderr=log)
    url = f"mongodb://127.0.0.1:{port}/{DATABASE}?directConnection=true"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                asyncio.run(_ping(url))
                break
            except Exception as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    err = log.read().decode(errors="replace")[-500:]
                    unreachable(f"the secantusd-py test server on port {port}",
                                f"{type(exc).__name__}: {exc} {err}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def dataflow_backend(mongo_url: str) -> Backend:
    return Backend(url=mongo_url, capabilities=MongoCapabilities)


@pytest_asyncio.fixture
async def fresh_url(mongo_url: str) -> AsyncIterator[str]:
    """A URL naming a database of its own, dropped after the test."""
    from pymongo import AsyncMongoClient

    url, name = database_url(mongo_url)
    yield url
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


@pytest_asyncio.fixture
async def mdb(fresh_url: str) -> AsyncIterator[Any]:
    """A DataFlow instance on its own MongoDB database, closed after the test."""
    from dataflow import DataFlow

    db = DataFlow(fresh_url)
    yield db
    await db.close()


@pytest_asyncio.fixture
async def tenant_db(fresh_url: str) -> AsyncIterator[Any]:
    from dataflow import DataFlow

    db = DataFlow(fresh_url, multi_tenant=True)
    yield db
    await db.close()
