"""The shared contract suite, collected here for the MongoDB adapter."""

from dataflow.testkit.suite import *  # noqa: F403
