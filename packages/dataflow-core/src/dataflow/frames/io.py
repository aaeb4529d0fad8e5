"""Frames to and from the adapters' bulk paths.

Writes: a canonical frame is turned, one chunk at a time, into the driver tuples the
adapter's bulk insert takes (binary COPY on PostgreSQL, multi-row statements on SQLite
and MySQL), with the same encoders express uses -- every value a bound parameter. Only
one chunk of Python values is alive at a time, so memory stays near the frame's size.

Reads: a compiled ``Select`` (the express filter AST, with tenancy and soft delete) is
fetched through the adapter's driver primitive and decoded column by column into typed
Polars series. Adapters without a SQL compiler go through ``Adapter.select``.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import polars as pl

from ..errors import UnsupportedError
from ..model import TENANT_FIELD, FieldSpec, LogicalType, ModelSpec
from ..query.ast import Expr, InList, Insert, OrderBy, Select, Upsert
from .codec import decode_column, encode_column
from .rules import canonical_dtype

if TYPE_CHECKING:
    from ..core import DataFlow

#: rows converted to Python values at a time on the write path
WRITE_CHUNK = 20_000
#: rows from which an adapter's ``copy_frame`` is used (small frames: plain inserts)
COPY_FRAME_THRESHOLD = 64
#: distinct keys per lookup statement (below every driver's bound-parameter limit)
LOOKUP_CHUNK = 30_000


# --- frame -> Python values -----------------------------------------------------------------
def _python_values(f: FieldSpec, series: pl.Series) -> list[Any]:
    """The canonical Python values (as express validation returns them) of a column."""
    lt, dtype = f.ltype, series.dtype
    if dtype == pl.Null:
        return [None] * series.len()
    if lt is LogicalType.DECIMAL:
        if isinstance(dtype, pl.Decimal):
            return series.to_list()
        if dtype.is_float():
            return [None if v is None else Decimal(repr(v)) for v in series.to_list()]
        return [None if v is None else Decimal(v) for v in series.to_list()]
    if lt is LogicalType.UUID:
        return [None if v is None else uuid.UUID(v) for v in series.to_list()]
    if lt is LogicalType.ENUM:
        cls = f.enum_cls
        assert cls is not None
        by_text = {str(m.value): m for m in cls}
        return [None if v is None else by_text[v] for v in series.to_list()]
    if lt is LogicalType.JSON:
        if dtype == pl.String:
            values = [None if v is None else json.loads(v) for v in series.to_list()]
        else:
            values = series.to_list()
        if f.pydantic_cls is not None:
            cls = f.pydantic_cls
            return [None if v is None else cls.model_validate(v) for v in values]
        return values
    return series.to_list()


def _driver_values(f: FieldSpec, series: pl.Series, encoder: Callable[[Any], Any] | None
                   ) -> list[Any]:
    if f.ltype is LogicalType.UUID and encoder is str:
        return series.to_list()  # canonical text already: str(UUID(s)) == s
    return encode_column(f, series, encoder, _python_values)


def _write_columns(model: ModelSpec, frame: pl.DataFrame) -> tuple[str, ...]:
    """The frame's model columns plus the managed timestamps, in model order."""
    return tuple(n for n, f in model.fields.items()
                 if n in frame.columns or (f.managed and not f.tombstone) or f.tombstone)


def _with_managed(model: ModelSpec, frame: pl.DataFrame, now: _dt.datetime) -> pl.DataFrame:
    extra = []
    for n, f in model.fields.items():
        if f.tombstone:
            extra.append(pl.lit(None, pl.Datetime("us", "UTC")).alias(n))
        elif f.managed:
            extra.append(pl.lit(now, pl.Datetime("us", "UTC")).alias(n))
    return frame.with_columns(extra) if extra else frame


