"""Backend-neutral query AST.

Expressions hold field *names* already validated against a model and values already
canonicalised to the field's Python type. A compiler (SQL dialect, or a document
query builder) walks them by ``visit_name``: a compiler that has no method for a
node raises ``UnsupportedError`` instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..model import ModelSpec


class Expr:
    """Base of boolean expressions over one model's fields."""

    visit_name: ClassVar[str] = "expr"


@dataclass(frozen=True, slots=True)
class Comparison(Expr):
    """``field <op> value`` with op one of eq, ne, gt, ge, lt, le (value never None)."""

    visit_name: ClassVar[str] = "comparison"
    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class InList(Expr):
    """``field IN values`` (``negate`` for NOT IN); None in values also matches NULL."""

    visit_name: ClassVar[str] = "in_list"
    field: str
    values: tuple[Any, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Like(Expr):
    """SQL LIKE pattern (``%`` and ``_``), case-sensitive unless ``case_insensitive``."""

    visit_name: ClassVar[str] = "like"
    field: str
    pattern: str
    case_insensitive: bool = False


@dataclass(frozen=True, slots=True)
class Regex(Expr):
    """POSIX-style regular-expression search (unanchored), case-sensitive by default."""

    visit_name: ClassVar[str] = "regex"
    field: str
    pattern: str
    case_insensitive: bool = False


@dataclass(frozen=True, slots=True)
class JsonContains(Expr):
    """The JSON field contains ``value`` (JSON-encodable), with PostgreSQL's ``@>`` meaning:
    objects by key, recursively; every needle array element in some document array element;
    a bare scalar at the top also matches a document array holding it."""

    visit_name: ClassVar[str] = "json_contains"
    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class IsNull(Expr):
    """``field IS NULL`` (``negate`` for IS NOT NULL)."""

    visit_name: ClassVar[str] = "is_null"
    field: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class And(Expr):
    visit_name: ClassVar[str] = "and_"
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or(Expr):
    visit_name: ClassVar[str] = "or_"
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not(Expr):
    """Negation with document semantics: rows where ``item`` is not true (NULL included)."""

    visit_name: ClassVar[str] = "not_"
    item: Expr


@dataclass(frozen=True, slots=True)
class Const(Expr):
    """Always true or always false (``$in: []`` is false, ``$nin: []`` is true)."""

    visit_name: ClassVar[str] = "const"
    value: bool


TRUE = Const(True)
FALSE = Const(False)


@dataclass(frozen=True, slots=True)
class OrderBy:
    field: str
    descending: bool = False


class Statement:
    visit_name: ClassVar[str] = "statement"
    model: ModelSpec


@dataclass(slots=True)
class Select(Statement):
    visit_name: ClassVar[str] = "select"
    model: ModelSpec
    where: Expr = TRUE
    order_by: tuple[OrderBy, ...] = ()
    limit: int | None = None
    offset: int | None = None
    #: lock the selected rows until the transaction ends (``SELECT ... FOR UPDATE``);
    #: a dialect that cannot lock rows, and does not serialise writers, refuses it
    for_update: bool = False


@dataclass(slots=True)
class Count(Statement):
    visit_name: ClassVar[str] = "count"
    model: ModelSpec
    where: Expr = TRUE


@dataclass(slots=True)
class Insert(Statement):
    """Insert rows; every row has the same keys (``columns``)."""

    visit_name: ClassVar[str] = "insert"
    model: ModelSpec
    columns: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    returning: bool = True
    #: rows already validated and encoded for the adapter's driver, in ``columns`` order
    #: (only for adapters with ``accepts_encoded_rows``); ``rows`` is then empty
    encoded: list[tuple[Any, ...]] | None = None


@dataclass(slots=True)
class Update(Statement):
    visit_name: ClassVar[str] = "update"
    model: ModelSpec
    where: Expr
    values: dict[str, Any]
    returning: bool = False


@dataclass(slots=True)
class Delete(Statement):
    visit_name: ClassVar[str] = "delete"
    model: ModelSpec
    where: Expr


@dataclass(slots=True)
class Upsert(Statement):
    """Insert rows; on a conflict on ``conflict`` columns, set ``update`` columns."""

    visit_name: ClassVar[str] = "upsert"
    model: ModelSpec
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    conflict: tuple[str, ...]
    update: tuple[str, ...]
    returning: bool = True
    #: rows already validated and encoded for the driver, in ``columns`` order (adapters
    #: with ``accepts_encoded_rows``; ``rows`` is then empty and ``returning`` false)
    encoded: list[tuple[Any, ...]] | None = None
