"""The shared contract suite, collected here for the PostgreSQL adapter."""

from dataflow.testkit.suite import *  # noqa: F403
