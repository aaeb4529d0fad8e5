"""Several initialisers of one empty SQLite file at once: all succeed, none sees DF-602.

Each one plans "create table" from the empty file; the second CREATE then met "table
already exists" and failed with DF-602 (and stayed failed). Now a migration that fails
while the schema changed under it plans again and converges.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from dataflow import DataFlow


def _instance(path: Path) -> DataFlow:
    db = DataFlow(f"sqlite:///{path}")

    @db.model
    class Author:
        name: str

    @db.model
    class Post:
        title: str
        author_id: int = 0

    return db


@pytest.mark.asyncio
async def test_instances_initialising_one_file_together_all_succeed(tmp_path: Path) -> None:
    dbs = [_instance(tmp_path / "shared.db") for _ in range(4)]
    try:
        outcomes = await asyncio.gather(*(db.initialize() for db in dbs), return_exceptions=True)
        assert [o for o in outcomes if isinstance(o, BaseException)] == []
        for i, db in enumerate(dbs):
            await db.express.create("Author", {"name": f"a{i}"})
        assert await dbs[0].express.count("Author") == 4
    finally:
        for db in dbs:
            await db.close()


@pytest.mark.asyncio
async def test_sync_and_async_apis_initialising_at_once_succeed(tmp_path: Path) -> None:
    db = _instance(tmp_path / "both.db")
    try:
        outcomes = await asyncio.gather(
            db.express.count("Author"),
            asyncio.to_thread(db.express_sync.count, "Post"),
            return_exceptions=True)
        assert outcomes == [0, 0]
    finally:
        await db.close()


def _initialise(path: str, start: Any, results: Any) -> None:
    async def main() -> str:
        db = _instance(Path(path))
        try:
            start.wait(30)
            await db.initialize()
            await db.express.create("Author", {"name": "p"})
            return "ok"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            await db.close()

    results.put(asyncio.run(main()))


def test_processes_initialising_one_file_together_all_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    path = str(tmp_path / "processes.db")
    procs = [ctx.Process(target=_initialise, args=(path, start, results)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert outcomes == ["ok"] * 4


@pytest.mark.asyncio
async def test_switching_to_wal_waits_for_a_writer_that_holds_the_file(tmp_path: Path) -> None:
    """A file in rollback-journal mode with another connection inside a write transaction:
    SQLite answers ``PRAGMA journal_mode = WAL`` with "database is locked" at once, busy
    timeout or not. The connection being opened asks again until the writer is done, instead
    of failing the first statement."""
    import sqlite3

    path = tmp_path / "held.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x INTEGER)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    probe = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:  # the server-side behaviour this relies on: an immediate refusal
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("PRAGMA journal_mode = WAL")
    finally:
        probe.close()
    db = _instance(path)
    try:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, writer.execute, "COMMIT")
        await db.initialize()
        await db.express.create("Author", {"name": "after the writer"})
        assert await db.express.count("Author") == 1
        check = sqlite3.connect(path)
        try:
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert check.execute("SELECT count(*) FROM other").fetchone()[0] == 1
        finally:
            check.close()
    finally:
        await db.close()
        writer.close()
