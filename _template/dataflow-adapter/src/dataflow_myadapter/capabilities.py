from typing import ClassVar

from dataflow.capabilities import Capabilities


class MyCapabilities(Capabilities):
    """Switch on exactly what your backend does; the contract kit holds you to it.
    Every flag is documented in dataflow.capabilities; anything left off is refused with
    DF-501 before SQL is sent (the kit checks that too)."""

    name = "myadapter"
    transactions = True
    fk_restrict = True
    # known bugs: {"test_name": (ExpectedError, "why")} -> strict xfail with raises=
    known_failures: ClassVar[dict[str, tuple[type[BaseException], str]]] = {}
