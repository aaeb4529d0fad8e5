"""Run DataFlow's contract kit, and the adapter's own tests, against a real MySQL / MariaDB.

The server comes from ``DATAFLOW_MYSQL_URL`` (default ``mysql://root@127.0.0.1:3306/test``;
``.ci/mysql-user.sh`` creates a TCP user where root may only use the local socket). An
unreachable server skips these tests locally and FAILS them under ``CI=true``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiomysql
import pytest

from dataflow.adapter import DatabaseURL
from dataflow.testkit import Backend
from dataflow.testkit.plugin import *  # noqa: F403  (the kit's fixtures, markers and gate)
from dataflow.testkit.servers import server_url
from dataflow_mysql.capabilities import MySQLCapabilities

# The kit is imported above rather than named in ``pytest_plugins``: this conftest sits
# below the monorepo's rootdir, where pytest refuses ``pytest_plugins``.

DEFAULT_URL = "mysql://root@127.0.0.1:3306/test"


def connect_kwargs(url: str) -> dict[str, object]:
    u = DatabaseURL.parse(url)
    return {"host": u.host or "127.0.0.1", "port": u.port or 3306, "user": u.username or "root",
            "password": u.password or "", "db": u.database, "autocommit": True,
            "init_command": "SET sql_notes = 0"}


async def _probe(url: str) -> None:
    conn = await asyncio.wait_for(aiomysql.connect(**connect_kwargs(url)), 10)
    conn.close()


@pytest.fixture(scope="session")
def mysql_url() -> str:
    return server_url("DATAFLOW_MYSQL_URL", DEFAULT_URL, _probe, what="MySQL / MariaDB")


@pytest.fixture(scope="session")
def dataflow_backend(mysql_url: str) -> Backend:
    return Backend(url=mysql_url, capabilities=MySQLCapabilities)


@pytest.fixture
async def raw(mysql_url: str) -> AsyncIterator[aiomysql.Connection]:
    """A plain aiomysql connection for looking at what the adapter stored."""
    conn = await aiomysql.connect(**connect_kwargs(mysql_url))
    try:
        yield conn
    finally:
        conn.close()
