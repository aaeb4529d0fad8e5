"""The pytest plugin: fixtures, the ``requires`` / ``unsupported`` markers and strict known failures.

* ``@pytest.mark.requires("savepoints")``: the test runs only where the adapter declares
  the capability; where it does not, it is reported as skipped *by capability*.
* ``@pytest.mark.unsupported("savepoints")``: the mirror image. The test runs only where
  the adapter does NOT declare the capability, and asserts the honest DF-501 refusal
  (or the documented fallback). Every optional capability has one test of each kind,
  so for every adapter one of the pair always runs.
* ``Capabilities.known_failures[test_name] = (ExcType, reason)`` turns that test into
  a strict xfail with ``raises=ExcType``: a surprise pass or another error fails.

The fixtures are declared with ``pytest_asyncio.fixture`` so they work whether or not
the adapter's project sets ``asyncio_mode = "auto"``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from .backend import Backend

#: what ``from dataflow.testkit.plugin import *`` gives a conftest.py that cannot use
#: ``pytest_plugins`` (a conftest below the rootdir of a monorepo run)
__all__ = ["_dataflow_capability_gate", "capabilities", "make_db", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*capabilities): needs these declared capabilities")
    config.addinivalue_line(
        "markers",
        "unsupported(*capabilities): runs only where none of these capabilities is declared",
    )
    # registered once, however many adapter conftests import this plugin
    if not config.pluginmanager.has_plugin(_CaseReport.name):
        config.pluginmanager.register(_CaseReport(), _CaseReport.name)


class _CaseReport:
    """Prints how many generated attack cases ran per backend (``suite/attacks.py``)."""

    name = "dataflow-testkit-case-report"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .suite._helpers import CASE_BUDGET, CASE_COUNTS

        if not CASE_COUNTS:
            return
        terminalreporter.section("dataflow contract kit: generated attack cases")
        for label, per_test in sorted(CASE_COUNTS.items()):
            total = sum(per_test.values())
            parts = ", ".join(f"{k} {v:,}" for k, v in sorted(per_test.items()))
            terminalreporter.write_line(
                f"{label}: {total:,} cases ({parts}); budget {CASE_BUDGET:,} generated")


@pytest.fixture(autouse=True)
def _dataflow_capability_gate(request: pytest.FixtureRequest) -> None:
    """Apply ``requires`` / ``unsupported`` / ``known_failures`` to tests that use the backend.

    A fixture (not a setup hook) so the session's ``dataflow_backend`` is resolved by
    pytest in the normal way, parametrised or not; marks added here are still seen by
    pytest's xfail handling, which re-reads them at call time.
    """
    item = request.node
    if "dataflow_backend" not in getattr(item, "fixturenames", ()):
        return
    backend: Backend = request.getfixturevalue("dataflow_backend")
    caps = backend.capabilities
    for mark in item.iter_markers("requires"):
        missing = [c for c in mark.args if not caps.supports(c)]
        if missing:
            pytest.skip(f"capability not declared by {caps.name}: {', '.join(missing)} "
                        "(the 'unsupported' twin of this test runs instead)")
    for mark in item.iter_markers("unsupported"):
        declared = [c for c in mark.args if caps.supports(c)]
        if declared:
            pytest.skip(f"capability declared by {caps.name}: {', '.join(declared)} "
                        "(the 'requires' twin of this test runs instead)")
    known = caps.known_failures.get(item.name) or caps.known_failures.get(
        item.name.split("[")[0])
    if known is not None:
        exc, reason = known
        item.add_marker(pytest.mark.xfail(raises=exc, strict=True, reason=reason))


@pytest.fixture
def capabilities(dataflow_backend: Backend) -> Any:
    return dataflow_backend.capabilities


@pytest_asyncio.fixture
async def make_db(dataflow_backend: Backend) -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``db = make_db()`` gives a DataFlow on the backend; tables are dropped after."""
    from ..core import DataFlow

    made: list[DataFlow] = []

    def factory(**kwargs: Any) -> DataFlow:
        options = {**dataflow_backend.options, **kwargs}
        options.setdefault("name", f"kit_{uuid.uuid4().hex[:10]}")
        db = DataFlow(dataflow_backend.url, **options)
        made.append(db)
        return db

    yield factory
    for db in made:
        try:
            await db.drop_tables()  # a test that closed its instance: it reopens for this
        finally:
            await db.close()
    await asyncio.sleep(0)
