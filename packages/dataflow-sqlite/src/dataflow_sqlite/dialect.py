"""The SQLite dialect: ``?`` parameters, text storage for exact types."""

from __future__ import annotations

import datetime as _dt
import enum
import json
import uuid
from decimal import Decimal
from typing import Any

from dataflow.model import FieldSpec, LogicalType
from dataflow.sql.compiler import Decoder, Encoder, SQLCompiler

#: declared column types; each contains TEXT (text affinity) where the value must stay exact
COLUMN_TYPES = {
    LogicalType.STR: "TEXT",
    LogicalType.INT: "INTEGER",
    LogicalType.FLOAT: "REAL",
    LogicalType.BOOL: "BOOLEAN",
    LogicalType.DATETIME: "DATETIME_TEXT",
    LogicalType.DATE: "DATE_TEXT",
    LogicalType.DECIMAL: "DECIMAL_TEXT",
    LogicalType.UUID: "UUID_TEXT",
    LogicalType.JSON: "JSON_TEXT",
    LogicalType.ENUM: "ENUM_TEXT",
}
LOGICAL_OF = {v: k for k, v in COLUMN_TYPES.items()}
#: SQLITE_MAX_LIKE_PATTERN_LENGTH: longer patterns are matched by df_like instead
LIKE_PATTERN_BYTES = 50_000


def _dt_text(v: _dt.datetime) -> str:
    return v.isoformat(sep=" ", timespec="microseconds")


def _decimal_text(v: Decimal) -> str:
    """One text per number, so equal Decimals are one stored value (a unique key, ``$eq``,
    ``$in`` compare text): plain notation, no trailing zeros, no negative zero -- 2.5, 2.50
    and 25E-1 are all ``'2.5'``, 1E+2 is ``'100'``. (``format`` never rounds, unlike
    ``Decimal.normalize``, which would cut to the context's 28 digits.)"""
    text = str(v)  # plain notation already, unless it has an exponent (then spell it out)
    if "E" in text:
        text = format(v, "f")
    if "." in text and text[-1] == "0":
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _enum_text(v: enum.Enum) -> str:
    value = v._value_  # the member's value (``.value`` is a slower descriptor)
    return value if type(value) is str else str(value)


class SQLiteCompiler(SQLCompiler):
    name = "sqlite"
    paramstyle = "qmark"
    quote_char = '"'
    supports_returning = True
    upsert_style = "on_conflict"
    decimal_ordering = False
    unicode_ilike = True  # df_ilike: Python's case-insensitive matching
    alter_add_foreign_key = False  # a foreign key reaches a live table by a rebuild
    # no FOR UPDATE: transactions are BEGIN IMMEDIATE, so writers are serialised already
    lock_clause = ""

    def column_type(self, f: FieldSpec) -> str:
        if f.ltype is LogicalType.STR and f.max_length is not None:
            return f"VARCHAR({int(f.max_length)})"
        return COLUMN_TYPES[f.ltype]

    def primary_key_ddl(self, f: FieldSpec) -> str:
        return "PRIMARY KEY" if f.ltype is LogicalType.INT else "PRIMARY KEY NOT NULL"

    def encoder(self, f: FieldSpec) -> Encoder | None:
        lt = f.ltype
        if lt is LogicalType.DATETIME:
            return _dt_text
        if lt is LogicalType.DATE:
            return lambda v: v.isoformat()
        if lt is LogicalType.DECIMAL:
            return _decimal_text
        if lt is LogicalType.UUID:
            return str
        if lt is LogicalType.BOOL:
            return int
        if lt is LogicalType.ENUM:
            return _enum_text
        return super().encoder(f)

    def decoder(self, f: FieldSpec) -> Decoder | None:
        lt = f.ltype
        if lt is LogicalType.BOOL:
            return bool
        if lt is LogicalType.FLOAT:
            return float
        if lt is LogicalType.DATE:
            return _dt.date.fromisoformat
        if lt is LogicalType.DECIMAL:
            return Decimal
        if lt is LogicalType.UUID:
            return uuid.UUID
        return super().decoder(f)

    def visit_json_contains(self, e: Any, model: Any, p: Any) -> str:
        return f"df_json_contains({self.col(model, e.field)}, {p.add(json.dumps(e.value))})"

    def ilike(self, col: str, mark: str) -> str:
        return f"df_ilike({col}, {mark})"

    def visit_like(self, e: Any, model: Any, p: Any) -> str:
        """SQLite's LIKE reads text only up to a NUL character, so a stored ``'a\\x00b'``
        would match ``'a'``: rows holding a NUL (and patterns holding one, or longer than
        SQLite's 50,000-byte pattern limit) are matched by ``df_like`` over the whole text;
        the others keep the native LIKE."""
        if e.case_insensitive:
            return super().visit_like(e, model, p)
        col = self.col(model, e.field)
        if "\x00" in e.pattern or len(e.pattern.encode("utf-8", "surrogatepass")) > LIKE_PATTERN_BYTES:
            return f"df_like({col}, {p.add(e.pattern)})"
        python = f"df_like({col}, {p.add(e.pattern)})"
        return (f"(CASE WHEN instr(CAST({col} AS BLOB), X'00') > 0 THEN {python} "
                f"ELSE {col} LIKE {p.add(e.pattern)}{self.like_escape} END)")

    def visit_regex(self, e: Any, model: Any, p: Any) -> str:
        flags = "i" if e.case_insensitive else ""
        return f"df_regexp({self.col(model, e.field)}, {p.add(e.pattern)}, '{flags}')"

    def limit_offset(self, limit: int | None, offset: int | None, p: Any) -> str:
        # SQLite's OFFSET needs a LIMIT: -1 is its "no limit"
        if offset and limit is None:
            return f" LIMIT -1 OFFSET {int(offset)}"
        return super().limit_offset(limit, offset, p)
