"""Run DataFlow's contract kit against the SQLite adapter.

Three real backends, all SQLite:

* ``file``: a file database (WAL, a connection per event loop);
* ``memory``: the in-memory default (a shared-cache database per DataFlow instance);
* ``reduced``: the same adapter declaring fewer capabilities (no regex, no Unicode
  ``$ilike``, no NUL in text, no DROP COLUMN, no schema discovery, no savepoints, no
  ``on_delete="set null"``, no updates of referenced parents), so the
  kit's ``unsupported`` twins -- the DF-501 refusals -- run here too, not only on
  adapters that happen to lack a feature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dataflow import hookimpl, plugins
from dataflow.adapter import DatabaseURL
from dataflow.testkit import Backend
from dataflow.testkit.plugin import *  # noqa: F403  (the kit's fixtures, markers and gate)
from dataflow_sqlite.adapter import SQLiteAdapter
from dataflow_sqlite.capabilities import SQLiteCapabilities
from dataflow_sqlite.dialect import SQLiteCompiler

# The kit is imported above rather than named in ``pytest_plugins``: this conftest sits
# below the monorepo's rootdir, where pytest refuses ``pytest_plugins``. An adapter in its
# own repository writes ``pytest_plugins = ["dataflow.testkit.plugin"]`` instead.


class ReducedCapabilities(SQLiteCapabilities):
    name = "sqlite-reduced"
    regex = False
    unicode_ilike = False
    nul_in_text = False
    drop_column = False
    schema_discovery = False
    savepoints = False
    row_locks = False
    json_contains = False
    fk_set_null = False  # refused before any DDL: the kit's DF-501 twin runs here
    update_referenced_parent = False  # refused before any SQL: the kit's DF-501 twin runs here


class ReducedCompiler(SQLiteCompiler):
    name = "sqlite-reduced"
    unicode_ilike = False
    lock_clause = None  # no row locks: for_update=True is refused
    visit_regex = None  # type: ignore[assignment]  # no regex: the compiler refuses it
    visit_json_contains = None  # type: ignore[assignment]  # no $contains: refused


class ReducedSQLiteAdapter(SQLiteAdapter):
    capabilities = ReducedCapabilities

    def __init__(self, url: DatabaseURL, *, pool_size: int | None = None, **options: Any) -> None:
        super().__init__(url, pool_size=pool_size, **options)
        self.compiler = ReducedCompiler()


class _ReducedPlugin:
    @hookimpl
    def dataflow_register_adapters(self, register: Callable[[str, Any], None]) -> None:
        register("sqlite-reduced", ReducedSQLiteAdapter)


@pytest.fixture(scope="session", params=["file", "memory", "reduced"])
def dataflow_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend(url="sqlite://:memory:", capabilities=SQLiteCapabilities)
    elif request.param == "file":
        path = tmp_path_factory.mktemp("dataflow-sqlite") / "contract.db"
        yield Backend(url=f"sqlite:///{path}", capabilities=SQLiteCapabilities)
    else:
        plugin = _ReducedPlugin()
        plugins.register(plugin, name="dataflow-sqlite-reduced-test")
        try:
            yield Backend(url="sqlite-reduced://:memory:", capabilities=ReducedCapabilities)
        finally:
            plugins.unregister(plugin)
