"""The shared contract suite, collected here for the MySQL / MariaDB adapter."""

from dataflow.testkit.suite import *  # noqa: F403
