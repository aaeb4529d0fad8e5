"""Workspace-wide test hygiene, for every package's tests run from this root.

Node types resolve among the live DataFlow instances; an instance that one test module
leaves open would make another module's nodes ambiguous (DF-702) depending on test order.
After each module, the instances it opened and left open are closed (a closed instance
reopens on its next use, so this cannot break a fixture that outlives the module) and
named in a warning, so that the leak gets fixed where it is.
"""

from __future__ import annotations

import gc
import warnings
import weakref
from collections.abc import Iterator

import pytest

from dataflow.core import DataFlow, live_instances


class LeftOpenWarning(UserWarning):
    """A test module left DataFlow instances open."""


@pytest.fixture(autouse=True, scope="module")
def _close_dataflow_instances_left_open(request: pytest.FixtureRequest) -> Iterator[None]:
    before: weakref.WeakSet[DataFlow] = weakref.WeakSet(live_instances())
    yield
    if not any(db not in before for db in live_instances()):
        return
    gc.collect()  # instances dropped without close() are not left open, only uncollected
    left = [db for db in live_instances() if db not in before]
    if not left:
        return
    for db in left:
        db.close_sync()
    warnings.warn(LeftOpenWarning(
        f"{request.node.nodeid} left DataFlow instances open: "
        f"{', '.join(repr(db) for db in left)}; they were closed so that they cannot make "
        "another module's nodes ambiguous (DF-702). Close them in the test or fixture."),
        stacklevel=1)
