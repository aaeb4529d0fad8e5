"""``db.frames``: validated bulk create, update and read over Polars frames.

Writes run one pipeline (``pipeline``-ordered steps, each in its own module): the column
contract (:mod:`.contract`), row rules as expressions (:mod:`.rules`), foreign keys and
invalid-row propagation (:mod:`.integrity`), then the outcome: ``fail`` writes nothing,
``partial_ok`` writes the valid rows, ``ok`` writes all -- parents before children, in one
transaction, through the adapters' bulk paths (:mod:`.io`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

import polars as pl

from ..errors import ValidationError
from ..migrations import dependency_order
from ..model import ModelSpec
from ..query.ast import FALSE, TRUE, And, Comparison, Count, Expr, InList
from . import io
from .contract import Aligned, Extra, Missing, _default_series, align
from .integrity import Propagate, check_foreign_keys, propagate
from .rules import ROW, Checked, check_rows, error_lists

if TYPE_CHECKING:
    from ..core import DataFlow

ModelRef = str | type | ModelSpec
#: the column of ``FrameResult.invalid`` frames: a list of {field, code, message} per row
ERROR_COLUMN = "_errors"
Status = Literal["ok", "partial_ok", "fail"]
STREAM_BATCH = 1000
PAGE_BATCH = 100
MERGE_BATCH = 50_000


class ByModel(dict[str, pl.DataFrame]):
    """Frames keyed by model name; also indexable by the model class or its spec."""

    def __getitem__(self, key: Any) -> pl.DataFrame:
        if isinstance(key, ModelSpec):
            key = key.name
        elif isinstance(key, type):
            spec = getattr(key, "__dataflow_model__", None)
            key = spec.name if spec is not None else key.__name__
        return super().__getitem__(key)


@dataclass
class FrameResult:
    """The outcome of ``db.frames.create`` / ``update``."""

    status: Status
    valid: ByModel = field(default_factory=ByModel)
    invalid: ByModel = field(default_factory=ByModel)
    #: rows written per model (0 everywhere when the status is ``fail``)
    written: dict[str, int] = field(default_factory=dict)
    #: update only: rows that replaced an existing row / rows that were new
    updated: int = 0
    inserted: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def errors(self, model: ModelRef) -> pl.DataFrame:
        """One row per failure of ``model``: the row's position in the input frame,
        ``field``, ``code`` and ``message``."""
        frame = self.invalid[model]
        return (frame.select("_row", ERROR_COLUMN).explode(ERROR_COLUMN)
                .unnest(ERROR_COLUMN))


class ReadStats(TypedDict):
    mode: Literal["stream", "page"]
    batch_size: int
    total_count: int
    total_pages: int
    current_page: int | None
    has_next: bool
    has_previous: bool


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{name} must be an int >= {minimum}, got {value!r:.40}.", field=name)
    return value


class Frames:
    """Bulk create / update / read of one DataFlow instance's models as Polars frames."""

    def __init__(self, db: DataFlow) -> None:
        self._db = db

    # --- shared ---------------------------------------------------------------------------
    async def _spec(self, model: ModelRef) -> ModelSpec:
        spec, _ = await self._db.express._prepare(model)
        return spec

    def _scope(self, spec: ModelSpec, include_deleted: bool = True) -> Any:
        express = self._db.express
        return lambda expr: express._scoped(spec, expr, include_deleted)

    @staticmethod
    def _items(frames: Any, frame: Any) -> list[tuple[ModelRef, Any]]:
        if frame is not None:
            return [(frames, frame)]
        if isinstance(frames, Mapping):
            return list(frames.items())
        if isinstance(frames, tuple) and len(frames) == 2:
            return [frames]
        if isinstance(frames, Iterable) and not isinstance(frames, (str, bytes)):
            items = list(frames)
            if all(isinstance(i, tuple) and len(i) == 2 for i in items):
                return items
        raise ValidationError(
            "frames.create takes {model: frame}, (model, frame), or (model, frame) as two "
            f"arguments; got {type(frames).__name__}.",
            fix='e.g. await db.frames.create({"Customer": customers, "Order": orders}).')

    async def _check(self, aligned: list[Aligned], *, validate: bool, propagate_mode: Propagate,
                     ) -> dict[str, Checked]:
        caps = self._db.adapter.capabilities
        states = {a.model.name: check_rows(a.model, a.frame, nul_in_text=caps.nul_in_text,
                                           rules=validate)
                  for a in aligned}
        if not validate:
            return states
        models = self._db.models

        async def lookup(parent: ModelSpec, key: str, values: pl.Series) -> pl.Series:
            return await io.lookup_keys(self._db, parent, key, values, self._scope(parent))

        edges = await check_foreign_keys(states, models, lookup)
        propagate(states, edges, propagate_mode)
        return states

    @staticmethod
    def _split(aligned: Aligned, state: Checked) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(valid canonical rows, invalid input rows with their error list)."""
        bad = state.errors.get_column(ROW).unique()
        is_bad = pl.col(ROW).is_in(bad.implode())
        # no failures: the canonical frame itself (no copy)
        valid = state.frame.filter(~is_bad).drop(ROW) if bad.len() else state.frame.drop(ROW)
        original = aligned.frame.with_row_index(ROW)
        invalid = (original.filter(is_bad)
                   .join(error_lists(state.errors).rename({"errors": ERROR_COLUMN}), on=ROW,
                         how="left", maintain_order="left")
                   .rename({ROW: "_row"}))
        return valid, invalid

    @staticmethod
    def _status(valid: dict[str, pl.DataFrame], invalid: dict[str, pl.DataFrame],
                partial: bool) -> Status:
        n_valid = sum(f.height for f in valid.values())
        n_invalid = sum(f.height for f in invalid.values())
        if n_invalid and (not partial or not n_valid):
            return "fail"
        return "partial_ok" if n_invalid else "ok"

    def _announce(self, result: FrameResult) -> None:
        """Tell ``db.on_write`` listeners (after commit, as express writes do)."""
        for name, n in result.written.items():
            if n:
                self._db._wrote(name)

    @staticmethod
    def _warn_unvalidated() -> None:
        warnings.warn("db.frames: validate=False writes the frames without row, key or foreign-"
                      "key checks; the database is the only guard.", RuntimeWarning, stacklevel=3)

    # --- create ---------------------------------------------------------------------------
    async def create(self, frames: Any, frame: Any = None, *, partial: bool = False,
                     validate: bool = True, propagate: Propagate = "down",
                     missing: Missing = "default", extra: Extra = "drop") -> FrameResult:
        """Validate and insert one or several models' frames (see the module docstring).

        ``frames``: ``{model: frame}``, ``(model, frame)``, or a model with ``frame``.
        ``missing``: fields without a column get their default (``"default"``) or are
        refused (``"fail"``); ``extra``: unknown columns are dropped or refused.
        ``validate=False`` skips the row rules, keys and foreign keys (with a
        RuntimeWarning; the database is then the only guard); a value that cannot take its
        column's type still fails the call, since it cannot be written at all.
        """
        if propagate not in ("down", "both"):
            raise ValidationError(f"propagate must be 'down' or 'both', got {propagate!r:.40}.",
                                  field="propagate")
        if not validate:
            self._warn_unvalidated()
        items = self._items(frames, frame)
        aligned: list[Aligned] = []
        seen: set[str] = set()
        for ref, df in items:  # every contract first: fail fast, before any row work
            spec = await self._spec(ref)
            if spec.name in seen:
                raise ValidationError("a model appears twice in one frames.create call.",
                                      model=spec.name, fix="concatenate its frames first.")
            seen.add(spec.name)
            tenant = self._db.express._tenant(spec)
            aligned.append(align(spec, df, op="create", missing=missing, extra=extra,
                                 tenant=tenant))
        states = await self._check(aligned, validate=validate, propagate_mode=propagate)
        result = self._outcome(aligned, states, partial)
        if result.status == "fail":
            return result
        now = self._db.express._now()
        order, _ = dependency_order([a.model for a in aligned])

        async def write(conn: Any) -> dict[str, int]:
            written: dict[str, int] = {}
            for spec in order:
                written[spec.name] = await io.insert_frame(self._db, conn, spec,
                                                           result.valid[spec.name], now)
            return written

        result.written = await self._db._run_atomic(write)
        self._announce(result)
        return result

    def _outcome(self, aligned: list[Aligned], states: dict[str, Checked], partial: bool
                 ) -> FrameResult:
        result = FrameResult("ok")
        for a in aligned:
            valid, invalid = self._split(a, states[a.model.name])
            result.valid[a.model.name] = valid
            result.invalid[a.model.name] = invalid
            result.written[a.model.name] = 0
        result.status = self._status(result.valid, result.invalid, partial)
        return result

    # --- update ---------------------------------------------------------------------------
    async def update(self, model: ModelRef, frame: Any, *, staging: bool = True,
                     partial: bool = False, validate: bool = True, extra: Extra = "drop",
                     batch_size: int = MERGE_BATCH) -> FrameResult:
        """Upsert ``frame``'s rows by ``id``: columns the frame lacks are filled from the
        stored row first, then the rows go through the same pipeline as ``create``.

        ``staging=True``: one bulk load into a temporary table and one merge statement (a
        backend without SQL uses its own bulk upsert); ``staging=False``: the adapter's
        upsert, ``batch_size`` rows at a time.
        """
        _check_int("batch_size", batch_size, 1)
        if not validate:
            self._warn_unvalidated()
        spec = await self._spec(model)
        express = self._db.express
        tenant = express._tenant(spec)
        aligned = align(spec, frame, op="update", missing="default", extra=extra, tenant=tenant)
        states = await self._check([aligned], validate=validate, propagate_mode="down")
        state = states[spec.name]
        existing = await self._fill_from_database(spec, aligned, state)
        result = self._outcome([aligned], states, partial)
        if result.status == "fail":
            return result
        valid = result.valid[spec.name]
        ids = io._python_values(spec.pk, valid.get_column("id"))
        result.updated = int(valid.get_column("id").is_in(existing.implode()).sum())
        result.inserted = valid.height - result.updated
        now = self._db.express._now()

        async def write(conn: Any) -> int:
            if tenant is not None:
                await express._refuse_foreign_ids(conn, spec, ids, tenant)
            if spec.soft_delete:
                await express._refuse_tombstoned(conn, spec, ("id",), [(i,) for i in ids],
                                                 "frames.update")
            if not valid.height:
                return 0
            if staging:
                await io.merge_frame(self._db, conn, spec, valid, now)
            else:
                await io.upsert_frame(self._db, conn, spec, valid, now, batch_size)
            return valid.height

        result.written[spec.name] = await self._db._run_atomic(write)
        self._announce(result)
        return result

    async def _fill_from_database(self, spec: ModelSpec, aligned: Aligned, state: Checked
                                  ) -> pl.Series:
        """Fill the fields the frame lacks from the stored rows (by id); rows not stored get
        the field's default, and a required field left empty fails the row (DF-303).
        Returns the ids found in the database."""
        present = set(state.frame.columns)
        lacking = [n for n, f in spec.fields.items()
                   if n not in present and not f.managed and f.server_default is None]
        ids = state.frame.get_column("id").drop_nulls().unique()
        stored_frames = []
        keys = io._python_values(spec.pk, ids)
        scope = self._scope(spec, include_deleted=False)
        plan = await io.read_plan(self._db, spec) if keys else None
        for start in range(0, len(keys), io.LOOKUP_CHUNK):
            where = scope(InList("id", tuple(keys[start:start + io.LOOKUP_CHUNK])))
            stored_frames.append(await io.select_frame(self._db, io.by_id(spec, where), plan))
        stored = (pl.concat(stored_frames) if stored_frames
                  else io.empty_frame(spec, tuple(spec.fields)))
        found = stored.get_column("id").cast(state.frame.schema["id"])
        if not lacking:
            return found
        fill = stored.select(["id", *lacking]).with_columns(pl.lit(True).alias("__df_found"))
        fill = fill.with_columns(pl.col("id").cast(state.frame.schema["id"]))
        frame = state.frame.join(fill, on="id", how="left", maintain_order="left")
        missing_rows = ~pl.col("__df_found").fill_null(False)
        additions = []
        for n in lacking:
            f = spec.fields[n]
            if f.has_default:
                default = _default_series(f, frame.height)
                target = frame.schema[n]
                additions.append(pl.when(missing_rows).then(pl.lit(default.cast(target)
                                                                   if default.dtype != target
                                                                   else default))
                                 .otherwise(pl.col(n)).alias(n))
        if additions:
            frame = frame.with_columns(additions)
        required = [n for n in lacking if not spec.fields[n].nullable]
        errors = [state.errors]
        for n in required:
            hit = frame.filter(pl.col(n).is_null())
            if hit.height:
                errors.append(hit.select(pl.col(ROW), pl.lit(n).alias("field"),
                                         pl.lit("DF-303").alias("code"),
                                         pl.lit(f"the row is not stored yet and the frame has no "
                                                f"'{n}' column; the field is required")
                                         .alias("message")))
        state.errors = pl.concat(errors) if len(errors) > 1 else state.errors
        state.frame = frame.drop("__df_found").select([ROW, *[c for c in spec.fields
                                                               if c in frame.columns]])
        return found

    # --- read -----------------------------------------------------------------------------
    async def read(self, model: ModelRef, filter: Mapping[str, Any] | None = None, *,
                   batch_size: int = 0, page: int | None = None, lazy: bool = False,
                   include_deleted: bool = False) -> tuple[pl.DataFrame | pl.LazyFrame, ReadStats]:
        """``(frame, stats)``: every matching row (``page=None``: streamed in batches of
        ``batch_size``, default 1000) or one page of ``batch_size`` rows (default 100), in
        id order. ``lazy=True`` returns a LazyFrame; when streaming, its scan fetches one
        batch at a time as it is collected (see :meth:`_lazy_stream`), so memory stays
        bounded by the batch. The filter is express's filter language; tenancy and soft
        delete apply."""
        _check_int("batch_size", batch_size, 0)
        if page is not None:
            _check_int("page", page, 1)
        spec, where = await self._where(model, filter, include_deleted)
        if page is None:
            size = batch_size or STREAM_BATCH
            if lazy:
                return await self._lazy_stream(spec, where, size)
            parts = [chunk async for chunk in self._chunks(spec, where, size)]
            frame = (pl.concat(parts, how="vertical_relaxed") if parts
                     else io.empty_frame(spec, tuple(spec.fields)))
            stats = ReadStats(mode="stream", batch_size=size, total_count=frame.height,
                              total_pages=math.ceil(frame.height / size), current_page=None,
                              has_next=False, has_previous=False)
        else:
            size = batch_size or PAGE_BATCH
            total = 0 if where is FALSE else await self._db._run(self._db.adapter.count,
                                                                 Count(spec, where))
            pages = max(1, math.ceil(total / size))
            if page > pages:
                raise ValidationError(f"page {page} is past the last page ({pages}).",
                                      model=spec.name, field="page",
                                      fix=f"ask for a page from 1 to {pages}.")
            if where is FALSE:
                frame = io.empty_frame(spec, tuple(spec.fields))
            else:
                frame = await io.select_frame(self._db, io.by_id(spec, where, size,
                                                                 (page - 1) * size),
                                              await io.read_plan(self._db, spec))
            stats = ReadStats(mode="page", batch_size=size, total_count=total, total_pages=pages,
                              current_page=page, has_next=page < pages, has_previous=page > 1)
        return (frame.lazy() if lazy else frame), stats

    async def stream(self, model: ModelRef, filter: Mapping[str, Any] | None = None, *,
                     batch_size: int = STREAM_BATCH, include_deleted: bool = False
                     ) -> AsyncIterator[pl.DataFrame]:
        """Yield the matching rows as frames of at most ``batch_size`` rows, in id order:
        each batch is one keyset query (``id > last``), so memory is bounded by the batch."""
        _check_int("batch_size", batch_size, 1)
        spec, where = await self._where(model, filter, include_deleted)
        async for chunk in self._chunks(spec, where, batch_size):
            yield chunk

    async def _lazy_stream(self, spec: ModelSpec, where: Expr, size: int
                           ) -> tuple[pl.LazyFrame, ReadStats]:
        """A LazyFrame whose scan fetches one keyset batch at a time when it is collected or
        streamed (memory: one batch, plus what the query keeps). The first batch and the
        count are read now, in the caller's context; later batches run on DataFlow's
        background loop (``dataflow.portal``), outside any transaction of the caller. The
        filter, tenant and soft-delete predicates are fixed here."""
        from polars.io.plugins import register_io_source

        from .. import portal

        total = 0 if where is FALSE else await self._db._run(self._db.adapter.count,
                                                             Count(spec, where))
        plan = None if where is FALSE else await io.read_plan(self._db, spec)
        first = (io.empty_frame(spec, tuple(spec.fields)) if where is FALSE
                 else await io.select_frame(self._db, io.by_id(spec, where, size), plan))
        schema = first.schema
        db = self._db

        def source(with_columns: list[str] | None, predicate: pl.Expr | None,
                   n_rows: int | None, batch_size: int | None) -> Iterator[pl.DataFrame]:
            produced = 0
            chunk = first
            while True:
                if chunk.height:
                    out = chunk.cast(schema)  # every batch in the first batch's dtypes
                    if predicate is not None:
                        out = out.filter(predicate)
                    if with_columns is not None:
                        out = out.select(with_columns)
                    if n_rows is not None:
                        out = out.head(n_rows - produced)
                    produced += out.height
                    yield out
                    if n_rows is not None and produced >= n_rows:
                        return
                if chunk.height < size:
                    return
                last = io._python_values(spec.pk, chunk.get_column("id").tail(1))[0]
                after = Comparison("id", "gt", last)
                chunk = portal.call(io.select_frame(db, io.by_id(
                    spec, after if where is TRUE else And((where, after)), size), plan))

        stats = ReadStats(mode="stream", batch_size=size, total_count=total,
                          total_pages=math.ceil(total / size), current_page=None,
                          has_next=False, has_previous=False)
        return register_io_source(source, schema=schema), stats

    async def _where(self, model: ModelRef, filter: Any, include_deleted: bool
                     ) -> tuple[ModelSpec, Expr]:
        express = self._db.express
        spec, v = await express._prepare(model)
        if not isinstance(include_deleted, bool):
            raise ValidationError("include_deleted must be True or False.", model=spec.name)
        return spec, express._where(spec, v, filter, include_deleted)

    async def _chunks(self, spec: ModelSpec, where: Expr, size: int
                      ) -> AsyncIterator[pl.DataFrame]:
        if where is FALSE:
            return
        plan = await io.read_plan(self._db, spec)
        last: Any = None
        while True:
            if last is None:
                current = where
            else:
                after = Comparison("id", "gt", last)
                current = after if where is TRUE else And((where, after))
            chunk = await io.select_frame(self._db, io.by_id(spec, current, size), plan)
            if chunk.height:
                yield chunk
            if chunk.height < size:
                return
            last = io._python_values(spec.pk, chunk.get_column("id").tail(1))[0]



class FramesSync:
    """``db.frames_sync``: the same operations, blocking; usable with or without a running
    event loop. Each call runs on DataFlow's background loop (``dataflow.portal``), as
    ``express_sync`` does, so no event loop is ever nested; ``stream`` fetches one batch
    per step of the iterator there."""

    def __init__(self, frames: Frames) -> None:
        self._frames = frames

    @staticmethod
    def _call(coro: Any) -> Any:
        from .. import portal

        return portal.call(coro)

    def create(self, frames: Any, frame: Any = None, **options: Any) -> FrameResult:
        return self._call(self._frames.create(frames, frame, **options))  # type: ignore[no-any-return]

    def update(self, model: ModelRef, frame: Any, **options: Any) -> FrameResult:
        return self._call(self._frames.update(model, frame, **options))  # type: ignore[no-any-return]

    def read(self, model: ModelRef, filter: Mapping[str, Any] | None = None, **options: Any
             ) -> tuple[pl.DataFrame | pl.LazyFrame, ReadStats]:
        return self._call(self._frames.read(model, filter, **options))  # type: ignore[no-any-return]

    def stream(self, model: ModelRef, filter: Mapping[str, Any] | None = None, **options: Any
               ) -> Iterator[pl.DataFrame]:
        """Batches as ``db.frames.stream`` yields them; closing the iterator early (or
        leaving a ``for`` loop) closes the stream on the background loop."""
        from .. import portal

        batches = cast(AsyncGenerator[pl.DataFrame, None],
                       self._frames.stream(model, filter, **options))
        done = object()

        async def step() -> Any:
            try:
                return await batches.__anext__()
            except StopAsyncIteration:
                return done

        try:
            while True:
                chunk = portal.call(step())
                if chunk is done:
                    return
                yield chunk
        finally:
            portal.call(batches.aclose())
