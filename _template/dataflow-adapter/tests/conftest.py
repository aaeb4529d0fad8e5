import os

import pytest

try:
    from dataflow.testkit import Backend
except ImportError as exc:  # the unrelated "dataflow-core" from a package index, or none
    raise pytest.UsageError(
        "DataFlow's contract kit is not installed: install dataflow-core from a DataFlow "
        "checkout's path (see README.md, 'Install'), never by bare name."
    ) from exc

from dataflow_myadapter.capabilities import MyCapabilities

pytest_plugins = ["dataflow.testkit.plugin"]


@pytest.fixture(scope="session")
def dataflow_backend() -> Backend:
    # Reach a real server; under CI=true an unreachable server must fail, never skip.
    return Backend(url=os.environ["DATAFLOW_MYDB_URL"], capabilities=MyCapabilities)
