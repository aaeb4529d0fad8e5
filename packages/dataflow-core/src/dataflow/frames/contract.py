"""Step 1 of the frame pipeline: the column contract.

A frame's columns are aligned to the model's fields before any row is looked at:
unknown and managed columns are dropped or refused, missing fields are filled with their
defaults (or refused), and every column's dtype must be one the field can be coerced
from. Every refusal is a DF error naming the model and the column, raised before any
row work and before anything is sent to the database.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from ..errors import (
    ManagedFieldError,
    MissingFieldError,
    TenantViolationError,
    UnknownFieldError,
    ValidationError,
    did_you_mean,
)
from ..model import TENANT_FIELD, FieldSpec, LogicalType, ModelSpec

Missing = Literal["default", "fail"]
Extra = Literal["drop", "fail"]
Op = Literal["create", "update"]

_INTS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_FLOATS = (pl.Float32, pl.Float64)
_TEXT = (pl.String, pl.Categorical, pl.Enum)

#: per logical type, the dtype families a column may arrive in (a null-only column fits all)
_ACCEPTED: dict[LogicalType, tuple[Any, ...]] = {
    LogicalType.STR: _TEXT,
    LogicalType.INT: (*_INTS, *_TEXT),
    LogicalType.FLOAT: (*_INTS, *_FLOATS, *_TEXT),
    LogicalType.BOOL: (pl.Boolean, *_TEXT),
    LogicalType.DATETIME: (pl.Datetime, *_TEXT),
    LogicalType.DATE: (pl.Date, *_TEXT),
    LogicalType.DECIMAL: (pl.Decimal, *_INTS, *_FLOATS, *_TEXT),
    LogicalType.UUID: _TEXT,
    LogicalType.ENUM: (*_INTS, *_TEXT),
    LogicalType.JSON: (pl.Struct, pl.List, *_TEXT),
}
_HINT = {
    LogicalType.STR: "String",
    LogicalType.INT: "an integer dtype, or String holding integers",
    LogicalType.FLOAT: "a float or integer dtype, or String holding numbers",
    LogicalType.BOOL: "Boolean, or String holding true/false",
    LogicalType.DATETIME: "Datetime, or String holding ISO 8601 timestamps",
    LogicalType.DATE: "Date, or String holding ISO 8601 dates",
    LogicalType.DECIMAL: "Decimal, an integer or float dtype, or String holding numbers",
    LogicalType.UUID: "String holding UUIDs",
    LogicalType.ENUM: "String (or an integer dtype) holding the enum's values",
    LogicalType.JSON: "String holding JSON text, Struct or List",
}


@dataclass
class Aligned:
    """A frame whose columns are exactly model fields, and what the contract did."""

    model: ModelSpec
    frame: pl.DataFrame
    #: columns the caller gave (after dropping extras): values present in the input
    given: tuple[str, ...]
    dropped: tuple[str, ...]
    defaulted: tuple[str, ...]


def _dtype_ok(lt: LogicalType, dtype: pl.DataType) -> bool:
    if dtype == pl.Null:
        return True
    return any(dtype == d or (isinstance(d, type) and isinstance(dtype, d)) for d in _ACCEPTED[lt])


def _default_series(f: FieldSpec, n: int) -> pl.Series:
    """The field's default for ``n`` rows (a factory runs once per row, as in express)."""
    if f.default_factory is not None:
        values = [f.default_factory() for _ in range(n)]
    else:
        values = [f.default] * n
    if f.ltype is LogicalType.JSON:
        return pl.Series(f.name, [None if v is None else json.dumps(v) for v in values], pl.String)
    if f.ltype is LogicalType.ENUM:
        return pl.Series(f.name, [None if v is None else str(getattr(v, "value", v)) for v in values],
                         pl.String)
    if f.ltype in (LogicalType.UUID, LogicalType.DECIMAL):
        return pl.Series(f.name, [None if v is None else str(v) for v in values], pl.String)
    return pl.Series(f.name, values)


