"""db.on_write: listeners hear about committed express and node writes, per model."""

from __future__ import annotations

import pytest

from dataflow import DataFlow
from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder


@pytest.fixture
async def db():
    instance = DataFlow("sqlite://:memory:")

    @instance.model
    class Item:
        name: str

    @instance.model
    class Tag:
        label: str

    yield instance
    await instance.close()


async def test_each_write_operation_announces_its_model(db: DataFlow) -> None:
    heard: list[frozenset[str]] = []
    db.on_write(heard.append)
    item = await db.express.create("Item", {"name": "a"})
    await db.express.update("Item", item["id"], {"name": "b"})
    await db.express.bulk_create("Tag", [{"label": "x"}, {"label": "y"}])
    await db.express.bulk_delete("Tag", {"label": "x"})
    await db.express.upsert("Item", {"id": item["id"], "name": "c"})
    await db.express.delete("Item", item["id"])
    await db.express.list("Item")  # reads announce nothing
    await db.express.count("Tag")
    assert heard == [frozenset({m}) for m in ("Item", "Item", "Tag", "Tag", "Item", "Item")]


async def test_writes_in_a_transaction_are_announced_once_after_commit(db: DataFlow) -> None:
    heard: list[frozenset[str]] = []
    db.on_write(heard.append)
    async with db.transaction():
        await db.express.create("Item", {"name": "a"})
        async with db.transaction():  # a savepoint
            await db.express.create("Tag", {"label": "t"})
        assert heard == []
    assert heard == [frozenset({"Item", "Tag"})]


async def test_a_rolled_back_transaction_announces_nothing(db: DataFlow) -> None:
    heard: list[frozenset[str]] = []
    db.on_write(heard.append)
    with pytest.raises(ZeroDivisionError):
        async with db.transaction():
            await db.express.create("Item", {"name": "a"})
            1 / 0  # noqa: B018
    assert heard == []
    with pytest.raises(Exception):  # noqa: B017 -- a refused write announces nothing either
        await db.express.create("Item", {"nam": "typo"})
    assert heard == []


async def test_node_writes_and_the_sync_api_are_announced(db: DataFlow) -> None:
    heard: list[frozenset[str]] = []
    db.on_write(heard.append)
    wf = WorkflowBuilder()
    wf.add_node("ItemCreateNode", "add", {"name": "n"})
    await AsyncLocalRuntime().execute(wf.build())
    assert heard == [frozenset({"Item"})]
    db.express_sync.create("Tag", {"label": "sync"})
    assert heard[-1] == frozenset({"Tag"})


async def test_a_failing_listener_is_logged_and_the_others_still_run(
        db: DataFlow, caplog: pytest.LogCaptureFixture) -> None:
    heard: list[frozenset[str]] = []

    def broken(models: frozenset[str]) -> None:
        raise RuntimeError("listener bug")

    db.on_write(broken)
    remove = db.on_write(heard.append)
    created = await db.express.create("Item", {"name": "a"})
    assert created["name"] == "a" and heard == [frozenset({"Item"})]
    assert "listener bug" in caplog.text
    remove()
    await db.express.create("Item", {"name": "b"})
    assert heard == [frozenset({"Item"})]
