"""``dataflow inspect | validate | migrate module:db``: output and exit codes, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

APP = textwrap.dedent("""
    import os
    from dataflow import DataFlow, field
    from dataflow.workflow import WorkflowBuilder

    db = DataFlow(os.environ["SHOP_URL"], name="shop")

    @db.model
    class Shop:
        code: str = field(unique=True)
        name: str
        {extra}

    flow = WorkflowBuilder()
    flow.add_node("ShopCreateNode", "make", {{"code": "a", "name": "A"}})
    flow.add_node("ShopReadNode", "read", {{}})
    flow.add_connection("make", "{output}", "read", "id")
""")


def _app(tmp: Path, extra: str = "", output: str = "record.id") -> None:
    (tmp / "shopapp.py").write_text(APP.format(extra=extra, output=output))


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOP_URL": f"sqlite:///{tmp / 'shop.db'}", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "dataflow.cli", *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=120)


def test_inspect_prints_models_and_nodes(tmp_path: Path) -> None:
    _app(tmp_path)
    proc = _cli(tmp_path, "inspect", "shopapp:db")
    assert proc.returncode == 0, proc.stderr
    assert "Shop (table shop)" in proc.stdout and "ShopBulkCreateNode" in proc.stdout
    data = json.loads(_cli(tmp_path, "inspect", "shopapp:db", "--json").stdout)
    assert set(data["models"]["Shop"]["fields"]) >= {"id", "code", "name"}
    assert data["nodes"]["ShopCountNode"]["outputs"] == {"count": None}


def test_validate_exit_codes(tmp_path: Path) -> None:
    _app(tmp_path)
    ok = _cli(tmp_path, "validate", "shopapp:db")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 workflow(s): 0 problem(s)" in ok.stdout
    _app(tmp_path, output="record.idd")
    bad = _cli(tmp_path, "validate", "shopapp:db")
    assert bad.returncode == 1
    assert "workflow flow" in bad.stderr and "has no field 'idd'" in bad.stderr
    assert _cli(tmp_path, "validate", "nomodule:db").returncode == 2
    assert _cli(tmp_path, "validate", "shopapp").returncode == 2


def test_migrate_plan_apply_and_destructive(tmp_path: Path) -> None:
    _app(tmp_path)
    pending = _cli(tmp_path, "migrate", "shopapp:db", "--plan")
    assert pending.returncode == 3 and "create_table shop" in pending.stdout
    applied = _cli(tmp_path, "migrate", "shopapp:db", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert _cli(tmp_path, "migrate", "shopapp:db", "--plan").returncode == 0
    # a required column without a default is destructive: planned with 4, refused without
    # the flag (nothing applied)
    _app(tmp_path, extra="stock: int")
    assert _cli(tmp_path, "migrate", "shopapp:db", "--plan").returncode == 4
    refused = _cli(tmp_path, "migrate", "shopapp:db", "--apply")
    assert refused.returncode == 4 and "DF-601" in refused.stderr
    assert _cli(tmp_path, "migrate", "shopapp:db", "--plan").returncode == 4, "still pending"
    # an additive one: pending (3), then applied
    _app(tmp_path, extra="stock: int = 0")
    assert _cli(tmp_path, "migrate", "shopapp:db", "--plan").returncode == 3
    assert _cli(tmp_path, "migrate", "shopapp:db", "--apply").returncode == 0
    assert _cli(tmp_path, "migrate", "shopapp:db").returncode == 2, "--plan or --apply"


def test_import_dataflow_does_not_load_the_cli_libraries() -> None:
    code = "import sys, dataflow; print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
