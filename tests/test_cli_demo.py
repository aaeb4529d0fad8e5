"""The ``dataflow`` console command: ``--version`` and ``demo`` end to end, in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROWS = 2_000


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflow.cli", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )


def test_version() -> None:
    import dataflow

    proc = _run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"dataflow {dataflow.__version__}"


def test_demo_runs_and_prints_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    proc = _run("demo", "--rows", str(ROWS), "--db", url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "DataFlow demo summary" in out
    # every row of the bulk import landed, plus the one order the workflow created
    assert re.search(rf"imported:\s+{ROWS:,} orders in", out), out
    assert re.search(rf"orders:\s+{ROWS + 1:,}\n", out), out
    # 20 customers seeded + 1 from the workflow; 10 products seeded + 1 new from the upsert
    assert re.search(r"customers:\s+21\n", out), out
    assert re.search(r"products:\s+11\n", out), out
    assert "updated title 'Product 0 (renamed)'" in out
    # statuses cycle over 4 values and quantity over 1..5: deterministic counts
    assert re.search(rf"not cancelled:\s+{ROWS * 3 // 4:,}\n", out), out
    assert re.search(r"workflow:\s+customer 21 -> order \d+ \(1 order\(s\)\)", out), out
    assert "stock update undone: True -> nothing remained" in out
    assert re.search(rf"orders before {ROWS + 1:,}, after {ROWS + 1:,}", out), out
    # the progress bar goes to stderr, not into the summary
    assert "100%" in proc.stderr
    assert "[#" not in out
    assert (tmp_path / "demo.db").exists()


def test_demo_default_database_is_temporary() -> None:
    proc = _run("demo", "--rows", "50", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DataFlow demo summary" in proc.stdout
    assert "100%" not in proc.stderr


def test_demo_without_sqlite_adapter_names_the_package() -> None:
    # blocking the entry point is what a missing dataflow-sqlite looks like to core
    proc = _run("demo", "--rows", "10", env={"DATAFLOW_BLOCK_PLUGINS": "sqlite"})
    assert proc.returncode != 0
    assert "[DF-102]" in proc.stderr
    assert "dataflow-sqlite" in proc.stderr
    assert "Traceback" not in proc.stderr
