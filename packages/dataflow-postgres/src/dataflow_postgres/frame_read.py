"""Frames read from PostgreSQL column by column (``db.frames`` reads).

Imported only by :meth:`PostgresAdapter.frame_read_plan`, i.e. only when the frames extra
is in use. Turning a timestamp, date, UUID or numeric into a Python object per value (and
Polars turning an aware ``datetime`` back into an integer) costs far more than the fetch
itself, so the select list asks the server for the form the frame's dtype stores:
microseconds since 1970 for timestamps, days since 1970 for dates, text for UUIDs and
numerics. asyncpg then only builds ints, floats, bools and strs, and each column becomes a
typed series in one call. Which expression a column gets depends on its live SQL type
(read once per ``db.frames`` call); a column whose type has no mapping here, and JSON,
goes through the dialect's decoder value by value, exactly as before.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from typing import Any

import polars as pl

from dataflow.frames.codec import decode_column
from dataflow.frames.io import frame_values
from dataflow.model import FieldSpec, LogicalType, ModelSpec
from dataflow.sql.compiler import SQLCompiler

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
# asyncpg reads 'infinity' / '-infinity' as datetime.max / datetime.min (and date.max/min):
# the frame gets the same values
_TS_MAX = (_dt.datetime.max.replace(tzinfo=_dt.UTC) - _EPOCH) // _dt.timedelta(microseconds=1)
_TS_MIN = (_dt.datetime.min.replace(tzinfo=_dt.UTC) - _EPOCH) // _dt.timedelta(microseconds=1)
_DATE_MAX = (_dt.date.max - _dt.date(1970, 1, 1)).days
_DATE_MIN = (_dt.date.min - _dt.date(1970, 1, 1)).days

_INTEGERS = ("bigint", "integer", "smallint")
_FLOATS = ("double precision", "real")
_TEXTS = ("text", "character varying", "character")


@dataclass(frozen=True)
class ReadPlan:
    """How one model's columns are selected and turned into series."""

    model: ModelSpec
    #: the compiled statements' select list, and the one that replaces it
    plain: str
    select: str
    #: per column: the kind of value the select list yields for it
    kinds: tuple[str, ...]


def _kind(f: FieldSpec, sql_type: str | None) -> str:
    if sql_type is None:
        return "generic"
    base = sql_type.split("(")[0].strip()
    lt = f.ltype
    if lt is LogicalType.INT and base in _INTEGERS:
        return "int"
    if lt is LogicalType.FLOAT and base in _FLOATS:
        return "float"
    if lt is LogicalType.BOOL and base == "boolean":
        return "bool"
    if lt in (LogicalType.STR, LogicalType.ENUM) and base in _TEXTS:
        return "text"
    if lt is LogicalType.DATETIME and base in ("timestamp with time zone",
                                               "timestamp without time zone"):
        return "timestamp"
    if lt is LogicalType.DATE and base == "date":
        return "date"
    if lt is LogicalType.UUID and base == "uuid":
        return "uuid"
    if lt is LogicalType.DECIMAL and base == "numeric":
        return "decimal"
    return "generic"


def _expression(col: str, kind: str) -> str:
    if kind == "timestamp":
        # EXTRACT(EPOCH ...) is exact (numeric); a timestamp without time zone counts as UTC,
        # as the dialect's decoder reads it
        return (f"CASE WHEN {col} IS NULL THEN NULL WHEN isfinite({col}) THEN "
                f"(EXTRACT(EPOCH FROM {col}) * 1000000)::int8 WHEN {col} > 'epoch' THEN "
                f"{_TS_MAX}::int8 ELSE {_TS_MIN}::int8 END")
    if kind == "date":
        return (f"CASE WHEN {col} IS NULL THEN NULL WHEN isfinite({col}) THEN "
                f"{col} - DATE '1970-01-01' WHEN {col} > DATE '1970-01-01' THEN {_DATE_MAX} "
                f"ELSE {_DATE_MIN} END")
    if kind in ("uuid", "decimal"):
        return f"{col}::text"
    return col


def plan(compiler: SQLCompiler, model: ModelSpec, live: dict[str, str]) -> ReadPlan:
    fields = list(model.fields.values())
    kinds = tuple(_kind(f, live.get(f.name)) for f in fields)
    select = ", ".join(_expression(compiler.quote(f.name), k)
                       for f, k in zip(fields, kinds, strict=True))
    return ReadPlan(model, compiler.column_list(model), select, kinds)


def rewrite(p: ReadPlan, sql: str) -> str | None:
    """``sql`` (a compiled select of every model column) with the plan's select list, or
    None when it is not of that shape."""
    head = f"SELECT {p.plain} FROM "
    if not sql.startswith(head):
        return None
    return f"SELECT {p.select} FROM " + sql[len(head):]


def _decimal(name: str, text: pl.Series) -> pl.Series | None:
    """numeric text -> Decimal(38, the widest scale in the column), or None (NaN, or wider
    than Polars' decimals) for the value-by-value path."""
    fraction = text.str.extract(r"\.(\d+)$").str.len_bytes().max()
    scale = 0 if fraction is None else int(fraction)  # type: ignore[arg-type]
    try:
        out = text.cast(pl.Decimal(38, max(0, min(scale, 37))), strict=True)
    except pl.exceptions.PolarsError:
        return None
    return out.alias(name)


def frame(p: ReadPlan, compiler: SQLCompiler, rows: list[Any]) -> pl.DataFrame:
    """The rows of a planned select as a frame in the canonical dtypes."""
    columns: list[pl.Series] = []
    for i, (f, kind) in enumerate(zip(p.model.fields.values(), p.kinds, strict=True)):
        values = list(map(itemgetter(i), rows))
        name = f.name
        series: pl.Series | None = None
        try:
            if kind == "int":
                series = pl.Series(name, values, pl.Int64)
            elif kind == "float":
                series = pl.Series(name, values, pl.Float64)
            elif kind == "bool":
                series = pl.Series(name, values, pl.Boolean)
            elif kind in ("text", "uuid"):
                series = pl.Series(name, values, pl.String)
            elif kind == "timestamp":
                series = (pl.Series(name, values, pl.Int64).cast(pl.Datetime("us"))
                          .dt.replace_time_zone("UTC"))
            elif kind == "date":
                series = pl.Series(name, values, pl.Int32).cast(pl.Date)
            elif kind == "decimal":
                series = _decimal(name, pl.Series(name, values, pl.String))
                if series is None:  # NaN, or beyond Polars' decimals: as the decoder reads it
                    series = frame_values(f, [None if v is None else Decimal(v) for v in values])
        except (TypeError, OverflowError, pl.exceptions.PolarsError):
            if kind not in ("int", "float", "bool", "text"):  # the server's own forms
                raise
            series = None
        if series is None:
            series = decode_column(f, values, compiler.decoder(f), frame_values)
        columns.append(series)
    return pl.DataFrame(columns)
