"""Binary COPY payloads built from Polars columns (``db.frames`` on PostgreSQL).

Imported only by :meth:`PostgresAdapter.copy_frame`, i.e. only when the frames extra is in
use. Each column's binary wire form (big-endian integers and floats, microseconds and days
since 2000-01-01, UTF-8 text) is computed with NumPy over the whole column and scattered
into one buffer per chunk: no Python object per value. A column whose live SQL type or frame
dtype has no mapping here makes the caller fall back to ``copy_records_to_table``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = b"\xff\xff"
#: 2000-01-01, PostgreSQL's epoch, in Unix microseconds and days
PG_EPOCH_US = 946_684_800_000_000
PG_EPOCH_DAYS = 10_957

#: live column type (``format_type``) -> (wire kind, the frame dtype it takes)
_KINDS: dict[str, tuple[str, pl.DataType]] = {
    "bigint": ("int8", pl.Int64()),
    "double precision": ("float8", pl.Float64()),
    "boolean": ("bool", pl.Boolean()),
    "timestamp with time zone": ("timestamptz", pl.Datetime("us", "UTC")),
    "date": ("date", pl.Date()),
    "text": ("text", pl.String()),
    "uuid": ("uuid", pl.String()),  # the canonical hyphenated text of db.frames
}


def wire_kinds(live_types: list[str], columns: list[pl.Series]) -> list[str] | None:
    """The wire kind of each column, or None when one column has no binary mapping here."""
    kinds = []
    for sql_type, series in zip(live_types, columns, strict=True):
        dtype = series.dtype
        if dtype == pl.Null or series.null_count() == series.len():
            # every value NULL: any column type takes it
            kinds.append("null")
            continue
        base = "text" if sql_type.startswith("character varying") else sql_type
        found = _KINDS.get(base)
        if found is None or not (dtype == found[1] or dtype == pl.Null):
            return None
        kinds.append(found[0])
    return kinds


def _fixed(series: pl.Series, kind: str) -> tuple[np.ndarray, int]:
    """(rows x width uint8 matrix of big-endian values, width); nulls hold zeros."""
    if kind == "int8":
        values = series.fill_null(0).to_numpy().astype(">i8")
    elif kind == "float8":
        values = series.fill_null(0.0).to_numpy().astype(">f8")
    elif kind == "bool":
        values = series.fill_null(False).cast(pl.UInt8).to_numpy().astype("u1")
    elif kind == "timestamptz":
        micros = series.dt.epoch("us").fill_null(PG_EPOCH_US).to_numpy()
        values = (micros - PG_EPOCH_US).astype(">i8")
    elif kind == "date":
        days = series.cast(pl.Int32).fill_null(PG_EPOCH_DAYS).to_numpy()
        values = (days - PG_EPOCH_DAYS).astype(">i4")
    else:
        raise AssertionError(kind)
    width = values.dtype.itemsize
    return np.ascontiguousarray(values).view(np.uint8).reshape(len(series), width), width


def payload(frame: pl.DataFrame, kinds: list[str]) -> bytes:
    """The rows of ``frame`` as binary COPY tuples (no header or trailer)."""
    n = frame.height
    present = [frame.get_column(c).is_not_null().to_numpy() for c in frame.columns]
    lengths: list[np.ndarray] = []
    datas: list[tuple[np.ndarray, int] | np.ndarray] = []
    for name, kind, valid in zip(frame.columns, kinds, present, strict=True):
        series = frame.get_column(name)
        if kind == "null":
            lengths.append(np.full(n, -1, dtype=np.int64))
            datas.append((np.zeros((n, 0), np.uint8), 0))
        elif kind == "uuid":
            hexes = series.drop_nulls().str.replace_all("-", "", literal=True)
            raw = bytes.fromhex(hexes.str.join("").item()) if valid.any() else b""
            matrix = np.zeros((n, 16), dtype=np.uint8)
            matrix[valid] = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 16)
            datas.append((matrix, 16))
            lengths.append(np.where(valid, 16, -1))
        elif kind == "text":
            size = series.str.len_bytes().fill_null(0).to_numpy().astype(np.int64)
            joined = series.drop_nulls().str.join("").item() if valid.any() else ""
            datas.append(np.frombuffer(joined.encode("utf-8"), dtype=np.uint8))
            lengths.append(np.where(valid, size, -1))
        else:
            matrix, width = _fixed(series, kind)
            datas.append((matrix, width))
            lengths.append(np.where(valid, width, -1))
    sizes = np.full(n, 2, dtype=np.int64)
    for length in lengths:
        sizes += 4 + np.maximum(length, 0)
    starts = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(sizes[:-1], out=starts[1:])
    buf = np.zeros(int(sizes.sum()), dtype=np.uint8)
    ncols = np.frombuffer(len(kinds).to_bytes(2, "big"), dtype=np.uint8)
    buf[starts[:, None] + np.arange(2)] = ncols
    cursor = starts + 2
    for length, data, valid in zip(lengths, datas, present, strict=True):
        header = length.astype(">i4").view(np.uint8).reshape(n, 4)
        buf[cursor[:, None] + np.arange(4)] = header
        at = cursor[valid] + 4
        if isinstance(data, tuple):
            matrix, width = data
            if width:
                buf[at[:, None] + np.arange(width)] = matrix[valid]
        elif data.size:
            lens = length[valid]
            source_starts = np.zeros(len(lens), dtype=np.int64)
            np.cumsum(lens[:-1], out=source_starts[1:])
            index = np.arange(data.size, dtype=np.int64) + np.repeat(at - source_starts, lens)
            buf[index] = data
        cursor = cursor + 4 + np.maximum(length, 0)
    return bytes(buf.tobytes())


def stream(frame: pl.DataFrame, kinds: list[str], chunk: int) -> Iterator[bytes]:
    """The whole COPY stream: header, ``chunk`` rows per piece, trailer."""
    yield HEADER
    for start in range(0, frame.height, chunk):
        yield payload(frame.slice(start, chunk), kinds)
    yield TRAILER
