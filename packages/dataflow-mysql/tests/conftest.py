"""Run DataFlow's contract kit, and the adapter's own tests, against a real MySQL / MariaDB.

The server comes from ``DATAFLOW_MYSQL_URL`` (default ``mysql://root@127.0.0.1:3306/test``;
``.ci/mysql-user.sh`` creates a TCP user where root can only use the socket). An
unreachable server skips these tests locally, and FAILS them under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import aiomysql
import pytest

from dataflow.adapter import DatabaseURL
from dataflow.testkit import Backend
from dataflow_mysql.capabilities import MySQLCapabilities

pytest_plugins = ["dataflow.testkit.plugin"]

MYSQL_URL = os.environ.get("DATAFLOW_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def connect_kwargs(url: str = MYSQL_URL) -> dict[str, object]:
    u = DatabaseURL.parse(url)
    return {"host": u.host or "127.0.0.1", "port": u.port or 3306, "user": u.username or "root",
            "password": u.password or "", "db": u.database, "autocommit": True,
            "init_command": "SET sql_notes = 0"}


async def _reachable() -> str | None:
    try:
        conn = await asyncio.wait_for(aiomysql.connect(**connect_kwargs()), 10)
    except Exception as exc:  # any failure to connect is reported the same way
        return f"{type(exc).__name__}: {exc}"
    conn.close()
    return None


@pytest.fixture(scope="session")
def mysql_url() -> str:
    problem = asyncio.run(_reachable())
    if problem is not None:
        message = f"MySQL / MariaDB at {DatabaseURL.parse(MYSQL_URL).redacted()} is unreachable: {problem}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return MYSQL_URL


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