def parents_first(model: ModelSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of a self-referencing model ordered so a row comes after the row it references
    (databases that check foreign keys row by row -- COPY, InnoDB -- need it). A cycle is
    left in place for the database to judge."""
    refs = [fk for fk in model.foreign_keys if fk.target == model.name
            and fk.column in frame.columns and fk.target_field in frame.columns]
    if not refs or frame.height < 2:
        return frame
    parts: list[pl.DataFrame] = []
    rest = frame
    while rest.height:
        ready = pl.all_horizontal([
            pl.col(fk.column).is_null() | (pl.col(fk.column) == pl.col(fk.target_field))
            | ~pl.col(fk.column).is_in(rest.get_column(fk.target_field).implode())
            for fk in refs])
        level = rest.filter(ready)
        if not level.height:
            parts.append(rest)
            break
        parts.append(level)
        rest = rest.filter(~ready)
    return pl.concat(parts) if len(parts) > 1 else parts[0]


def chunks(db: DataFlow, model: ModelSpec, frame: pl.DataFrame, now: _dt.datetime,
           size: int = WRITE_CHUNK) -> Any:
    """Yield ``(columns, rows)`` per chunk: driver tuples for adapters that take encoded
    rows, dicts of canonical values for the others."""
    adapter = db.adapter
    frame = _with_managed(model, parents_first(model, frame), now)
    columns = _write_columns(model, frame)
    encoded = bool(getattr(adapter, "accepts_encoded_rows", False))
    encoders: list[Any] = (list(adapter.value_encoders(model, columns))  # type: ignore[attr-defined]
                           if encoded else [None] * len(columns))
    specs = [model.fields[c] for c in columns]
    for start in range(0, frame.height, size):
        part = frame.slice(start, size)
        if encoded:
            cols = [_driver_values(f, part.get_column(f.name), enc)
                    for f, enc in zip(specs, encoders, strict=True)]
            yield columns, list(zip(*cols, strict=True))
        else:
            cols = [_python_values(f, part.get_column(f.name)) for f in specs]
            yield columns, [dict(zip(columns, r, strict=True)) for r in zip(*cols, strict=True)]


async def insert_frame(db: DataFlow, conn: Any, model: ModelSpec, frame: pl.DataFrame,
                       now: _dt.datetime) -> int:
    """Insert a canonical frame: through the adapter's ``copy_frame`` when it has one (a
    bulk load straight from the columns) and takes these columns, else chunk by chunk
    through ``Adapter.insert``."""
    adapter = db.adapter
    copy_frame = getattr(adapter, "copy_frame", None)
    if copy_frame is not None and frame.height >= COPY_FRAME_THRESHOLD:
        ordered = _with_managed(model, parents_first(model, frame), now)
        if await copy_frame(conn, model, ordered.select(_write_columns(model, ordered))):
            return frame.height
    for columns, rows in chunks(db, model, frame, now):
        if rows and isinstance(rows[0], tuple):
            await adapter.insert(conn, Insert(model, columns, [], returning=False, encoded=rows))
        else:
            await adapter.insert(conn, Insert(model, columns, rows, returning=False))
    return frame.height


def _update_columns(model: ModelSpec, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in columns
                 if c not in ("id", "created_at", TENANT_FIELD) and not model.fields[c].tombstone)


async def upsert_frame(db: DataFlow, conn: Any, model: ModelSpec, frame: pl.DataFrame,
                       now: _dt.datetime, batch_size: int) -> None:
    """Direct mode: the adapter's upsert on ``id``, ``batch_size`` rows per call."""
    adapter = db.adapter
    for columns, rows in chunks(db, model, frame, now, batch_size):
        update = _update_columns(model, columns)
        if rows and isinstance(rows[0], tuple):
            await adapter.upsert(conn, Upsert(model, columns, [], ("id",), update,
                                              returning=False, encoded=rows))
        else:
            await adapter.upsert(conn, Upsert(model, columns, rows, ("id",), update,
                                              returning=False))


async def merge_frame(db: DataFlow, conn: Any, model: ModelSpec, frame: pl.DataFrame,
                      now: _dt.datetime) -> None:
    """Staging mode: bulk-load the rows into a temporary table, then one merge statement
    (``INSERT ... SELECT ... ON CONFLICT`` / ``ON DUPLICATE KEY UPDATE``). A backend without
    SQL (a document store) has no staging tables: its own bulk upsert is its merge."""
    adapter = db.adapter
    compiler = getattr(adapter, "compiler", None)
    execute = getattr(adapter, "execute", None)
    if compiler is None or execute is None:
        await upsert_frame(db, conn, model, frame, now, WRITE_CHUNK)
        return
    style = compiler.upsert_style
    if style not in ("on_conflict", "on_duplicate_key"):
        raise UnsupportedError(f"the {compiler.name} dialect has no staging merge.",
                               model=model.name, fix="call db.frames.update(..., staging=False).")
    import dataclasses

    tmp = f"df_stage_{uuid.uuid4().hex[:16]}"
    staged = dataclasses.replace(model, table=tmp, foreign_keys=[])
    columns = _write_columns(model, _with_managed(model, frame.head(0), now))
    q = compiler.quote
    cols = ", ".join(q(c) for c in columns)
    temporary = "TEMPORARY TABLE"
    await execute(conn, f"CREATE {temporary} {q(tmp)} AS SELECT {cols} FROM "
                        f"{compiler.table(model)} WHERE 1 = 0", ())
    try:
        await insert_frame(db, conn, staged, frame, now)
        update = _update_columns(model, columns)
        head = f"INSERT INTO {compiler.table(model)} ({cols}) SELECT {cols} FROM {q(tmp)}"
        if style == "on_conflict":
            sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in update)
            sql = f"{head} WHERE 1 = 1 ON CONFLICT ({q('id')}) DO UPDATE SET {sets}"
        else:
            sets = ", ".join(f"{q(c)} = VALUES({q(c)})" for c in update)
            sql = f"{head} ON DUPLICATE KEY UPDATE {sets}"
        await execute(conn, sql, ())
        advance = getattr(adapter, "advance_identity", None)  # PostgreSQL's identity sequence
        if advance is not None and "id" in frame.columns and model.pk.auto_increment:
            top = frame.get_column("id").max()
            if top is not None:
                await advance(conn, model, top)
    finally:
        drop = "DROP TEMPORARY TABLE" if style == "on_duplicate_key" else "DROP TABLE"
        await execute(conn, f"{drop} IF EXISTS {q(tmp)}", ())


