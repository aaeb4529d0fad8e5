"""The README's frames example runs as written (on the embedded SQLite backend)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_frames_example_runs() -> None:
    import polars  # noqa: F401  (the frames extra, installed by requirements-dev.txt)
    text = README.read_text()
    found = re.search(r"<!-- frames-example -->\n```python\n(.*?)```", text, re.S)
    assert found, "README lost its frames example"
    out = subprocess.run([sys.executable, "-c", found.group(1)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "DF-902" in out.stdout and "Robert" in out.stdout
