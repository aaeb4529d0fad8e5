"""The base SQL compiler: one AST, small per-dialect subclasses.

A dialect subclass sets a few flags (parameter style, quoting, RETURNING, upsert
form) and overrides the methods for what differs (column types, value encoding,
ILIKE / regex). Anything a dialect cannot render exactly raises
:class:`~dataflow.errors.UnsupportedError`.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar

from ..errors import UnsupportedError
from ..model import IDENTIFIER, FieldSpec, ForeignKey, LogicalType, ModelSpec, constraint_name
from ..query.ast import (
    And,
    Comparison,
    Const,
    Count,
    Delete,
    Expr,
    InList,
    Insert,
    IsNull,
    Like,
    Not,
    Or,
    Select,
    Statement,
    Update,
    Upsert,
)
from ..values import json_text

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]
_OPS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclass(frozen=True, slots=True)
class Compiled:
    """SQL text with its parameters, in the driver's parameter style."""

    sql: str
    params: tuple[Any, ...]


class _Params:
    __slots__ = ("style", "values")

    def __init__(self, style: str) -> None:
        self.values: list[Any] = []
        self.style = style

    def add(self, value: Any) -> str:
        self.values.append(value)
        if self.style == "numeric":
            return f"${len(self.values)}"
        return "%s" if self.style == "format" else "?"


def _json_encode(f: FieldSpec) -> Encoder:
    if f.pydantic_cls is not None:
        return lambda v: v.model_dump_json()
    return json_text


def _json_decode(f: FieldSpec) -> Decoder:
    if f.pydantic_cls is not None:
        cls = f.pydantic_cls
        return lambda v: cls.model_validate_json(v) if isinstance(v, (str, bytes)) else (
            cls.model_validate(v))
    return lambda v: json.loads(v) if isinstance(v, (str, bytes)) else v


