"""Root tests: core behaviour that needs no particular backend beyond embedded SQLite."""

from __future__ import annotations

import pytest


@pytest.fixture
async def db():
    from dataflow import DataFlow

    instance = DataFlow("sqlite://:memory:")
    yield instance
    await instance.close()
