"""Streaming reads: the rows of a query as an async iterator, read from the database as they
are consumed (``db.express.stream``), so memory holds one batch, never the whole result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

#: rows per batch when the caller does not choose
DEFAULT_STREAM_BATCH = 1_000


class RowStream:
    """``async for row in stream`` (one record at a time) or ``async for batch in
    stream.batches()`` (lists of up to ``batch_size`` records) -- one or the other, once.

    The database connection is taken when iteration starts and given back when the rows run
    out, when the stream is closed (``await stream.aclose()``, or leaving ``async with
    stream:``) or when the iterating task is cancelled. A loop left early with ``break``
    should close the stream (``async with``) to give the connection back at once rather
    than when the stream is garbage-collected.
    """

    def __init__(self, source: AsyncIterator[list[dict[str, Any]]]) -> None:
        self._source = source
        self._taken = False

    def _take(self) -> AsyncIterator[list[dict[str, Any]]]:
        if self._taken:
            from .errors import ValidationError

            raise ValidationError("this stream was iterated already; a stream reads its rows once.",
                                  fix="call express.stream(...) again for another pass.")
        self._taken = True
        return self._source

    def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The records in lists of up to ``batch_size``."""
        return self._take()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._rows(self._take())

    @staticmethod
    async def _rows(source: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[dict[str, Any]]:
        async for batch in source:
            for row in batch:
                yield row

    async def aclose(self) -> None:
        """Stop reading and give the connection back (idempotent)."""
        close = getattr(self._source, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> RowStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
