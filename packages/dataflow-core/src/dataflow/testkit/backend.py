"""The description of the backend under test that an adapter's conftest provides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..capabilities import Capabilities


@dataclass(frozen=True)
class Backend:
    """URL of a reachable server, and the adapter's capability declaration."""

    url: str
    capabilities: type[Capabilities]
    #: extra keyword arguments for DataFlow(...) (pool_size, adapter options)
    options: dict[str, Any] = field(default_factory=dict)
