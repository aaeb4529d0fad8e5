"""Run DataFlow's contract kit against the SQLite adapter.

Two real backends: a file database (WAL, a connection per event loop) and the
in-memory default (a shared-cache database per DataFlow instance).
"""

from __future__ import annotations

import pytest
from dataflow.testkit import Backend
from dataflow_sqlite.capabilities import SQLiteCapabilities

pytest_plugins = ["dataflow.testkit.plugin"]


@pytest.fixture(scope="session", params=["file", "memory"])
def dataflow_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                     ) -> Backend:
    if request.param == "memory":
        return Backend(url="sqlite://:memory:", capabilities=SQLiteCapabilities)
    path = tmp_path_factory.mktemp("dataflow-sqlite") / "contract.db"
    return Backend(url=f"sqlite:///{path}", capabilities=SQLiteCapabilities)
