"""DataFlow's shared contract tests. Collect them in an adapter's test module with::

    from dataflow.testkit.suite import *  # noqa: F403

Tests name capabilities (``@pytest.mark.requires("savepoints")``), never databases.
"""

from .test_types import TestIds, TestTypes

__all__ = ["TestIds", "TestTypes"]