def align(model: ModelSpec, frame: Any, *, op: Op, missing: Missing, extra: Extra,
          tenant: str | None) -> Aligned:
    """Check and align ``frame`` to ``model`` (see the module docstring)."""
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    if not isinstance(frame, pl.DataFrame):
        raise ValidationError(
            f"frames take a polars DataFrame or LazyFrame, got {type(frame).__name__}.",
            model=model.name, fix="build the frame with pl.DataFrame(...).")
    if missing not in ("default", "fail"):
        raise ValidationError(f"missing must be 'default' or 'fail', got {missing!r:.40}.",
                              model=model.name)
    if extra not in ("drop", "fail"):
        raise ValidationError(f"extra must be 'drop' or 'fail', got {extra!r:.40}.",
                              model=model.name)
    fields = model.fields
    dropped: list[str] = []
    for name in frame.columns:
        f = fields.get(name)
        if f is not None and not f.managed:
            continue
        if extra == "drop":
            dropped.append(name)
            continue
        if f is not None:
            raise ManagedFieldError(
                f"column '{name}' is managed by DataFlow and cannot be written.",
                model=model.name, field=name,
                fix=f"drop the '{name}' column, or pass extra='drop'.")
        writable = [n for n, spec in fields.items() if not spec.managed]
        raise UnknownFieldError(
            f"unknown column {name!r:.80} in the frame.{did_you_mean(name, writable)}",
            model=model.name, field=name[:80],
            fix=f"rename or drop it, or pass extra='drop'; fields: {', '.join(writable)}.")
    if dropped:
        frame = frame.drop(dropped)
    n = frame.height
    for name in frame.columns:
        f = fields[name]
        if not _dtype_ok(f.ltype, frame.schema[name]):
            raise ValidationError(
                f"column '{name}' has dtype {frame.schema[name]}, which cannot hold "
                f"{f.ltype.value} values.", model=model.name, field=name,
                fix=f"cast the column to {_HINT[f.ltype]}.")
    given = tuple(frame.columns)
    if tenant is not None:
        if TENANT_FIELD in frame.columns:
            other = frame.filter(pl.col(TENANT_FIELD).cast(pl.String) != tenant)
            if other.height:
                raise TenantViolationError(
                    f"{other.height} rows carry a tenant_id other than the bound tenant; "
                    "nothing was written.", model=model.name, field=TENANT_FIELD,
                    fix="drop the tenant_id column (DataFlow sets it) or bind that tenant.")
        frame = frame.with_columns(pl.lit(tenant, pl.String).alias(TENANT_FIELD))
    defaulted: list[str] = []
    additions: list[pl.Series] = []
    for name, f in fields.items():
        if name in frame.columns or f.managed or f.server_default is not None:
            continue
        if f.primary_key:
            if op == "update":
                raise MissingFieldError(
                    "an update frame needs the primary key column 'id'.", model=model.name,
                    field="id", fix="include the id of every row to update.")
            if f.auto_increment:
                continue  # the database numbers the rows
            if f.generated_uuid:
                additions.append(pl.Series(name, [str(uuid.uuid4()) for _ in range(n)], pl.String))
                defaulted.append(name)
                continue
        if op == "update":
            continue  # filled from the database by primary key (see pipeline.update)
        if missing == "fail" or not (f.has_default or f.nullable):
            raise MissingFieldError(
                f"the frame has no column '{name}'"
                + ("" if f.has_default or f.nullable else " and the field has no default") + ".",
                model=model.name, field=name,
                fix=f"add a '{name}' column"
                + ("." if missing == "fail" and (f.has_default or f.nullable)
                   else ", or give the field a default."))
        additions.append(_default_series(f, n) if f.has_default
                         else pl.Series(name, [None] * n, pl.Null))
        defaulted.append(name)
    if additions:
        frame = frame.with_columns(additions)
    order = [c for c in fields if c in frame.columns]
    return Aligned(model, frame.select(order), given, tuple(dropped), tuple(defaulted))
