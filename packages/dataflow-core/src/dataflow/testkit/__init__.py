"""DataFlow's contract test kit: a pytest plugin adapter authors install.

In the adapter's ``tests/conftest.py``::

    pytest_plugins = ["dataflow.testkit.plugin"]

    @pytest.fixture(scope="session")
    def dataflow_backend():
        return Backend(url=os.environ["MYDB_URL"], capabilities=MyCapabilities)

and in a test module: ``from dataflow.testkit.suite import *  # noqa: F403``.
Install with ``pip install ./packages/dataflow-core[testkit]``.
"""

from .backend import Backend

__all__ = ["Backend"]
