"""Node lookup among live instances: what counts as live, and when a name is ambiguous (DF-702)."""

from __future__ import annotations

import pytest

from dataflow import DataFlow
from dataflow.core import live_instances
from dataflow.errors import AmbiguousNodeError
from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder


def _declare(db: DataFlow) -> None:
    @db.model
    class LookupTask:
        title: str


async def _create(title: str) -> dict[str, object]:
    wf = WorkflowBuilder()
    wf.add_node("LookupTaskCreateNode", "create", {"title": title})
    results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
    record: dict[str, object] = results["create"]["record"]
    return record


async def _use_and_drop() -> str:
    dropped = DataFlow("sqlite://:memory:")
    _declare(dropped)
    await dropped.express.create("LookupTask", {"title": "compiled and run"})
    await dropped.adapter.close()  # its connections are gone, the instance itself is dropped open
    return dropped.name


async def test_a_dropped_instance_does_not_make_nodes_ambiguous() -> None:
    """The compilers cache per model; the model's class must not keep its instance alive."""
    dropped = await _use_and_drop()
    kept = DataFlow("sqlite://:memory:")
    _declare(kept)
    try:
        record = await _create("x")
        assert await kept.express.read("LookupTask", record["id"]) == record
        assert dropped not in [d.name for d in live_instances()]
    finally:
        await kept.close()


async def test_two_live_open_instances_stay_ambiguous() -> None:
    first, second = DataFlow("sqlite://:memory:"), DataFlow("sqlite://:memory:")
    for db in (first, second):
        _declare(db)
    try:
        with pytest.raises(AmbiguousNodeError, match="DF-702") as raised:
            await _create("x")
        assert first.name in str(raised.value) and second.name in str(raised.value)
        await first.close()  # a closed instance no longer counts
        record = await _create("y")
        assert await second.express.read("LookupTask", record["id"]) == record
    finally:
        await first.close()
        await second.close()
