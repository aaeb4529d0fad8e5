"""The DuckDB dialect: ``?`` parameters, a sequence per auto-increment key, exact types as text."""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

from dataflow.model import FieldSpec, ForeignKey, LogicalType, ModelSpec
from dataflow.sql.compiler import Decoder, Encoder, SQLCompiler

COLUMN_TYPES = {
    LogicalType.STR: "VARCHAR", LogicalType.INT: "BIGINT", LogicalType.FLOAT: "DOUBLE",
    LogicalType.BOOL: "BOOLEAN", LogicalType.DATETIME: "TIMESTAMP", LogicalType.DATE: "DATE",
    LogicalType.DECIMAL: "VARCHAR", LogicalType.UUID: "UUID", LogicalType.JSON: "VARCHAR",
    LogicalType.ENUM: "VARCHAR"}
LOGICAL_OF = {"BIGINT": LogicalType.INT, "DOUBLE": LogicalType.FLOAT, "BOOLEAN": LogicalType.BOOL,
              "TIMESTAMP": LogicalType.DATETIME, "DATE": LogicalType.DATE, "UUID": LogicalType.UUID}


def sequence_name(table: str) -> str:
    return f"{table}_id_seq"


def _utc_naive(v: _dt.datetime) -> _dt.datetime:
    """TIMESTAMP holds UTC wall time; never convert through the process's local zone."""
    if v.tzinfo is not None:
        v = v.astimezone(_dt.UTC).replace(tzinfo=None)
    return v


def _decimal_text(v: Decimal) -> str:
    """One text per number (2.5, 2.50 and 25E-1 are all '2.5'): equality compares text."""
    text = format(v, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class DuckDBCompiler(SQLCompiler):
    """The base's ``?`` parameters, quoting, RETURNING and ON CONFLICT; no FOR UPDATE."""

    name = "duckdb"
    decimal_ordering = False
    unicode_ilike = True

    def column_type(self, f: FieldSpec) -> str:
        return COLUMN_TYPES[f.ltype]

    def column_ddl(self, model: ModelSpec, f: FieldSpec) -> str:
        ddl = super().column_ddl(model, f)
        if f.primary_key and f.auto_increment:
            ddl += f" DEFAULT nextval('{sequence_name(model.table)}')"
        return ddl

    def create_table(self, model: ModelSpec, foreign_keys: list[ForeignKey] | None = None) -> list[str]:
        stmts = super().create_table(model, foreign_keys)
        if model.fields["id"].auto_increment:
            stmts.insert(0, f"CREATE SEQUENCE IF NOT EXISTS {self.quote(sequence_name(model.table))}")
        return stmts

    def encoder(self, f: FieldSpec) -> Encoder | None:
        if f.ltype is LogicalType.DATETIME:
            return _utc_naive
        if f.ltype is LogicalType.DECIMAL:
            return _decimal_text
        if f.ltype is LogicalType.ENUM:
            return lambda v: str(v.value)
        return super().encoder(f)

    def decoder(self, f: FieldSpec) -> Decoder | None:
        if f.ltype is LogicalType.DECIMAL:
            return Decimal
        return super().decoder(f)
