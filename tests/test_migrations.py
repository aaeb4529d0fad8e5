"""Schema work: a failed DDL fails once, clearly, and is not retried on every access."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dataflow import DataFlow
from dataflow.errors import MigrationFailedError, MigrationRefusedError


async def test_failed_ddl_fails_initialize_once_and_is_not_retried(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    blocker = sqlite3.connect(path)
    blocker.execute("CREATE TABLE ix_note_text (x)")  # takes the index's name
    blocker.commit()

    db = DataFlow(f"sqlite:///{path}")

    @db.model
    class Note:
        text: str = ""
        __dataflow__ = {"indexes": [("text",)]}

    with pytest.raises(MigrationFailedError) as first:
        await db.initialize()
    message = str(first.value)
    assert "DF-602" in message and "create_table note" in message  # prints the plan
    assert "rolled back" in message
    check = sqlite3.connect(path)
    assert check.execute("SELECT name FROM sqlite_master WHERE name = 'note'").fetchall() == []
    check.close()
    # implicit use re-raises the stored failure instead of running DDL again
    with pytest.raises(MigrationFailedError) as again:
        await db.express.count("Note")
    assert again.value is first.value

    blocker.execute("DROP TABLE ix_note_text")
    blocker.commit()
    blocker.close()
    await db.initialize()  # an explicit call retries
    assert await db.express.count("Note") == 0
    await db.close()


async def test_schema_mismatch_without_auto_migrate_is_refused(tmp_path: Path) -> None:
    db = DataFlow(f"sqlite:///{tmp_path / 'x.db'}", auto_migrate=False)

    @db.model
    class Thing:
        name: str

    with pytest.raises(MigrationRefusedError) as err:
        await db.initialize()
    assert "create_table thing" in str(err.value)
    await db.close()


async def test_sync_calls_inside_a_transaction_are_refused_not_deadlocked() -> None:
    from dataflow.errors import TransactionError
    from dataflow.workflow import LocalRuntime, WorkflowBuilder

    db = DataFlow("sqlite://:memory:")

    @db.model
    class Note:
        text: str

    async with db.transaction():
        await db.express.create("Note", {"text": "inside"})
        with pytest.raises(TransactionError):
            db.express_sync.count("Note")
        wf = WorkflowBuilder().add_node("NoteCountNode", "count", {}).build()
        with pytest.raises(TransactionError):
            LocalRuntime().execute(wf)
    assert db.express_sync.count("Note") == 1
    await db.close()
