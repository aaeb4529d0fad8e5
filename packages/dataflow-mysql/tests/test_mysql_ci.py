"""Under CI an unreachable server must fail the run, never skip it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def test_unreachable_server_fails_under_ci(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CI": "true", "DATAFLOW_MYSQL_URL": f"mysql://root@127.0.0.1:{port}/test"}
    here = Path(__file__).parent
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(here),
         str(here / "test_mysql_contract.py"), "-k", "test_create_returns_the_persisted_record"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "unreachable" in proc.stdout and " skipped" not in proc.stdout.splitlines()[-1]
