"""The shared contract suite, collected here for the SQLite adapter."""

from dataflow.testkit.suite import *  # noqa: F403