class SQLCompiler:
    """Renders statements of the query AST as SQL for one dialect."""

    name: ClassVar[str] = "generic"
    paramstyle: ClassVar[str] = "qmark"
    quote_char: ClassVar[str] = '"'
    supports_returning: ClassVar[bool] = True
    upsert_style: ClassVar[str] = "on_conflict"
    decimal_ordering: ClassVar[bool] = True
    #: ``$ilike`` folds case for all of Unicode; when False, a non-ASCII pattern is
    #: refused (``LOWER()`` may fold ASCII only) -- mirrors ``Capabilities.unicode_ilike``
    unicode_ilike: ClassVar[bool] = False
    like_escape: ClassVar[str] = " ESCAPE '\\'"
    #: ``ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY`` exists; where it does not
    #: (SQLite), a foreign key reaches a live table only by a rebuild (``apply_step``), and
    #: CREATE TABLE may reference a table created later (no cycle deferral needed)
    alter_add_foreign_key: ClassVar[bool] = True
    #: what ``Select.for_update`` appends: ``" FOR UPDATE"`` where the database locks rows
    #: until the transaction ends; ``""`` where it serialises write transactions, so a read
    #: inside one is already stable (SQLite's ``BEGIN IMMEDIATE``); ``None``: refused
    #: (DF-501). Mirrors ``Capabilities.row_locks``.
    lock_clause: ClassVar[str | None] = None

    # --- identifiers and parameters -------------------------------------------------
    def quote(self, ident: str) -> str:
        if not IDENTIFIER.match(ident):  # model specs are validated; this is a last guard
            raise UnsupportedError(f"refusing identifier {ident!r:.80}.")
        q = self.quote_char
        return f"{q}{ident}{q}"

    def table(self, model: ModelSpec) -> str:
        return self.quote(model.table)

    def params(self) -> _Params:
        return _Params(self.paramstyle)

    # --- types ------------------------------------------------------------------------
    def column_type(self, f: FieldSpec) -> str:
        raise NotImplementedError

    def encoder(self, f: FieldSpec) -> Encoder | None:
        """Python value -> driver value, or None when the driver takes it as is."""
        lt = f.ltype
        if lt is LogicalType.JSON:
            return _json_encode(f)
        if lt is LogicalType.ENUM:
            return lambda v: v.value
        return None

    def decoder(self, f: FieldSpec) -> Decoder | None:
        """Driver value -> declared Python type, or None when it already is."""
        lt = f.ltype
        if lt is LogicalType.JSON:
            return _json_decode(f)
        if lt is LogicalType.ENUM:
            cls = f.enum_cls
            assert cls is not None
            by_text = {str(m.value): m for m in cls}
            return lambda v: by_text[str(v)]
        if lt is LogicalType.DATETIME:
            return _aware_utc
        return None

    def encode(self, f: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        enc = self._encoders(f.name, f)
        return value if enc is None else enc(value)

    def _encoders(self, name: str, f: FieldSpec) -> Encoder | None:
        return self.encoder(f)

    # --- row codecs (cached per model and column list) --------------------------------
    def row_encoder(
        self, model: ModelSpec, columns: tuple[str, ...]
    ) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        return _row_encoder(self, model, columns)

    def row_decoder(self, model: ModelSpec, columns: tuple[str, ...]) -> Callable[[Any], dict[str, Any]]:
        return _row_decoder(self, model, columns)

    # --- expressions -------------------------------------------------------------------
    def expr(self, e: Expr, model: ModelSpec, p: _Params) -> str:
        method = getattr(self, f"visit_{e.visit_name}", None)
        if method is None:
            raise UnsupportedError(f"the {self.name} dialect cannot render {type(e).__name__}.")
        return str(method(e, model, p))

    def col(self, model: ModelSpec, name: str) -> str:
        return self.quote(model.fields[name].name)

    def visit_const(self, e: Const, model: ModelSpec, p: _Params) -> str:
        return "1=1" if e.value else "1=0"

    def visit_comparison(self, e: Comparison, model: ModelSpec, p: _Params) -> str:
        f = model.fields[e.field]
        if e.op not in ("eq", "ne") and f.ltype is LogicalType.DECIMAL and not self.decimal_ordering:
            raise UnsupportedError(
                f"the {self.name} dialect cannot compare Decimal values by order exactly.",
                model=model.name, field=e.field, fix="use $eq / $in, or a float field.",
            )
        col = self.col(model, e.field)
        sql = f"{col} {_OPS[e.op]} {p.add(self.encode(f, e.value))}"
        if e.op == "ne" and f.nullable:
            return f"({sql} OR {col} IS NULL)"
        return sql

    def visit_in_list(self, e: InList, model: ModelSpec, p: _Params) -> str:
        f = model.fields[e.field]
        col = self.col(model, e.field)
        values = [v for v in e.values if v is not None]
        has_null = len(values) < len(e.values)
        if not values:
            return self.in_list_nulls(e, f, col, None, has_null)
        marks = ", ".join(p.add(self.encode(f, v)) for v in values)
        return self.in_list_nulls(e, f, col, f"{col} {'NOT IN' if e.negate else 'IN'} ({marks})", has_null)

    @staticmethod
    def in_list_nulls(e: InList, f: FieldSpec, col: str, test: str | None, has_null: bool) -> str:
        """The NULL rules of ``$in`` / ``$nin`` around ``test``, the dialect's membership test of
        the non-null values (``None``: there were none): ``$in`` with a None also matches NULL;
        ``$nin`` matches NULL unless the list holds a None (SQL's ``NOT IN`` alone never does)."""
        base = test if test is not None else ("1=1" if e.negate else "1=0")
        if not e.negate:
            return f"({base} OR {col} IS NULL)" if has_null else base
        if has_null:
            return f"({base} AND {col} IS NOT NULL)"
        return f"({base} OR {col} IS NULL)" if f.nullable else base

    def visit_is_null(self, e: IsNull, model: ModelSpec, p: _Params) -> str:
        return f"{self.col(model, e.field)} IS {'NOT ' if e.negate else ''}NULL"

    def visit_like(self, e: Like, model: ModelSpec, p: _Params) -> str:
        col = self.col(model, e.field)
        if e.case_insensitive:
            if not self.unicode_ilike and not e.pattern.isascii():
                raise UnsupportedError(
                    f"the {self.name} dialect cannot match $ilike case-insensitively beyond "
                    "ASCII.", model=model.name, field=e.field,
                    fix="use an ASCII pattern, $like with the exact case, or $regex.")
            return self.ilike(col, p.add(e.pattern))
        return f"{col} LIKE {p.add(e.pattern)}{self.like_escape}"

    def ilike(self, col: str, mark: str) -> str:
        return f"LOWER({col}) LIKE LOWER({mark}){self.like_escape}"

    def visit_and_(self, e: And, model: ModelSpec, p: _Params) -> str:
        return "(" + " AND ".join(self.expr(i, model, p) for i in e.items) + ")"

    def visit_or_(self, e: Or, model: ModelSpec, p: _Params) -> str:
        return "(" + " OR ".join(self.expr(i, model, p) for i in e.items) + ")"

    def visit_not_(self, e: Not, model: ModelSpec, p: _Params) -> str:
        return f"(({self.expr(e.item, model, p)}) IS NOT TRUE)"

    # --- statements ---------------------------------------------------------------------
    def compile(self, stmt: Statement) -> Compiled:
        method = getattr(self, f"compile_{stmt.visit_name}", None)
        if method is None:
            raise UnsupportedError(f"the {self.name} dialect cannot compile {type(stmt).__name__}.")
        result: Compiled = method(stmt)
        return result

    def column_list(self, model: ModelSpec, columns: tuple[str, ...] | None = None) -> str:
        return ", ".join(self.quote(c) for c in (columns or tuple(model.fields)))

    def where_clause(self, stmt: Select | Count | Update | Delete, p: _Params) -> str:
        if isinstance(stmt.where, Const) and stmt.where.value:
            return ""
        return " WHERE " + self.expr(stmt.where, stmt.model, p)

    def compile_select(self, stmt: Select) -> Compiled:
        p = self.params()
        model = stmt.model
        sql = f"SELECT {self.column_list(model)} FROM {self.table(model)}"
        sql += self.where_clause(stmt, p)
        if stmt.order_by:
            terms = []
            for o in stmt.order_by:
                f = model.fields[o.field]
                if f.ltype is LogicalType.DECIMAL and not self.decimal_ordering:
                    raise UnsupportedError(
                        f"the {self.name} dialect cannot order Decimal values exactly.",
                        model=model.name, field=o.field,
                    )
                if f.primary_key:  # never NULL: the plain order, which its index serves
                    terms.append(self.quote(o.field) + (" DESC" if o.descending else ""))
                else:
                    terms.append(self.order_term(self.quote(o.field), o.descending))
            sql += " ORDER BY " + ", ".join(terms)
        sql += self.limit_offset(stmt.limit, stmt.offset, p)
        if stmt.for_update:
            sql += self.for_update_clause(model)
        return Compiled(sql, tuple(p.values))

    def for_update_clause(self, model: ModelSpec) -> str:
        if self.lock_clause is None:
            raise UnsupportedError(
                f"the {self.name} dialect cannot lock rows (for_update=True).",
                model=model.name,
                fix="read without for_update, or use an adapter that declares row_locks.")
        return self.lock_clause

    def order_term(self, col: str, descending: bool) -> str:
        """NULLs sort first ascending and last descending on every backend."""
        if descending:
            return f"{col} IS NULL, {col} DESC"
        return f"{col} IS NOT NULL, {col}"

    def limit_offset(self, limit: int | None, offset: int | None, p: _Params) -> str:
        """Standard SQL: ``LIMIT n`` and ``OFFSET m``, each only when given. A dialect whose
        OFFSET needs a LIMIT (SQLite: ``LIMIT -1``, MySQL: the largest unsigned) overrides."""
        sql = ""
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if offset:
            sql += f" OFFSET {int(offset)}"
        return sql

    def compile_count(self, stmt: Count) -> Compiled:
        p = self.params()
        sql = f"SELECT COUNT(*) FROM {self.table(stmt.model)}" + self.where_clause(stmt, p)
        return Compiled(sql, tuple(p.values))

    def compile_delete(self, stmt: Delete) -> Compiled:
        p = self.params()
        sql = f"DELETE FROM {self.table(stmt.model)}" + self.where_clause(stmt, p)
        return Compiled(sql, tuple(p.values))

    def compile_update(self, stmt: Update) -> Compiled:
        p = self.params()
        model = stmt.model
        sets = ", ".join(
            f"{self.quote(k)} = {p.add(self.encode(model.fields[k], v))}"
            for k, v in stmt.values.items()
        )
        sql = f"UPDATE {self.table(model)} SET {sets}" + self.where_clause(stmt, p)
        if stmt.returning:
            sql += self.returning_clause(model)
        return Compiled(sql, tuple(p.values))

    def returning_clause(self, model: ModelSpec) -> str:
        if not self.supports_returning:
            raise UnsupportedError(f"the {self.name} dialect has no RETURNING.")
        return f" RETURNING {self.column_list(model)}"

    def insert_sql(self, model: ModelSpec, columns: tuple[str, ...], nrows: int = 1,
                   returning: bool = False) -> str:
        """INSERT text for ``nrows`` rows of ``columns`` (parameters in row-major order)."""
        return _insert_sql(self, model, columns, nrows, returning)

    def compile_insert(self, stmt: Insert) -> Compiled:
        enc = self.row_encoder(stmt.model, stmt.columns)
        params: list[Any] = []
        for row in stmt.rows:
            params.extend(enc(row))
        sql = self.insert_sql(stmt.model, stmt.columns, len(stmt.rows), stmt.returning)
        return Compiled(sql, tuple(params))

    def upsert_sql(self, model: ModelSpec, columns: tuple[str, ...], conflict: tuple[str, ...],
                   update: tuple[str, ...], nrows: int = 1, returning: bool = False) -> str:
        base = self.insert_sql(model, columns, nrows, returning=False)
        if self.upsert_style != "on_conflict":
            raise UnsupportedError(f"the {self.name} dialect must override upsert_sql.")
        target = ", ".join(self.quote(c) for c in conflict)
        if update:
            sets = ", ".join(f"{self.quote(c)} = excluded.{self.quote(c)}" for c in update)
            sql = f"{base} ON CONFLICT ({target}) DO UPDATE SET {sets}"
        else:
            sql = f"{base} ON CONFLICT ({target}) DO NOTHING"
        if returning:
            sql += self.returning_clause(model)
        return sql

    def compile_upsert(self, stmt: Upsert) -> Compiled:
        enc = self.row_encoder(stmt.model, stmt.columns)
        params: list[Any] = []
        for row in stmt.rows:
            params.extend(enc(row))
        sql = self.upsert_sql(stmt.model, stmt.columns, stmt.conflict, stmt.update,
                              len(stmt.rows), stmt.returning)
        return Compiled(sql, tuple(params))

    # --- DDL --------------------------------------------------------------------------
    def column_ddl(self, model: ModelSpec, f: FieldSpec) -> str:
        """One column of ``model``'s CREATE TABLE. The model is passed so a dialect can name
        per-table objects (a sequence for the key, a check constraint)."""
        parts = [self.quote(f.name), self.column_type(f)]
        if f.primary_key:
            parts.append(self.primary_key_ddl(f))
        elif not f.nullable:
            parts.append("NOT NULL")
        if f.unique and not f.primary_key:
            parts.append("UNIQUE")
        return " ".join(parts)

    def primary_key_ddl(self, f: FieldSpec) -> str:
        return "PRIMARY KEY"

    def create_table(self, model: ModelSpec,
                     foreign_keys: list[ForeignKey] | None = None) -> list[str]:
        """CREATE TABLE with its constraints; ``foreign_keys`` (default: all of the model's)
        lets the planner defer the keys of a reference cycle to ``add_foreign_key``."""
        cols = [self.column_ddl(model, f) for f in model.fields.values()]
        for group in model.unique_together:
            cols.append(self.unique_constraint(model, group))
        for fk in model.foreign_keys if foreign_keys is None else foreign_keys:
            cols.append(self.foreign_key_ddl(model, fk))
        stmts = [f"CREATE TABLE {self.table(model)} ({', '.join(cols)})"]
        stmts += self.create_indexes(model)
        return stmts

    def unique_constraint(self, model: ModelSpec, group: tuple[str, ...]) -> str:
        """A named composite unique constraint (the name appears in violation errors)."""
        name = self.quote(constraint_name("uq", model.table, group))
        return f"CONSTRAINT {name} UNIQUE ({', '.join(self.quote(c) for c in group)})"

    def foreign_key_ddl(self, model: ModelSpec, fk: ForeignKey) -> str:
        """``CONSTRAINT fk_... FOREIGN KEY (col) REFERENCES parent (id) ON DELETE ...``."""
        if fk.target_table is None:
            from ..errors import ModelDefinitionError

            raise ModelDefinitionError(
                f"foreign key to '{fk.target}' is not resolved.", model=model.name,
                field=fk.column, fix=f"declare model {fk.target} on the same DataFlow instance.")
        return (f"CONSTRAINT {self.quote(fk.name)} FOREIGN KEY ({self.quote(fk.column)}) "
                f"REFERENCES {self.quote(fk.target_table)} ({self.quote(fk.target_field)}) "
                f"ON DELETE {fk.action}")

    def add_foreign_key(self, model: ModelSpec, fk: ForeignKey) -> list[str]:
        """Add a foreign key to a live table (the database checks the existing rows)."""
        return [f"ALTER TABLE {self.table(model)} ADD {self.foreign_key_ddl(model, fk)}"]

    def drop_foreign_key(self, model: ModelSpec, name: str) -> str:
        return f"ALTER TABLE {self.table(model)} DROP CONSTRAINT {self.quote(name)}"

    def index_name(self, model: ModelSpec, columns: tuple[str, ...]) -> str:
        name = f"ix_{model.table}_{'_'.join(columns)}"
        if len(name) > 63:
            import hashlib

            name = name[:50] + "_" + hashlib.sha1(name.encode()).hexdigest()[:12]
        return name

    def create_indexes(self, model: ModelSpec) -> list[str]:
        groups: list[tuple[str, ...]] = [
            (n,) for n, f in model.fields.items() if f.index and not f.unique
        ]
        groups += list(model.indexes)
        return [
            f"CREATE INDEX {self.quote(self.index_name(model, g))} ON {self.table(model)} "
            f"({', '.join(self.quote(c) for c in g)})"
            for g in groups
        ]

    def add_column(self, model: ModelSpec, f: FieldSpec, default_sql: str | None) -> list[str]:
        ddl = f"{self.quote(f.name)} {self.column_type(f)}"
        if default_sql is not None:
            ddl += f" DEFAULT {default_sql}"
        if not f.nullable:
            ddl += " NOT NULL"
        return [f"ALTER TABLE {self.table(model)} ADD COLUMN {ddl}"]

    def drop_column(self, model: ModelSpec, column: str) -> list[str]:
        return [f"ALTER TABLE {self.table(model)} DROP COLUMN {self.quote(column)}"]

    def drop_table(self, table: str) -> str:
        return f"DROP TABLE IF EXISTS {self.quote(table)}"

    def literal(self, f: FieldSpec, value: Any) -> str:
        """A DDL default literal (DEFAULT clauses cannot take bound parameters)."""
        v = self.encode(f, value)
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, (int, float, Decimal)):
            return repr(v) if not isinstance(v, Decimal) else str(v)
        if isinstance(v, (_dt.datetime, _dt.date, uuid.UUID)):
            v = str(v)
        text = str(v).replace("'", "''")
        return f"'{text}'"