# --- database -> frames -----------------------------------------------------------------------
def _frame_values(f: FieldSpec, values: list[Any]) -> pl.Series:
    """Decoded Python values of one field -> a typed series (canonical frame dtypes)."""
    lt = f.ltype
    if lt is LogicalType.UUID:
        return pl.Series(f.name, [None if v is None else str(v) for v in values], pl.String)
    if lt is LogicalType.ENUM:
        return pl.Series(f.name, [None if v is None else str(getattr(v, "value", v)) for v in values],
                         pl.String)
    if lt is LogicalType.JSON:
        out: list[str | None] = []
        for v in values:
            if v is None:
                out.append(None)
            elif hasattr(v, "model_dump_json"):
                out.append(v.model_dump_json())
            else:
                out.append(json.dumps(v))
        return pl.Series(f.name, out, pl.String)
    if lt is LogicalType.DECIMAL:
        scale = max((-v.as_tuple().exponent for v in values
                     if v is not None and isinstance(v.as_tuple().exponent, int)), default=0)
        return pl.Series(f.name, values, pl.Decimal(38, max(0, min(scale, 37))))
    return pl.Series(f.name, values, canonical_dtype(f, pl.Null()))


#: for adapters' own frame readers
frame_values = _frame_values


def empty_frame(model: ModelSpec, columns: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame([_frame_values(model.fields[c], []) for c in columns])


async def read_plan(db: DataFlow, model: ModelSpec) -> Any:
    """The adapter's plan for reading ``model``'s rows into frames (``frame_read_plan``:
    e.g. server-side conversions chosen from the live column types), made once per
    ``db.frames`` call and passed to every :func:`select_frame` of it; None without one."""
    make = getattr(db.adapter, "frame_read_plan", None)
    if make is None:
        return None
    return await db._run(make, model)


async def select_frame(db: DataFlow, stmt: Select, plan: Any = None) -> pl.DataFrame:
    """Run ``stmt`` (all of the model's columns) and return its rows as a frame; through
    the adapter's ``fetch_frame`` when ``plan`` (from :func:`read_plan`) is given."""
    model, adapter = stmt.model, db.adapter
    columns = tuple(model.fields)
    compiler = getattr(adapter, "compiler", None)
    fetch = getattr(adapter, "fetch", None)
    if plan is not None and compiler is not None:
        compiled = compiler.compile(stmt)
        got: pl.DataFrame | None = await db._run(adapter.fetch_frame,  # type: ignore[attr-defined]
                                                 plan, compiled.sql, compiled.params)
        if got is not None:
            return got if got.height else empty_frame(model, columns)
    if compiler is None or fetch is None:  # a document store: decoded dicts
        records = await db._run(adapter.select, stmt)
        if not records:
            return empty_frame(model, columns)
        return pl.DataFrame([_frame_values(model.fields[c], [r.get(c) for r in records])
                             for c in columns])
    compiled = compiler.compile(stmt)
    raw = await db._run(fetch, compiled.sql, compiled.params)
    if not raw:
        return empty_frame(model, columns)
    fields = list(model.fields.values())
    series = []
    for i, f in enumerate(fields):
        # one list per column, typed by Polars in one call (cheaper than its row reader)
        values = list(map(itemgetter(i), raw))
        column: pl.Series | list[Any]
        try:
            column = pl.Series(f.name, values, strict=True)
            if column.dtype == pl.Object:
                column = values
        except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
            column = values  # mixed types: value by value
        series.append(decode_column(f, column, compiler.decoder(f), _frame_values))
    return pl.DataFrame(series)


def by_id(model: ModelSpec, where: Expr, limit: int | None = None, offset: int | None = None
          ) -> Select:
    return Select(model, where, (OrderBy("id"),), limit, offset)


async def lookup_keys(db: DataFlow, model: ModelSpec, field: str, values: pl.Series,
                      scope: Callable[[Expr], Expr]) -> pl.Series:
    """The ``values`` of ``model.field`` that exist in the database (tenant-scoped), one
    statement per ``LOOKUP_CHUNK`` distinct values, selecting only that column."""
    f = model.fields[field]
    keys = _python_values(f, values)
    found: list[Any] = []
    adapter = db.adapter
    compiler = getattr(adapter, "compiler", None)
    fetch = getattr(adapter, "fetch", None)
    for start in range(0, len(keys), LOOKUP_CHUNK):
        where = scope(InList(field, tuple(keys[start:start + LOOKUP_CHUNK])))
        if compiler is None or fetch is None:
            rows = await db._run(adapter.select, Select(model, where))
            found.extend(r[field] for r in rows)
            continue
        p = compiler.params()
        sql = (f"SELECT {compiler.quote(field)} FROM {compiler.table(model)} WHERE "
               f"{compiler.expr(where, model, p)}")
        decode = compiler.decoder(f)
        for row in await db._run(fetch, sql, tuple(p.values)):
            found.append(row[0] if decode is None else decode(row[0]))
    return _frame_values(f, found).cast(values.dtype)
