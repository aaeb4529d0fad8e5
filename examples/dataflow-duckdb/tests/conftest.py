from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    from dataflow.testkit import Backend
except ImportError as exc:  # the unrelated "dataflow-core" from a package index, or none
    raise pytest.UsageError(
        "DataFlow's contract kit is not installed: install dataflow-core from a DataFlow "
        "checkout's path (see README.md, 'Install'), never by bare name."
    ) from exc

from dataflow_duckdb.capabilities import DuckDBCapabilities

pytest_plugins = ["dataflow.testkit.plugin"]


@pytest.fixture(scope="session", params=["file", "memory"])
def dataflow_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[Backend]:
    # embedded: the "server" is a file (or memory) that is always reachable
    if request.param == "memory":
        yield Backend(url="duckdb://:memory:", capabilities=DuckDBCapabilities)
    else:
        path: Path = tmp_path_factory.mktemp("dataflow-duckdb") / "contract.duckdb"
        yield Backend(url=f"duckdb:///{path}", capabilities=DuckDBCapabilities)
