"""Reaching the server a contract run needs.

Order: the URL in the named environment variable; else, where a Docker engine answers
and ``testcontainers`` is installed, a throwaway container; else the default local URL.
The URL is then probed: an unreachable server skips locally with the reason, and fails
the run under ``CI=true``: in CI a missing backend is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def docker_engine_available() -> bool:
    """True when a Docker engine (not just the client) answers."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def unreachable(what: str, problem: object) -> None:
    """Skip (locally) or fail (under CI=true) because ``what`` cannot be reached."""
    message = f"{what} is unreachable: {problem}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a backend that cannot be reached fails the run)",
                    pytrace=False)
    pytest.skip(reason=f"backend not reachable (set CI=true to fail instead): {message}")


def server_url(
    env_var: str,
    default: str,
    probe: Callable[[str], Awaitable[Any]],
    *,
    container: Callable[[], str] | None = None,
    what: str = "the database server",
) -> str:
    """The URL to test against, probed; see the module docstring for the order."""
    url = os.environ.get(env_var)
    if url is None and container is not None and docker_engine_available():
        url = container()
    url = url or default
    try:
        asyncio.run(asyncio.wait_for(probe(url), 15))
    except Exception as exc:  # any failure to connect is reported the same way
        unreachable(f"{what} at {url}", f"{type(exc).__name__}: {exc}")
    return url
