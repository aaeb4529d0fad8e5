"""The query AST compiled to MongoDB query documents: the second target of one AST.

Field names reaching this module are model fields (validated identifiers), values are
canonical Python values; each is encoded with the field's codec, and every comparison
names its operator (``{"f": {"$eq": v}}``), so no value is ever read as an operator.
A node this compiler has no method for raises DF-501 instead of guessing.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from dataflow.errors import UnsupportedError
from dataflow.model import LogicalType, ModelSpec
from dataflow.query.ast import (
    And,
    Comparison,
    Const,
    Expr,
    InList,
    IsNull,
    JsonContains,
    Like,
    Not,
    Or,
    OrderBy,
    Regex,
)
from dataflow.query.filters import COMPARISONS

from .codec import ModelCodec, field_name

#: the AST's comparison names back to the filter language's operators (the same words)
_OPS = {op: word for word, op in COMPARISONS.items()}
#: a filter that matches nothing: every document has an _id
MATCH_NOTHING: dict[str, Any] = {"_id": {"$exists": False}}
#: value types an equality may send bare (``{"f": v}``): none of them is a dict, a list or a
#: regex, so the server can only compare them
_BARE = frozenset({str, int, float, bool, Decimal, uuid.UUID})
#: characters with a meaning in a PCRE pattern
_PCRE_SPECIAL = frozenset("\\^$.|?*+()[]{}#-/ ")


def _literal(ch: str) -> str:
    """One character as a PCRE pattern matching exactly it."""
    if ch in _PCRE_SPECIAL:
        return "\\" + ch
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{ord(ch):02x}"
    return ch


def like_literal(pattern: str) -> str | None:
    """The text a LIKE pattern without wildcards matches exactly, or None if it has some."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            out.append(pattern[i + 1])
            i += 2
            continue
        if ch in "%_":
            return None
        out.append(ch)
        i += 1
    return "".join(out)


def like_regex(pattern: str) -> str:
    """A SQL LIKE pattern as an anchored PCRE pattern with exactly LIKE's meaning:
    ``%`` any run of characters (newlines too: the ``s`` option), ``_`` one character,
    ``\\`` escapes the next character (as ``LIKE ... ESCAPE '\\'``); all else literal."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            out.append(_literal(pattern[i + 1]))
            i += 2
            continue
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(_literal(ch))
        i += 1
    out.append("$")
    return "".join(out)


class QueryCompiler:
    """AST -> query documents for one model; built once per model by the adapter."""

    def __init__(self, model: ModelSpec, codec: ModelCodec) -> None:
        self.model = model
        self.codec = codec

    def filter(self, e: Expr) -> dict[str, Any]:
        method = getattr(self, f"visit_{e.visit_name}", None)
        if method is None:
            raise UnsupportedError(f"MongoDB cannot evaluate {type(e).__name__} filters.",
                                   model=self.model.name)
        result: dict[str, Any] = method(e)
        return result

    def sort(self, order_by: tuple[OrderBy, ...]) -> list[tuple[str, int]]:
        return [(field_name(o.field), -1 if o.descending else 1) for o in order_by]

    # --- nodes ------------------------------------------------------------------------
    def visit_comparison(self, e: Comparison) -> dict[str, Any]:
        value = self.codec.value(e.field, e.value)
        if e.op == "eq" and type(value) in _BARE:
            return {field_name(e.field): value}  # a plain scalar is never read as an operator
        return {field_name(e.field): {_OPS[e.op]: value}}

    def visit_in_list(self, e: InList) -> dict[str, Any]:
        values = [self.codec.value(e.field, v) for v in e.values]
        return {field_name(e.field): {"$nin" if e.negate else "$in": values}}

    def visit_like(self, e: Like) -> dict[str, Any]:
        if not e.case_insensitive:
            literal = like_literal(e.pattern)
            if literal is not None:  # no wildcard: plain equality (exact, and uses indexes)
                return {field_name(e.field): {"$eq": literal}}
        options = "si" if e.case_insensitive else "s"
        return {field_name(e.field): {"$regex": like_regex(e.pattern), "$options": options}}

    def visit_regex(self, e: Regex) -> dict[str, Any]:
        spec: dict[str, Any] = {"$regex": e.pattern}
        if e.case_insensitive:
            spec["$options"] = "i"
        return {field_name(e.field): spec}

    def visit_is_null(self, e: IsNull) -> dict[str, Any]:
        return {field_name(e.field): {"$ne": None} if e.negate else {"$eq": None}}

    def visit_and_(self, e: And) -> dict[str, Any]:
        parts = [self.filter(i) for i in e.items]
        merged: dict[str, Any] = {}
        for part in parts:
            # one document of conditions on distinct fields (what a MongoDB user writes, and
            # what servers match fastest); anything else stays an explicit $and
            if len(part) != 1:
                return {"$and": parts}
            (key, cond), = part.items()
            if key.startswith("$") or key in merged:
                return {"$and": parts}
            merged[key] = cond
        return merged

    def visit_or_(self, e: Or) -> dict[str, Any]:
        return {"$or": [self.filter(i) for i in e.items]}

    def visit_not_(self, e: Not) -> dict[str, Any]:
        # document semantics: every record the inner filter does not match, NULL included
        return {"$nor": [self.filter(e.item)]}

    def visit_const(self, e: Const) -> dict[str, Any]:
        return {} if e.value else dict(MATCH_NOTHING)

    def visit_json_contains(self, e: JsonContains) -> dict[str, Any]:
        f = self.model.fields[e.field]
        if f.ltype is not LogicalType.JSON:
            raise UnsupportedError("$contains applies to JSON fields.", model=self.model.name,
                                   field=e.field)
        return {"$expr": json_contains(f"${e.field}", e.value, top=True, depth=0)}


def _is_object(expr: Any) -> dict[str, Any]:
    return {"$eq": [{"$type": expr}, "object"]}


def _get(expr: Any, key: str) -> Any:
    return {"$getField": {"field": {"$literal": key}, "input": expr}}


def json_contains(expr: Any, needle: Any, *, top: bool, depth: int) -> Any:
    """An aggregation expression true where the JSON value ``expr`` contains ``needle`` with
    PostgreSQL's ``@>`` meaning. Built from ``$getField`` / ``$map`` / ``$type`` (no dotted
    paths, which would reach into arrays implicitly), with constants as ``$literal``."""
    if isinstance(needle, dict):
        parts: list[Any] = [_is_object(expr)]
        parts += [json_contains(_get(expr, k), v, top=False, depth=depth + 1)
                  for k, v in needle.items()]
        return {"$and": parts}
    if isinstance(needle, list):
        var = f"e{depth}"
        items = [{"$anyElementTrue": [{"$map": {
            "input": {"$cond": [{"$isArray": expr}, expr, []]}, "as": var,
            "in": json_contains(f"$${var}", item, top=False, depth=depth + 1)}}]}
            for item in needle]
        return {"$and": [{"$isArray": expr}, *items]}
    equal = {"$eq": [expr, {"$literal": needle}]}
    if not top:
        return {"$and": [{"$ne": [{"$type": expr}, "missing"]}, equal]}
    # a bare scalar at the top also matches a document array that holds it
    var = f"e{depth}"
    held = {"$anyElementTrue": [{"$map": {
        "input": {"$cond": [{"$isArray": expr}, expr, []]}, "as": var,
        "in": {"$eq": [f"$${var}", {"$literal": needle}]}}}]}
    return {"$or": [equal, held]}

