"""DataFlow's PostgreSQL backend: asyncpg, binary COPY, server-sized pools, pgvector."""

from .capabilities import PostgresCapabilities

__all__ = ["PostgresCapabilities"]
