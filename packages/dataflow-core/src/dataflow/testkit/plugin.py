"""The pytest plugin: fixtures, the ``requires`` marker and strict known failures.

* ``@pytest.mark.requires("savepoints")``: the test runs only where the adapter declares
  the capability; where it does not, the test is reported as not applicable by
  capability (the kit's own "unsupported" tests assert the DF-501 refusal instead).
* ``Capabilities.known_failures[test_name] = (ExcType, reason)`` turns that test into
  a strict xfail with ``raises=ExcType``: a surprise pass or another error fails.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from .backend import Backend


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*capabilities): needs these declared capabilities")


def _backend_of(item: pytest.Item) -> Backend | None:
    request = getattr(item, "_request", None)
    if request is None or "dataflow_backend" not in getattr(item, "fixturenames", ()):
        return None
    backend: Backend = request.getfixturevalue("dataflow_backend")
    return backend


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    backend = _backend_of(item)
    if backend is None:
        return
    caps = backend.capabilities
    for mark in item.iter_markers("requires"):
        missing = [c for c in mark.args if not caps.supports(c)]
        if missing:
            pytest.skip(f"capability not declared by {caps.name}: {', '.join(missing)}")
    known = caps.known_failures.get(item.name) or caps.known_failures.get(
        item.name.split("[")[0])
    if known is not None:
        exc, reason = known
        item.add_marker(pytest.mark.xfail(raises=exc, strict=True, reason=reason))


@pytest.fixture
def capabilities(dataflow_backend: Backend) -> Any:
    return dataflow_backend.capabilities


@pytest.fixture
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
            if not db._closed:
                await db.drop_tables()
        finally:
            await db.close()
    await asyncio.sleep(0)
