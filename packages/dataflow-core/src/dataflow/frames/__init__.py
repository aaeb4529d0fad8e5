"""``db.frames``: a validated frame pipeline over Polars (the ``frames`` extra).

Polars is imported here, never by ``import dataflow``: the first ``db.frames`` access
loads this package, and without Polars it fails with DF-101 naming the extra.
"""

from __future__ import annotations

from ..errors import ConfigurationError

try:
    import polars  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in an environment without polars
    raise ConfigurationError(
        "db.frames needs Polars, which is not installed.",
        fix='install the extra: pip install "./packages/dataflow-core[frames]".') from exc

from .api import ERROR_COLUMN, ByModel, FrameResult, Frames, FramesSync, ReadStats

__all__ = ["ERROR_COLUMN", "ByModel", "FrameResult", "Frames", "FramesSync", "ReadStats"]