def _aware_utc(v: Any) -> Any:
    if isinstance(v, str):
        v = _dt.datetime.fromisoformat(v)
    tz = v.tzinfo
    if tz is _dt.UTC:  # drivers of aware columns (asyncpg) answer with this very tzinfo
        return v
    if tz is None:
        return v.replace(tzinfo=_dt.UTC)
    if v.utcoffset() != _dt.timedelta(0):
        return v.astimezone(_dt.UTC)
    return v


@lru_cache(maxsize=4096)
def _insert_sql(c: SQLCompiler, model: ModelSpec, columns: tuple[str, ...], nrows: int,
                returning: bool) -> str:
    p = c.params()
    rows = []
    for _ in range(nrows):
        rows.append("(" + ", ".join(p.add(None) for _ in columns) + ")")
    sql = f"INSERT INTO {c.table(model)} ({c.column_list(model, columns)}) VALUES {', '.join(rows)}"
    if returning:
        sql += c.returning_clause(model)
    return sql


def _memo_last(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` remembering its last input by identity (for immutable values such as the one
    timestamp shared by every row of a bulk write)."""
    cell: list[tuple[Any, Any]] = [(object(), None)]

    def memo(v: Any) -> Any:
        last = cell[0]
        if last[0] is v:
            return last[1]
        out = fn(v)
        cell[0] = (v, out)
        return out

    return memo


def _memo_equal(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` remembering its last input by equality (for decoding repeated timestamp text;
    the results are immutable, so sharing one is safe)."""
    cell: list[tuple[Any, Any]] = [(object(), None)]

    def memo(v: Any) -> Any:
        last = cell[0]
        if last[0] == v and type(last[0]) is type(v):
            return last[1]
        out = fn(v)
        cell[0] = (v, out)
        return out

    return memo


_MEMO_TYPES = (LogicalType.DATETIME, LogicalType.DATE)


@lru_cache(maxsize=1024)
def _row_encoder(c: SQLCompiler, model: ModelSpec, columns: tuple[str, ...]
                 ) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    env: dict[str, Any] = {}
    items = []
    for i, n in enumerate(columns):
        f = model.fields[n]
        e = c.encoder(f)
        if e is None:
            items.append(f"row[{n!r}]")
            continue
        env[f"_e{i}"] = _memo_last(e) if f.ltype in _MEMO_TYPES else e
        items.append(f"(None if (v{i} := row[{n!r}]) is None else _e{i}(v{i}))")
    # one generated tuple expression per column list: no per-column loop at run time
    src = f"def encode(row):\n    return ({', '.join(items)}{',' if len(items) == 1 else ''})"
    exec(src, env)  # column names are validated model fields, embedded with repr()
    encode: Callable[[dict[str, Any]], tuple[Any, ...]] = env["encode"]
    return encode


@lru_cache(maxsize=1024)
def _row_decoder(c: SQLCompiler, model: ModelSpec, columns: tuple[str, ...]
                 ) -> Callable[[Any], dict[str, Any]]:
    env: dict[str, Any] = {"_len": len, "_n": len(columns), "_zip": zip, "_cols": columns}
    items = []
    for i, n in enumerate(columns):
        f = model.fields[n]
        d = c.decoder(f)
        if d is None:
            items.append(f"{n!r}: row[{i}]")
            continue
        env[f"_d{i}"] = _memo_equal(d) if f.ltype in _MEMO_TYPES else d
        items.append(f"{n!r}: None if (v{i} := row[{i}]) is None else _d{i}(v{i})")
    src = ("def decode(row):\n"
           "    if _len(row) != _n:\n"
           "        dict(_zip(_cols, row, strict=True))  # raises, as before\n"
           f"    return {{{', '.join(items)}}}")
    exec(src, env)  # column names are validated model fields, embedded with repr()
    decode: Callable[[Any], dict[str, Any]] = env["decode"]
    return decode


def renders_as_base(compiler: SQLCompiler, *methods: str) -> bool:
    """Whether ``compiler``'s class leaves each of ``methods`` as :class:`SQLCompiler` has
    it: an adapter may then keep a statement's text per model and column list (it depends
    on no value) and encode the values with ``row_encoder``; a dialect that renders one of
    them its own way is compiled per call."""
    kind = type(compiler)
    return all(getattr(kind, name) is getattr(SQLCompiler, name) for name in methods)
