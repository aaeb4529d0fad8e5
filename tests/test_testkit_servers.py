"""The kit's server lookup: env URL first, probe, and fail (not skip) under CI=true."""

from __future__ import annotations

import pytest

from dataflow.testkit import servers


async def _ok(url: str) -> None:
    assert url


async def _refused(url: str) -> None:
    raise ConnectionRefusedError(url)


def test_env_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_URL", "db://from-env")
    assert servers.server_url("KIT_URL", "db://default", _ok) == "db://from-env"
    monkeypatch.delenv("KIT_URL")
    assert servers.server_url("KIT_URL", "db://default", _ok) == "db://default"


def test_unreachable_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        servers.server_url("KIT_URL", "db://nowhere", _refused)


def test_unreachable_skips_with_reason_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        servers.server_url("KIT_URL", "db://nowhere", _refused)


def test_container_is_used_only_with_a_docker_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIT_URL", raising=False)
    monkeypatch.setattr(servers, "docker_engine_available", lambda: True)
    assert servers.server_url("KIT_URL", "db://default", _ok, container=lambda: "db://box") == "db://box"
    monkeypatch.setattr(servers, "docker_engine_available", lambda: False)
    assert servers.server_url("KIT_URL", "db://default", _ok, container=lambda: "db://box") == "db://default"
