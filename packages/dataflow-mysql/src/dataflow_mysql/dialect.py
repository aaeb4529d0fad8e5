"""The MySQL / MariaDB dialect: ``%s`` parameters, backtick identifiers, ON DUPLICATE KEY.

Type mapping (``COLUMN_TYPES``):

* ``str`` is ``LONGTEXT`` (no length cap, a 300-character string is stored intact);
  ``VARCHAR(n)`` only when the model sets ``max_length=n``. MySQL cannot index or
  constrain a TEXT column without a prefix length, so a ``str`` that is the primary
  key, ``unique``, ``index``-ed or part of a composite unique/index without
  ``max_length`` becomes ``VARCHAR(255)``: longer values are refused by the server
  (strict mode), never truncated.
* Text columns use a binary, no-pad collation (``utf8mb4_nopad_bin`` on MariaDB,
  ``utf8mb4_0900_bin`` on MySQL 8): ``$eq``, ``$in``, ``$like``, unique keys and
  ``order_by`` are case-sensitive, compare code points, and do not ignore trailing
  spaces -- the same results as the other backends, not the server default
  ``utf8mb4_general_ci`` (which would match ``'abc'`` to ``'ABC '``).
* ``$ilike`` is ``LOWER(col) LIKE LOWER(pattern)`` under that collation (Unicode
  case mapping, accents significant). ``$regex`` is ``REGEXP`` with an inline
  ``(?-i)`` (or ``(?i)`` for ``$options: "i"``) so the collation cannot change it.
* ``datetime`` is ``DATETIME(6)`` holding UTC (sessions run with ``time_zone =
  '+00:00'``) and comes back tz-aware; ``bool`` is ``BOOLEAN`` and comes back as
  ``bool``; ``float`` is ``DOUBLE``; ``Decimal`` is ``DECIMAL(65, 30)`` (values
  with more than 35 integer or 30 fractional digits are refused); ``UUID`` is
  ``CHAR(36)`` ASCII; ``dict``/``list``/pydantic are ``JSON``.
* Every column carries ``COMMENT 'dataflow:<type>'`` so introspection recovers the
  logical type exactly (``VARCHAR`` may hold an enum, ``CHAR(36)`` a UUID).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from decimal import Decimal
from typing import Any, ClassVar

from dataflow.errors import UnsupportedError, ValidationError
from dataflow.model import FieldSpec, ForeignKey, LogicalType, ModelSpec
from dataflow.query.ast import Regex
from dataflow.sql.compiler import Decoder, Encoder, SQLCompiler

UTC = _dt.UTC
_ZERO = _dt.timedelta(0)
#: MySQL's "no limit" for LIMIT ... OFFSET (it has no LIMIT -1 / LIMIT ALL)
NO_LIMIT = 18446744073709551615
DECIMAL_PRECISION = 65
DECIMAL_SCALE = 30
#: VARCHAR length of an indexed / unique / primary-key str without max_length
INDEXED_STR_LENGTH = 255

COLUMN_TYPES = {
    LogicalType.STR: "LONGTEXT",
    LogicalType.INT: "BIGINT",
    LogicalType.FLOAT: "DOUBLE",
    LogicalType.BOOL: "BOOLEAN",
    LogicalType.DATETIME: "DATETIME(6)",
    LogicalType.DATE: "DATE",
    LogicalType.DECIMAL: f"DECIMAL({DECIMAL_PRECISION}, {DECIMAL_SCALE})",
    LogicalType.UUID: "CHAR(36) CHARACTER SET ascii COLLATE ascii_bin",
    LogicalType.JSON: "JSON",
    LogicalType.ENUM: f"VARCHAR({INDEXED_STR_LENGTH})",
}
COMMENT_PREFIX = "dataflow:"


def _utc_naive(v: _dt.datetime) -> _dt.datetime:
    off = v.utcoffset()
    if off is None or off == _ZERO:
        return v  # the driver writes the wall-clock fields, which are UTC
    return v.astimezone(UTC)


def _decimal_in(v: Decimal) -> Decimal:
    t = v.as_tuple()
    exp = t.exponent
    if not isinstance(exp, int):
        raise ValidationError(f"{v} cannot be stored in a DECIMAL column.")
    frac = max(0, -exp)
    whole = max(0, len(t.digits) + exp)
    if frac > DECIMAL_SCALE or whole > DECIMAL_PRECISION - DECIMAL_SCALE:
        raise ValidationError(
            f"{v} does not fit DECIMAL({DECIMAL_PRECISION}, {DECIMAL_SCALE}) exactly.",
            fix=f"use at most {DECIMAL_PRECISION - DECIMAL_SCALE} integer and "
            f"{DECIMAL_SCALE} fractional digits on MySQL.")
    return v


def _decimal_out(v: Any) -> Decimal:
    # DECIMAL(65, 30) pads 30 fractional digits; give back the shortest exact form
    # (by text: Decimal.normalize() would round to the context's 28 digits)
    text = format(v, "f") if isinstance(v, Decimal) else str(v)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Decimal(text)


class MySQLCompiler(SQLCompiler):
    name = "mysql"
    paramstyle = "format"
    quote_char = "`"
    supports_returning = False
    upsert_style = "on_duplicate_key"
    decimal_ordering = True
    unicode_ilike = True
    # backslash is already LIKE's escape character; sessions never set NO_BACKSLASH_ESCAPES
    like_escape = ""
    lock_clause = " FOR UPDATE"
    #: the binary no-pad collation of text columns; the adapter picks the server's own
    #: (utf8mb4_nopad_bin on MariaDB, utf8mb4_0900_bin on MySQL 8) before any DDL
    str_collation: ClassVar[str] = "utf8mb4_bin"

    def __init__(self, str_collation: str | None = None) -> None:
        if str_collation is not None:
            self.str_collation = str_collation  # type: ignore[misc]

    # --- types ------------------------------------------------------------------------
    def _text(self, base: str) -> str:
        return f"{base} CHARACTER SET utf8mb4 COLLATE {self.str_collation}"

    def column_type(self, f: FieldSpec, indexed: bool = False) -> str:
        lt = f.ltype
        if lt is LogicalType.STR:
            if f.max_length is not None:
                return self._text(f"VARCHAR({int(f.max_length)})")
            if indexed or f.primary_key or f.unique or f.index:
                return self._text(f"VARCHAR({INDEXED_STR_LENGTH})")
            return self._text("LONGTEXT")
        if lt is LogicalType.ENUM:
            return self._text(COLUMN_TYPES[lt])
        return COLUMN_TYPES[lt]

    def encoder(self, f: FieldSpec) -> Encoder | None:
        lt = f.ltype
        if lt is LogicalType.DATETIME:
            return _utc_naive
        if lt is LogicalType.UUID:
            return str
        if lt is LogicalType.DECIMAL:
            return _decimal_in
        return super().encoder(f)

    def decoder(self, f: FieldSpec) -> Decoder | None:
        lt = f.ltype
        if lt is LogicalType.BOOL:
            return bool
        if lt is LogicalType.FLOAT:
            return float
        if lt is LogicalType.DECIMAL:
            return _decimal_out
        if lt is LogicalType.UUID:
            return uuid.UUID
        if lt is LogicalType.DATE:
            return lambda v: v if isinstance(v, _dt.date) else _dt.date.fromisoformat(str(v))
        return super().decoder(f)

    # --- expressions ----------------------------------------------------------------------
    def ilike(self, col: str, mark: str) -> str:
        return f"LOWER({col}) LIKE LOWER({mark})"

    def visit_regex(self, e: Regex, model: ModelSpec, p: Any) -> str:
        flag = "(?i)" if e.case_insensitive else "(?-i)"
        return f"{self.col(model, e.field)} REGEXP {p.add(flag + e.pattern)}"

    def limit_offset(self, limit: int | None, offset: int | None, p: Any) -> str:
        sql = ""
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if offset:
            if limit is None:
                sql += f" LIMIT {NO_LIMIT}"
            sql += f" OFFSET {int(offset)}"
        return sql

    # --- upsert -------------------------------------------------------------------------------
    def upsert_sql(self, model: ModelSpec, columns: tuple[str, ...], conflict: tuple[str, ...],
                   update: tuple[str, ...], nrows: int = 1, returning: bool = False) -> str:
        """``INSERT ... ON DUPLICATE KEY UPDATE c = VALUES(c)``.

        ``VALUES(col)`` works on MariaDB 10.x and MySQL 5.7/8 (the ``AS new`` row
        alias is MySQL-8-only). With nothing to update, the key is set to itself.
        """
        if returning:
            raise UnsupportedError("the mysql dialect has no RETURNING; the adapter reads rows back.")
        return self.insert_sql(model, columns, nrows) + self.on_duplicate(conflict, update)

    def on_duplicate(self, conflict: tuple[str, ...], update: tuple[str, ...]) -> str:
        q = self.quote
        if update:
            sets = ", ".join(f"{q(c)} = VALUES({q(c)})" for c in update)
        else:
            sets = f"{q(conflict[0])} = {q(conflict[0])}"
        return f" ON DUPLICATE KEY UPDATE {sets}"

    # --- DDL -----------------------------------------------------------------------------------
    def indexed_columns(self, model: ModelSpec) -> set[str]:
        return {c for group in (*model.unique_together, *model.indexes) for c in group}

    def column_ddl(self, model: ModelSpec, f: FieldSpec) -> str:
        parts = [self.quote(f.name), self.column_type(f, f.name in self.indexed_columns(model))]
        if f.primary_key:
            parts.append("NOT NULL")
            if f.auto_increment:
                parts.append("AUTO_INCREMENT")
            parts.append("PRIMARY KEY")
        else:
            parts.append("NULL" if f.nullable else "NOT NULL")
        if f.unique and not f.primary_key:
            parts.append("UNIQUE")
        parts.append(f"COMMENT '{COMMENT_PREFIX}{f.ltype.value}'")
        return " ".join(parts)

    def create_table(self, model: ModelSpec,
                     foreign_keys: list[ForeignKey] | None = None) -> list[str]:
        """One CREATE TABLE with its indexes inline: one atomic DDL statement per step.
        Foreign keys need InnoDB (the table's engine) and the referenced column's exact
        type: int keys are BIGINT on both sides, str keys VARCHAR (a key column is indexed)."""
        parts = [self.column_ddl(model, f) for f in model.fields.values()]
        for group in model.unique_together:
            parts.append(self.unique_constraint(model, group))
        for fk in model.foreign_keys if foreign_keys is None else foreign_keys:
            parts.append(self.foreign_key_ddl(model, fk))
        groups: list[tuple[str, ...]] = [(n,) for n, f in model.fields.items()
                                         if f.index and not f.unique]
        groups += model.indexes
        for g in groups:
            parts.append(f"INDEX {self.quote(self.index_name(model, g))} "
                         f"({', '.join(self.quote(c) for c in g)})")
        return [f"CREATE TABLE IF NOT EXISTS {self.table(model)} ({', '.join(parts)}) ENGINE=InnoDB "
                f"DEFAULT CHARSET=utf8mb4 COLLATE={self.str_collation}"]

    def drop_foreign_key(self, model: ModelSpec, name: str) -> str:
        return f"ALTER TABLE {self.table(model)} DROP FOREIGN KEY {self.quote(name)}"

    def add_column(self, model: ModelSpec, f: FieldSpec, default_sql: str | None) -> list[str]:
        ddl = f"{self.quote(f.name)} {self.column_type(f, f.name in self.indexed_columns(model))}"
        if default_sql is not None:
            # an expression default: the only kind MySQL 8 takes on TEXT / JSON columns
            ddl += f" DEFAULT ({default_sql})"
        ddl += " NULL" if f.nullable else " NOT NULL"
        if f.unique:
            ddl += " UNIQUE"
        ddl += f" COMMENT '{COMMENT_PREFIX}{f.ltype.value}'"
        return [f"ALTER TABLE {self.table(model)} ADD COLUMN {ddl}"]

    def modify_column(self, model: ModelSpec, f: FieldSpec) -> str:
        """ALTER ... MODIFY: a new type or nullability, converted by the server (strict mode)."""
        ddl = self.column_ddl(model, f).replace(" UNIQUE", "")
        return f"ALTER TABLE {self.table(model)} MODIFY COLUMN {ddl}"

    def literal(self, f: FieldSpec, value: Any) -> str:
        v = self.encode(f, value)
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, Decimal):
            return format(v, "f")
        if isinstance(v, _dt.datetime):
            v = v.replace(tzinfo=None).isoformat(sep=" ")
        text = str(v).replace("\\", "\\\\").replace("'", "''")
        return f"'{text}'"
