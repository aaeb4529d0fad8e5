"""Without dataflow-fabric, its API says what to install (DF-105) instead of failing obscurely."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def test_import_dataflow_fabric_without_the_package_names_it() -> None:
    done = run("""
        import sys
        sys.modules["dataflow_fabric"] = None  # as if it were not installed
        try:
            import dataflow.fabric
        except Exception as exc:
            print(type(exc).__name__, exc)
    """)
    assert "ExtensionNotInstalledError [DF-105]" in done.stdout, done.stderr
    assert "pip install ./packages/dataflow-fabric" in done.stdout


def test_fabric_methods_without_the_plugin_name_the_package() -> None:
    done = run("""
        from dataflow import DataFlow
        db = DataFlow("sqlite://:memory:")
        print(hasattr(db, "start"))
        for name in ("source", "product", "start", "stop"):
            try:
                getattr(db, name)
            except Exception as exc:
                print(name, exc.code, "dataflow-fabric" in str(exc))
        try:
            db.no_such_thing
        except AttributeError as exc:
            print("plain", type(exc).__name__)
    """, DATAFLOW_BLOCK_PLUGINS="fabric")
    lines = done.stdout.split("\n")
    assert lines[0] == "False", done.stderr
    assert lines[1:5] == [f"{n} DF-105 True" for n in ("source", "product", "start", "stop")]
    assert lines[5] == "plain AttributeError"
