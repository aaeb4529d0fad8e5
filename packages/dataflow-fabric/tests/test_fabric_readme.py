"""The README's fabric example runs as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_fabric_example_runs() -> None:
    text = README.read_text()
    block = text.split("<!-- fabric-example -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120,
                          cwd=README.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["{'orders': 1, 'total': 4.5}", "['tea']", "400"]
