from dataflow.testkit.suite import *  # noqa: F403
