"""Entry points load lazily and once; an environment variable disables autoload."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


def test_import_loads_no_plugin_and_no_driver() -> None:
    out = run("""
        import sys, dataflow
        heavy = ("dataflow_", "aiosqlite", "asyncpg", "aiomysql", "pydantic", "polars")
        print(sorted(m for m in sys.modules if m.startswith(heavy)))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_sqlite_is_loaded_through_the_entry_point_once() -> None:
    out = run("""
        from dataflow import plugins
        pm = plugins.load()
        assert plugins.load() is pm
        names = [name for name, _ in pm.list_name_plugin()]
        print(names.count("sqlite"), "dataflow.default_pool_policy" in names)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "True"]


def test_autoload_can_be_disabled() -> None:
    out = run("""
        from dataflow import DataFlow
        try:
            DataFlow("sqlite://:memory:")
        except Exception as exc:
            print(type(exc).__name__, exc)
        import dataflow_sqlite.plugin as p
        from dataflow import plugins
        plugins.register(p)
        print(type(DataFlow("sqlite://:memory:").adapter).__name__)
    """, DATAFLOW_DISABLE_PLUGIN_AUTOLOAD="1")
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    assert first.startswith("AdapterNotFoundError [DF-102]")
    assert "dataflow-sqlite" in first
    assert second == "SQLiteAdapter"


def test_named_plugin_can_be_blocked() -> None:
    out = run("""
        from dataflow import DataFlow
        try:
            DataFlow("sqlite://:memory:")
        except Exception as exc:
            print(exc.code)
    """, DATAFLOW_BLOCK_PLUGINS="sqlite")
    assert out.stdout.strip() == "DF-102", out.stderr


def test_process_exits_without_close() -> None:
    out = run("""
        import asyncio
        from dataflow import DataFlow
        db = DataFlow("sqlite://:memory:")
        @db.model
        class Note:
            text: str
        async def main():
            await db.express.create("Note", {"text": "hi"})
        asyncio.run(main())
        print(db.express_sync.count("Note"))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
