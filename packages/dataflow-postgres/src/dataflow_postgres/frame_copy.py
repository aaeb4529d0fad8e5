"""Binary COPY payloads built from Polars columns (``db.frames`` on PostgreSQL).

Imported only by :meth:`PostgresAdapter.copy_frame`, i.e. only when the frames extra is in
use. Each column's binary wire form (big-endian integers and floats, microseconds and days
since 2000-01-01, UTF-8 text) is computed with NumPy over the whole column and scattered
into one buffer per chunk: no Python object per value. A column whose live SQL type or frame
dtype has no mapping here makes the caller fall back to ``copy_records_to_table``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

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
    "jsonb": ("jsonb", pl.String()),
}


#: at most this many base-10000 digits per numeric value on the columnar path
MAX_NUMERIC_GROUPS = 40
_PLAIN_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)$"


def numeric_text(series: pl.Series) -> pl.Series | None:
    """A DECIMAL column as plain decimal text (``-12.50``), or None when it cannot be
    written column-wise exactly as the dialect writes ``Decimal(value)``: floats (written
    from ``repr``), exponent notation, more than ``MAX_NUMERIC_GROUPS`` digit groups."""
    dtype = series.dtype
    if isinstance(dtype, pl.Decimal) or dtype.is_integer():
        text = series.cast(pl.String)
    elif dtype == pl.String and series.drop_nulls().str.contains(_PLAIN_DECIMAL).all():
        text = series
    else:
        return None
    _, g_int, g_frac = _parts(text)
    return text if g_int + g_frac <= MAX_NUMERIC_GROUPS else None


#: a digit before a point or an exponent: JSON whose numbers JSONB might keep in another
#: form than the dialect's encoder writes them (``1.50``, ``1e16``); such rows are encoded
#: value by value, the rest is sent as it is (JSONB parses it to the same value)
_JSON_NUMBER_FORMS = r"\d[.eE]"


def is_text(series: pl.Series) -> bool:
    return series.dtype == pl.String


def json_text(series: pl.Series, encode: Callable[[Any], str]) -> pl.Series:
    """JSON text column -> the text the dialect's encoder gives ``json.loads(text)``, with
    Python only for the rows whose numbers it could write differently."""
    redo = series.str.contains(_JSON_NUMBER_FORMS).fill_null(False)
    if not redo.any():
        return series
    at = redo.arg_true()
    fixed = pl.Series([encode(json.loads(t)) for t in series.gather(at).to_list()],
                      dtype=pl.String)
    return series.scatter(at, fixed)


def wire_kinds(live_types: list[str], columns: list[pl.Series]) -> list[str] | None:
    """The wire kind of each column, or None when one column has no binary mapping here.
    ``numeric`` columns arrive as plain decimal text (:func:`numeric_text`) and ``jsonb``
    ones as JSON text already in the dialect's form (see ``copy_frame``)."""
    kinds = []
    for sql_type, series in zip(live_types, columns, strict=True):
        dtype = series.dtype
        if dtype == pl.Null or series.null_count() == series.len():
            # every value NULL: any column type takes it
            kinds.append("null")
            continue
        if sql_type.startswith("numeric") and dtype == pl.String:
            kinds.append("numeric")
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


def _parts(text: pl.Series) -> tuple[pl.DataFrame, int, int]:
    """(sign, integer digits, fraction digits) of plain decimal text, and the number of
    base-10000 groups the widest value needs on each side of the point."""
    frame = text.fill_null("0").to_frame("t").select(
        pl.col("t").str.starts_with("-").alias("neg"),
        pl.col("t").str.strip_chars_start("+-").str.extract(r"^(\d*)").alias("int"),
        pl.col("t").str.extract(r"\.(\d*)$").fill_null("").alias("frac"))
    int_len = int(frame.get_column("int").str.len_bytes().max() or 0)  # type: ignore[arg-type]
    frac_len = int(frame.get_column("frac").str.len_bytes().max() or 0)  # type: ignore[arg-type]
    return frame, -(-int_len // 4), -(-frac_len // 4)


def _numeric(text: pl.Series) -> tuple[np.ndarray, int]:
    """Plain decimal text -> numeric's binary form, the same number of base-10000 digits
    for every row (the server strips the zero ones): ndigits, weight, sign, dscale (the
    value's own count of fraction digits, as ``Decimal`` keeps it), then the digits."""
    frame, g_int, g_frac = _parts(text)
    ndigits = g_int + g_frac
    digits = frame.select(pl.concat_str([pl.col("int").str.zfill(4 * g_int),
                                         pl.col("frac").str.pad_end(4 * g_frac, "0")])
                          ).to_series()
    n = len(text)
    words = np.zeros((n, 4 + ndigits), dtype=np.int64)
    words[:, 0] = ndigits
    words[:, 1] = g_int - 1
    words[:, 2] = np.where(frame.get_column("neg").to_numpy(), 0x4000, 0)
    words[:, 3] = frame.get_column("frac").str.len_bytes().to_numpy()
    for k in range(ndigits):
        words[:, 4 + k] = digits.str.slice(4 * k, 4).cast(pl.Int64).to_numpy()
    width = 2 * (4 + ndigits)
    matrix = np.ascontiguousarray(words.astype(">i2")).view(np.uint8).reshape(n, width)
    return matrix, width


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
        elif kind == "numeric":
            encoded = _numeric(series)
            datas.append(encoded)
            lengths.append(np.where(valid, encoded[1], -1))
        elif kind in ("text", "jsonb"):
            if kind == "jsonb":  # jsonb's binary form: version 1, then the text
                series = "\x01" + series
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
