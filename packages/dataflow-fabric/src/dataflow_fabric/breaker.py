"""A circuit breaker per source: closed -> open after N failures -> half-open trial -> closed."""

from __future__ import annotations

import time
from typing import Literal

from .config import CircuitBreakerConfig

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, config: CircuitBreakerConfig) -> None:
        self.config = config
        self._state: State = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self._trials = 0

    @property
    def state(self) -> State:
        if self._state == "open" and time.monotonic() - self.opened_at >= self.config.recovery_timeout:
            self._state = "half_open"
            self._trials = 0
        return self._state

    def allow(self) -> bool:
        """May a call go through now? (In half-open, only the configured trial calls.)"""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and self._trials < self.config.half_open_calls:
            self._trials += 1
            return True
        return False

    def record_success(self) -> None:
        self._state = "closed"
        self.failures = 0
        self._trials = 0

    def record_failure(self) -> None:
        self.failures += 1
        if self._state == "half_open" or self.failures >= self.config.failure_threshold:
            self._state = "open"
            self.opened_at = time.monotonic()

    def retry_in(self) -> float:
        return max(0.0, self.config.recovery_timeout - (time.monotonic() - self.opened_at))
