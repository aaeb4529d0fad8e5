"""Every source config takes the shared behaviour keywords (circuit, staleness, webhook) from
one keyword-only base, and a source built from any of them uses what was given."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from dataflow import DataFlow
from dataflow.fabric import (
    CircuitBreakerConfig,
    CloudSourceConfig,
    DatabaseSourceConfig,
    FileSourceConfig,
    RestSourceConfig,
    SourceBehaviour,
    StalenessPolicy,
    StreamSourceConfig,
)

SHARED = ("circuit", "staleness", "webhook_secret_env", "webhook_tolerance")

#: each config with its required first argument
CONFIGS: list[tuple[type[SourceBehaviour], dict[str, Any]]] = [
    (RestSourceConfig, {"url": "https://api.example.com"}),
    (FileSourceConfig, {"path": "feed.json"}),
    (DatabaseSourceConfig, {"url": "sqlite://:memory:"}),
    (CloudSourceConfig, {"bucket": "b"}),
    (StreamSourceConfig, {"url": "ws://127.0.0.1:1/x"}),
]


@pytest.mark.parametrize(("config", "required"), CONFIGS, ids=lambda c: getattr(c, "__name__", ""))
def test_shared_keywords_are_keyword_only_and_set(config: type[SourceBehaviour],
                                                  required: dict[str, Any]) -> None:
    params = inspect.signature(config).parameters
    for name in SHARED:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    # the config's own first field is still positional
    first = next(iter(required))
    assert params[first].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD

    circuit = CircuitBreakerConfig(failure_threshold=2)
    staleness = StalenessPolicy(max_age=1.0, on_stale="fail")
    made = config(*required.values(), circuit=circuit, staleness=staleness,  # type: ignore[call-arg]
                  webhook_secret_env="HOOK_SECRET", webhook_tolerance=5.0)
    assert (made.circuit, made.staleness, made.webhook_secret_env, made.webhook_tolerance) == (
        circuit, staleness, "HOOK_SECRET", 5.0)
    default = config(*required.values())  # type: ignore[call-arg]
    assert default.circuit == CircuitBreakerConfig() and default.staleness == StalenessPolicy()
    assert default.webhook_secret_env is None and default.webhook_tolerance == 300.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.circuit = CircuitBreakerConfig()  # type: ignore[misc]


async def test_a_source_uses_its_configs_breaker_and_policy(tmp_path: Any) -> None:
    db = DataFlow("sqlite://:memory:")
    try:
        source = db.source("feed", FileSourceConfig(tmp_path / "feed.json", watch=False,
                                                    circuit=CircuitBreakerConfig(failure_threshold=1),
                                                    staleness=StalenessPolicy(max_age=2.0)))
        assert source.breaker.config.failure_threshold == 1
        assert source.policy.max_age == 2.0
    finally:
        await db.close()
