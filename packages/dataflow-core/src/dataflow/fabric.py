"""``dataflow.fabric``: the data fabric's public API, provided by ``dataflow-fabric``.

Names are looked up in ``dataflow_fabric`` on first use. Importing this module without
that package installed raises DF-105 saying what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from .errors import ExtensionNotInstalledError

PACKAGE = "dataflow-fabric"

if importlib.util.find_spec("dataflow_fabric") is None:
    raise ExtensionNotInstalledError(
        f"dataflow.fabric is provided by {PACKAGE}, which is not installed.",
        fix=f"install it from this repository: pip install ./packages/{PACKAGE}",
        package=PACKAGE,
    )


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("dataflow_fabric"), name)


def __dir__() -> list[str]:
    return list(importlib.import_module("dataflow_fabric").__all__)
