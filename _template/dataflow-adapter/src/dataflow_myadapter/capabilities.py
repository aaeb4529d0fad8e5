from dataflow.capabilities import Capabilities


class MyCapabilities(Capabilities):
    """Switch on exactly what your backend does; the contract kit holds you to it."""

    name = "myadapter"
    transactions = True
    # known bugs: {"test_name": (ExpectedError, "why")} -> strict xfail with raises=
    known_failures = {}
