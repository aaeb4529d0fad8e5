"""Column-at-a-time conversion between canonical frame columns and driver values.

The dialects' encoders and decoders work on one Python value at a time. For the common
shapes (timestamps as ISO text, dates as text, booleans as integers, values the driver
takes as they are) a Polars expression does the same job for a whole column. An
expression is only used after it has given exactly the dialect's own answer (value and
type) on a sample of the column; otherwise the column goes through the dialect's function
value by value. So a dialect that changes its encoding can never be bypassed silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from ..model import FieldSpec, LogicalType
from .rules import _to_datetime, canonical_dtype, parse_datetime_text

Codec = Callable[[Any], Any]
SAMPLE = 8


def _sample(series: pl.Series) -> pl.Series:
    return series.drop_nulls().head(SAMPLE)


def _same(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(type(x) is type(y) and x == y for x, y in zip(a, b, strict=True))


def _encode_candidates(f: FieldSpec, series: pl.Series) -> list[Callable[[pl.Series], pl.Series]]:
    lt = f.ltype
    out: list[Callable[[pl.Series], pl.Series]] = []
    if lt is LogicalType.DATETIME:
        out.append(lambda s: s.dt.strftime("%Y-%m-%d %H:%M:%S%.6f+00:00"))
        out.append(lambda s: s.dt.replace_time_zone(None))
        out.append(lambda s: s)
    elif lt is LogicalType.DATE:
        out.append(lambda s: s.cast(pl.String))
    elif lt is LogicalType.BOOL:
        out.append(lambda s: s.cast(pl.Int64))
    elif lt is LogicalType.ENUM and series.dtype == pl.String:
        out.append(lambda s: s)  # the canonical column holds str(member.value)
    return out


def encode_column(f: FieldSpec, series: pl.Series, encoder: Codec | None,
                  python_values: Callable[[FieldSpec, pl.Series], list[Any]]) -> list[Any]:
    """The driver values of a canonical column (``encoder`` as the dialect gives it)."""
    if encoder is None:
        return python_values(f, series)
    sample = _sample(series)
    if sample.len():
        expected = [encoder(v) for v in python_values(f, sample)]
        for candidate in _encode_candidates(f, series):
            try:
                if _same(candidate(sample).to_list(), expected):
                    return candidate(series).to_list()
            except pl.exceptions.PolarsError:
                continue
    return [None if v is None else encoder(v) for v in python_values(f, series)]


# timestamps are mostly distinct: Polars' per-value parse cache only costs there
def _parse_aware(fmt: str) -> Callable[[pl.Series], pl.Series]:
    return lambda s: s.str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False, cache=False)


def _parse_naive(fmt: str) -> Callable[[pl.Series], pl.Series]:
    return lambda s: (s.str.strptime(pl.Datetime("us"), fmt, strict=False, cache=False)
                      .dt.replace_time_zone("UTC"))


def _parse_utc_text(fmt: str) -> Callable[[pl.Series], pl.Series]:
    """Text ending in ``+00:00`` (how SQLite's dialect stores timestamps): the suffix cut
    and the rest read as naive UTC -- about twice as fast as reading the offset. Any other
    value gives null, so the caller's every-value-read check sends the column on."""
    def parse(s: pl.Series) -> pl.Series:
        col = pl.col(s.name)
        return s.to_frame().select(
            pl.when(col.str.ends_with("+00:00"))
            .then(col.str.head(-6).str.strptime(pl.Datetime("us"), fmt, strict=False,
                                                 cache=False))
            .dt.replace_time_zone("UTC")).to_series()
    return parse


def _decode_candidates(f: FieldSpec, raw: pl.Series) -> list[Callable[[pl.Series], pl.Series]]:
    lt, dtype = f.ltype, raw.dtype
    out: list[Callable[[pl.Series], pl.Series]] = []
    if lt is LogicalType.DATETIME:
        if dtype == pl.String:
            # fixed layouts first (Polars' own parser, no chrono), the rest as the general
            # ISO 8601 reader takes them
            out.append(parse_datetime_text)
            out.append(_parse_utc_text("%Y-%m-%d %H:%M:%S%.6f"))
            out.append(_parse_utc_text("%Y-%m-%d %H:%M:%S%.f"))
            # one format at a time (the first that reproduces the decoder wins), then the
            # general ISO 8601 reader for columns that mix formats
            for base in ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"):
                out.append(_parse_aware(base + "%:z"))
                out.append(_parse_naive(base))
            out.append(lambda s: s.to_frame().select(_to_datetime(pl.col(s.name), pl.String()))
                       .to_series())
        elif isinstance(dtype, pl.Datetime):
            out.append(lambda s: (s.dt.replace_time_zone("UTC") if s.dtype.time_zone is None  # type: ignore[attr-defined]
                                  else s.dt.convert_time_zone("UTC")).cast(pl.Datetime("us", "UTC")))
    elif lt is LogicalType.DATE:
        if dtype == pl.String:
            out.append(lambda s: s.str.strptime(pl.Date, "%Y-%m-%d", strict=False))
        elif dtype == pl.Date:
            out.append(lambda s: s)
    elif lt is LogicalType.BOOL and (dtype.is_integer() or dtype == pl.Boolean):
        out.append(lambda s: s.cast(pl.Boolean))
    elif lt is LogicalType.FLOAT and dtype.is_numeric():
        out.append(lambda s: s.cast(pl.Float64))
    return out


def decode_column(f: FieldSpec, values: pl.Series | list[Any] | tuple[Any, ...],
                  decoder: Codec | None,
                  to_series: Callable[[FieldSpec, list[Any]], pl.Series]) -> pl.Series:
    """A typed canonical series from the driver values of one column (a list, or a series
    Polars built from the driver's rows)."""
    lt = f.ltype
    raw: pl.Series | None = values if isinstance(values, pl.Series) else None
    if lt in (LogicalType.INT, LogicalType.STR) and decoder is None:
        target = canonical_dtype(f, pl.Null())
        if raw is not None and (raw.dtype == target or raw.dtype == pl.Null):
            return raw.cast(target).alias(f.name)
        if raw is None:
            return pl.Series(f.name, values, target)
    if lt in (LogicalType.DATETIME, LogicalType.DATE, LogicalType.BOOL, LogicalType.FLOAT):
        if raw is None:
            try:
                raw = pl.Series(f.name, values, strict=False)
            except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
                raw = None
        if raw is not None and raw.dtype != pl.Object:
            if raw.dtype == pl.Null:
                return pl.Series(f.name, [None] * raw.len(), canonical_dtype(f, pl.Null()))
            sample = _sample(raw)
            want = [decoder(v) if decoder is not None else v for v in sample.to_list()]
            for candidate in _decode_candidates(f, raw):
                try:
                    if _same(candidate(sample).to_list(), want):
                        out = candidate(raw).alias(f.name)
                        if out.null_count() == raw.null_count():  # every value understood
                            return out
                except pl.exceptions.PolarsError:
                    continue
    items = values.to_list() if isinstance(values, pl.Series) else list(values)
    decoded = items if decoder is None else [None if v is None else decoder(v) for v in items]
    return to_series(f, decoded)
