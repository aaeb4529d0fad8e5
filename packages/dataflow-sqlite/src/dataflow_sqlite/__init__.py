"""DataFlow's embedded default backend: SQLite through aiosqlite."""

from .capabilities import SQLiteCapabilities

__all__ = ["SQLiteCapabilities"]
