import os

import pytest
from dataflow.testkit import Backend
from dataflow_myadapter.capabilities import MyCapabilities

pytest_plugins = ["dataflow.testkit.plugin"]


@pytest.fixture(scope="session")
def dataflow_backend() -> Backend:
    # Reach a real server; under CI=true an unreachable server must fail, never skip.
    return Backend(url=os.environ["DATAFLOW_MYDB_URL"], capabilities=MyCapabilities)
