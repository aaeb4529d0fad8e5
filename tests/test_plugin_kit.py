"""The plugin author's kit: the ``testkit`` extra installs what the kit imports, the adapter
template installs outside this repository without reaching for the foreign ``dataflow-core``,
and the SQL base classes are reusable as they are (no copying to fix them)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dataflow.adapter import DatabaseURL
from dataflow.errors import UnsupportedError
from dataflow.model import build_model_spec
from dataflow.sql.compiler import SQLCompiler
from dataflow_sqlite.adapter import SQLiteAdapter
from dataflow_sqlite.capabilities import SQLiteCapabilities

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "packages/dataflow-core"
TEMPLATE = ROOT / "_template/dataflow-adapter"


def _requirement_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", req, maxsplit=1)[0].lower().replace("_", "-")


def _imported_top_levels(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_testkit_extra_installs_every_module_the_kit_imports() -> None:
    project = tomllib.loads((CORE / "pyproject.toml").read_text())["project"]
    allowed = {_requirement_name(r) for r in project["dependencies"]}
    allowed |= {_requirement_name(r) for r in project["optional-dependencies"]["testkit"]}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module in _imported_top_levels(CORE / "src/dataflow/testkit"):
        if module in sys.stdlib_module_names or module in ("dataflow", "__future__"):
            continue
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not dists & allowed:
            missing[module] = sorted(dists)
    assert not missing, f"the kit imports these, but dataflow-core[testkit] does not install them: {missing}"
    assert "hypothesis" in allowed


def test_template_never_pins_or_fetches_dataflow_core_by_name() -> None:
    project = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())["project"]
    for req in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        if _requirement_name(req) == "dataflow-core":
            assert not re.search(r"[<>=~!]", req.split(";")[0]), f"version pin trap: {req}"
    readme = (TEMPLATE / "README.md").read_text()
    installs = [line for line in readme.splitlines() if "pip install" in line]
    assert installs, "the template README gives an install command"
    for line in installs:
        # dataflow-core only ever from a path, together with the adapter in one command
        assert "packages/dataflow-core[testkit]" in line and '-e ".[test]"' in line, line
    conftest = (TEMPLATE / "tests/conftest.py").read_text()
    assert "pytest.UsageError" in conftest, "a foreign dataflow-core fails loudly"
    assert 'pytest_plugins = ["dataflow.testkit.plugin"]' in conftest


def test_template_sources_compile_and_name_the_entry_point() -> None:
    project = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["dataflow.plugins"] == {"myadapter": "dataflow_myadapter.plugin"}
    for path in (TEMPLATE / "src").rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


class _Compiler(SQLCompiler):
    name = "kit-test"

    def column_type(self, f: Any) -> str:
        return "TEXT"


def test_limit_offset_never_emits_limit_minus_one() -> None:
    c = _Compiler()
    p = c.params()
    assert c.limit_offset(None, 5, p) == " OFFSET 5"
    assert c.limit_offset(3, 5, p) == " LIMIT 3 OFFSET 5"
    assert c.limit_offset(3, None, p) == " LIMIT 3"
    assert "-1" not in c.limit_offset(None, 7, p)


def test_column_ddl_knows_its_table() -> None:
    class Item:
        name: str

    spec = build_model_spec(Item)
    seen: list[str] = []

    class PerTable(_Compiler):
        def column_ddl(self, model: Any, f: Any) -> str:
            seen.append(model.table)
            return super().column_ddl(model, f)

    sql = PerTable().create_table(spec)[0]
    assert set(seen) == {"item"} and '"name" TEXT NOT NULL' in sql


class _NoSavepoints(SQLiteCapabilities):
    name = "sqlite-no-savepoints"
    savepoints = False


class _NoSavepointAdapter(SQLiteAdapter):
    capabilities = _NoSavepoints


async def test_base_savepoints_respect_the_capability() -> None:
    adapter = _NoSavepointAdapter(DatabaseURL.parse("sqlite://:memory:"))
    sent: list[str] = []

    async def execute(conn: Any, sql: str, params: tuple[Any, ...]) -> int:
        sent.append(sql)
        return 0

    adapter.execute = execute  # type: ignore[method-assign]
    for call in (adapter.savepoint, adapter.release_savepoint, adapter.rollback_to_savepoint):
        with pytest.raises(UnsupportedError, match="declares no savepoints"):
            await call(None, "sp")
    assert sent == [], "nothing reached the database"
    await adapter.close()


EXAMPLE = ROOT / "examples/dataflow-duckdb"


def test_duckdb_example_is_a_small_third_party_adapter_on_the_entry_point() -> None:
    sources = [p for p in EXAMPLE.rglob("*") if p.suffix in (".py", ".toml") and ".egg" not in str(p)]
    lines = sum(len(p.read_text().splitlines()) for p in sources)
    assert lines < 400, f"the example adapter grew to {lines} lines"
    for path in sources:  # built from the template and docs: no other adapter's code
        assert not re.search(r"dataflow_(sqlite|postgres|mysql)", path.read_text()), path
    points = {e.name: e.value for e in importlib.metadata.entry_points(group="dataflow.plugins")}
    assert points.get("duckdb") == "dataflow_duckdb.plugin"
    assert "examples/dataflow-duckdb" in (ROOT / "scripts/test.sh").read_text()
    assert "-e ./examples/dataflow-duckdb" in (ROOT / "requirements-dev.txt").read_text()


async def test_duckdb_adapter_is_found_by_url_scheme() -> None:
    from dataflow import DataFlow

    db = DataFlow("duckdb://:memory:")

    @db.model
    class Note:
        text: str

    try:
        note = await db.express.create("Note", {"text": "hi"})
        assert type(db.adapter).__name__ == "DuckDBAdapter"
        assert await db.express.read("Note", note["id"]) == note
    finally:
        await db.close()


def test_a_compiler_that_renders_comparisons_its_own_way_is_compiled_per_call() -> None:
    """Adapters keep a statement's text per model only while the dialect compiler renders it
    as the base compiler does (``renders_as_base``); a third party's compiler overriding one
    of the methods involved is asked every time."""
    from dataflow.sql.compiler import renders_as_base

    class OwnComparisons(SQLCompiler):
        def visit_comparison(self, *args: Any) -> str:
            return super().visit_comparison(*args)

    plain, own = SQLCompiler(), OwnComparisons()
    assert renders_as_base(plain, "compile_update", "visit_comparison", "_encoders")
    assert not renders_as_base(own, "compile_update", "visit_comparison", "_encoders")
    assert renders_as_base(own, "compile_update", "_encoders")
