"""The MongoDB-style filter language, parsed into the query AST.

``{"age": {"$gte": 18}, "$or": [{"role": "admin"}, {"name": {"$like": "A%"}}]}``
becomes ``And(Comparison(age ge 18), Or(...))``. Field names are checked against the
model (with a "did you mean"), operators against the list below, and every value is
canonicalised to its field's type, so nothing unchecked reaches a compiler.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import FilterError, UnknownOperatorError, did_you_mean
from ..model import LogicalType, ModelSpec
from ..values import JSON_MAX_DEPTH, RowValidator, json_depth_exceeds
from .ast import (
    FALSE,
    TRUE,
    And,
    Comparison,
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

COMPARISONS = {"$eq": "eq", "$ne": "ne", "$gt": "gt", "$gte": "ge", "$lt": "lt", "$lte": "le"}
FIELD_OPERATORS = frozenset(
    [*COMPARISONS, "$in", "$nin", "$like", "$ilike", "$regex", "$options", "$exists", "$not",
     "$contains"]
)
LOGICAL_OPERATORS = frozenset(["$and", "$or", "$not", "$nor"])
#: how deeply ``$and``/``$or``/``$nor``/``$not`` may nest: far beyond any hand-written filter,
#: well within every parser's and compiler's recursion (a deeper filter is DF-401)
MAX_FILTER_DEPTH = 32
_TEXT_TYPES = (LogicalType.STR,)


def _is_unicode(text: str) -> bool:
    """False for text no database can store, e.g. a lone surrogate (``"\\ud800"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _and(items: list[Expr]) -> Expr:
    items = [i for i in items if i is not TRUE]
    if any(i is FALSE for i in items):
        return FALSE
    if not items:
        return TRUE
    return items[0] if len(items) == 1 else And(tuple(items))


def _or(items: list[Expr]) -> Expr:
    items = [i for i in items if i is not FALSE]
    if any(i is TRUE for i in items):
        return TRUE
    if not items:
        return FALSE
    return items[0] if len(items) == 1 else Or(tuple(items))


class _Parser:
    def __init__(self, model: ModelSpec, validator: RowValidator) -> None:
        self.model = model
        self.validator = validator
        self.depth = 0

    def error(self, message: str, field: str | None = None, fix: str | None = None) -> FilterError:
        return FilterError(message, model=self.model.name, field=field, fix=fix)

    def document(self, flt: Any) -> Expr:
        self.depth += 1
        try:
            if self.depth > MAX_FILTER_DEPTH:
                raise self.error(
                    f"the filter nests $and/$or/$nor/$not more than {MAX_FILTER_DEPTH} levels deep.",
                    fix="flatten it: $and/$or take a list of any length, so nested groups of the "
                    "same operator can be merged.")
            return self._document(flt)
        finally:
            self.depth -= 1

    def _document(self, flt: Any) -> Expr:
        if not isinstance(flt, Mapping):
            raise self.error(
                f"a filter must be a dict, got {type(flt).__name__}.",
                fix='write e.g. {"name": "Alice"} or {"age": {"$gt": 18}}.',
            )
        parts: list[Expr] = []
        for key, value in flt.items():
            if not isinstance(key, str):
                raise self.error(f"filter keys must be strings, got {key!r:.60}.")
            if key.startswith("$"):
                parts.append(self.logical(key, value))
            else:
                parts.append(self.field(key, value))
        return _and(parts)

    def logical(self, op: str, value: Any) -> Expr:
        if op not in LOGICAL_OPERATORS:
            raise UnknownOperatorError(
                f"unknown operator {op!r:.80} at the top of a filter."
                f"{did_you_mean(op, LOGICAL_OPERATORS)}",
                model=self.model.name,
                fix="use $and, $or, $nor or $not here, or put field operators under a field.",
            )
        if op == "$not":
            return Not(self.document(value))
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or not value:
            raise self.error(f"{op} takes a non-empty list of filters, got {value!r:.80}.")
        items = [self.document(v) for v in value]
        if op == "$and":
            return _and(items)
        if op == "$or":
            return _or(items)
        return Not(_or(items))  # $nor

    def resolve(self, name: str) -> str:
        if name not in self.model.fields:
            raise FilterError(
                f"unknown field {name!r:.80} in filter.{did_you_mean(name, self.model.fields)}",
                model=self.model.name,
                field=name[:80],
                fix=f"filter on one of: {', '.join(self.model.fields)}.",
            )
        return name

    def value(self, name: str, value: Any) -> Any:
        return self.validator.value(name, value, op="filter")

    def field(self, name: str, spec: Any) -> Expr:
        name = self.resolve(name)
        ftype = self.model.fields[name].ltype
        is_ops = isinstance(spec, Mapping) and spec and all(
            isinstance(k, str) and k.startswith("$") for k in spec
        )
        if not is_ops:
            if isinstance(spec, Mapping) and ftype is not LogicalType.JSON:
                raise self.error(
                    f"filter value for '{name}' is a dict but its keys are not operators.",
                    field=name,
                    fix='use operators such as {"$gt": 1}, or compare with a plain value.',
                )
            return self.compare(name, "$eq", spec)
        assert isinstance(spec, Mapping)
        parts: list[Expr] = []
        options = spec.get("$options")
        if options is not None and (not isinstance(options, str) or set(options) - {"i"}):
            raise self.error(f"$options supports only 'i', got {options!r:.40}.", field=name)
        if options is not None and "$regex" not in spec:
            raise self.error("$options is only valid next to $regex.", field=name)
        for op, operand in spec.items():
            if op == "$options":
                continue
            if op not in FIELD_OPERATORS:
                raise UnknownOperatorError(
                    f"unknown operator {op!r:.80} on field '{name}'."
                    f"{did_you_mean(op, FIELD_OPERATORS)}",
                    model=self.model.name,
                    field=name,
                    fix=f"use one of: {', '.join(sorted(FIELD_OPERATORS))}.",
                )
            if op == "$not":
                if isinstance(operand, Mapping):
                    self.depth += 1
                    try:
                        if self.depth > MAX_FILTER_DEPTH:
                            raise self.error(f"$not nests more than {MAX_FILTER_DEPTH} levels deep.",
                                             field=name, fix="remove the doubled $not.")
                        parts.append(Not(self.field(name, operand)))
                    finally:
                        self.depth -= 1
                else:
                    raise self.error("$not takes a dict of operators.", field=name)
                continue
            parts.append(self.compare(name, op, operand, options=options))
        return _and(parts)

    def compare(self, name: str, op: str, operand: Any, *, options: str | None = None) -> Expr:
        ftype = self.model.fields[name].ltype
        if op in ("$eq", "$ne"):
            if operand is None:
                return IsNull(name, negate=op == "$ne")
            self._no_json(name, op)
            return Comparison(name, COMPARISONS[op], self.value(name, operand))
        if op in COMPARISONS:
            self._no_json(name, op)
            if operand is None:
                raise self.error(f"{op} cannot compare with None.", field=name,
                                 fix='use {"$eq": None} or {"$exists": false} for missing values.')
            if ftype is LogicalType.BOOL:
                raise self.error(f"{op} does not apply to a bool field.", field=name)
            return Comparison(name, COMPARISONS[op], self.value(name, operand))
        if op in ("$in", "$nin"):
            self._no_json(name, op)
            if not isinstance(operand, (list, tuple, set, frozenset)):
                raise self.error(f"{op} takes a list, got {type(operand).__name__}.", field=name,
                                 fix=f'wrap the value in a list: {{"{name}": {{"{op}": [...]}}}}.')
            if not operand:
                return FALSE if op == "$in" else TRUE
            values = tuple(None if v is None else self.value(name, v) for v in operand)
            return InList(name, values, negate=op == "$nin")
        if op in ("$like", "$ilike", "$regex"):
            if ftype not in _TEXT_TYPES:
                raise self.error(f"{op} applies to str fields only.", field=name)
            if not isinstance(operand, str):
                raise self.error(f"{op} takes a str pattern, got {type(operand).__name__}.",
                                 field=name, fix=f"pass the pattern as text, e.g. {{\"{op}\": \"^ab\"}}.")
            if not operand.isascii() and not _is_unicode(operand):
                raise self.error(f"the {op} pattern is not valid Unicode text (it holds a lone "
                                 "surrogate such as '\\ud800').", field=name,
                                 fix="decode the pattern properly, or remove the surrogate.")
            if op == "$regex":
                import re

                try:
                    re.compile(operand)
                except re.error as exc:
                    raise self.error(f"invalid regular expression: {exc}.", field=name,
                                     fix="write a pattern Python's re module compiles (escape "
                                     "literal brackets and parentheses with \\).") from None
                except (RecursionError, OverflowError, MemoryError):  # e.g. 10,000 nested groups
                    raise self.error("the regular expression is too deeply nested or too large.",
                                     field=name, fix="simplify the pattern.") from None
                return Regex(name, operand, case_insensitive=options == "i")
            return Like(name, operand, case_insensitive=op == "$ilike")
        if op == "$contains":
            if ftype is not LogicalType.JSON:
                raise self.error("$contains applies to JSON fields (dict, list, pydantic) only.",
                                 field=name, fix="use $eq / $in / $like on other fields.")
            if json_depth_exceeds(operand):
                raise self.error(f"$contains takes a JSON value nested at most {JSON_MAX_DEPTH} "
                                 "levels deep.", field=name)
            try:
                json.dumps(operand, allow_nan=False)
            except (TypeError, ValueError, RecursionError) as exc:
                raise self.error(f"$contains takes a JSON value ({exc}).", field=name) from None
            return JsonContains(name, operand)
        if op == "$exists":
            if not isinstance(operand, bool):
                raise self.error("$exists takes true or false.", field=name)
            return IsNull(name, negate=operand)
        raise AssertionError(op)

    def _no_json(self, name: str, op: str) -> None:
        if self.model.fields[name].ltype is LogicalType.JSON:
            raise self.error(
                f"{op} on a JSON field is not supported.",
                field=name,
                fix="filter JSON fields with $contains, None or $exists.",
            )


def parse_filter(model: ModelSpec, flt: Any, validator: RowValidator | None = None) -> Expr:
    """Parse a MongoDB-style filter into an :class:`Expr` validated against ``model``."""
    if flt is None:
        return TRUE
    return _Parser(model, validator or RowValidator(model)).document(flt)


def parse_order_by(model: ModelSpec, order_by: Any) -> tuple[OrderBy, ...]:
    """``"-score"`` or ``["-score", "name"]`` -> ``(OrderBy(score, desc), OrderBy(name))``."""
    if order_by is None:
        return ()
    terms = [order_by] if isinstance(order_by, str) else order_by
    if not isinstance(terms, (list, tuple)):
        raise FilterError(f"order_by takes a str or a list of str, got {type(order_by).__name__}.",
                          model=model.name)
    out: list[OrderBy] = []
    for term in terms:
        if not isinstance(term, str) or not term:
            raise FilterError(f"order_by term {term!r:.80} is not a field name.", model=model.name)
        desc = term.startswith("-")
        name = term[1:] if desc or term.startswith("+") else term
        if name not in model.fields:
            raise FilterError(
                f"unknown field {name!r:.80} in order_by.{did_you_mean(name, model.fields)}",
                model=model.name,
                field=name[:80],
                fix=f"order by one of: {', '.join(model.fields)} (prefix '-' for descending).",
            )
        if model.fields[name].ltype is LogicalType.JSON:
            raise FilterError("cannot order by a JSON field.", model=model.name, field=name)
        out.append(OrderBy(name, desc))
    return tuple(out)
