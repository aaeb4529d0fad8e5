"""DataFlow: a workflow-native, async database framework.

``import dataflow`` stays cheap: the heavy parts load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import DataFlowError
from .hookspecs import hookimpl
from .model import field

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .capabilities import Capabilities
    from .core import DataFlow

__all__ = ["Capabilities", "DataFlow", "DataFlowError", "field", "hookimpl", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "DataFlow":
        from .core import DataFlow

        return DataFlow
    if name == "Capabilities":
        from .capabilities import Capabilities

        return Capabilities
    raise AttributeError(f"module 'dataflow' has no attribute {name!r}")
