"""Operator injection is MongoDB's SQL injection: the checks every document operation runs.

* Stored keys (documents, JSON field values): strings that do not begin with ``$`` and
  hold no ``.`` and no NUL; values of storable types only.
* Filters: field paths (dots allowed: they name a path) and the query operators listed
  below; anything else -- ``$where``, ``$function``, ``$accumulator``, ``$expr`` with
  either inside, an unknown ``$`` key -- is refused (DF-301) before anything is sent.
* Pipelines: known stages only; ``$out`` / ``$merge`` refused; server-side JavaScript
  refused at any depth; under multi-tenancy the tenant ``$match`` goes first, ``$lookup``
  and ``$unionWith`` into a scoped collection get the same ``$match`` inside, and
  ``$graphLookup`` into one is refused (its search would walk other tenants' documents).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from bson import ObjectId
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.regex import Regex

from dataflow.errors import ValidationError

#: server-side JavaScript: refused everywhere
JAVASCRIPT = frozenset({"$where", "$function", "$accumulator"})
#: query operators a document filter may use on a field
FIELD_OPERATORS = frozenset({
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$type", "$regex",
    "$options", "$not", "$elemMatch", "$all", "$size", "$mod"})
LOGICAL = frozenset({"$and", "$or", "$nor"})
UPDATE_OPERATORS = frozenset({
    "$set", "$unset", "$inc", "$mul", "$min", "$max", "$push", "$pull", "$addToSet", "$pop",
    "$rename", "$currentDate", "$setOnInsert"})
STAGES = frozenset({
    "$match", "$project", "$addFields", "$set", "$unset", "$group", "$sort", "$limit", "$skip",
    "$count", "$unwind", "$lookup", "$graphLookup", "$unionWith", "$facet", "$bucket",
    "$bucketAuto", "$sortByCount", "$replaceRoot", "$replaceWith", "$sample"})
#: stages that write to a collection: refused
WRITING_STAGES = frozenset({"$out", "$merge"})
_SCALARS = (str, int, float, bool, Decimal, Decimal128, _dt.datetime, uuid.UUID, ObjectId, Binary,
            bytes, Regex, type(None))


def refuse(message: str, *, field: str | None = None, fix: str | None = None) -> ValidationError:
    return ValidationError(f"{message} Nothing was sent to the database.", field=field, fix=fix)


def check_name(key: Any, where: str, *, path: bool = False) -> str:
    """A document key (or, with ``path``, a dotted field path)."""
    if not isinstance(key, str) or not key:
        raise refuse(f"{where}: field names must be non-empty str, got {key!r:.60}.")
    if key.startswith("$"):
        raise refuse(f"{where}: field name {key!r:.60} begins with '$' (an operator, not a field).",
                     field=key[:80], fix="rename the field; operators belong in filters only.")
    if "\x00" in key:
        raise refuse(f"{where}: field name {key!r:.60} holds a NUL character.", field=key[:80])
    if "." in key and not path:
        raise refuse(f"{where}: field name {key!r:.60} contains '.', which MongoDB reads as a path.",
                     field=key[:80], fix="use nested documents instead of dotted keys.")
    if path and any(not part or part.startswith("$") for part in key.split(".")):
        raise refuse(f"{where}: {key!r:.60} is not a field path.", field=key[:80])
    return key


def check_value(value: Any, where: str, depth: int = 0) -> None:
    """A value to store: nested documents' keys checked, types storable."""
    if depth > 100:
        raise refuse(f"{where}: the value nests more than 100 levels deep.")
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_name(k, where)
            check_value(v, where, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            check_value(v, where, depth + 1)
    elif isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise refuse(f"{where}: text that is not valid Unicode (a lone surrogate).") from None
    elif not isinstance(value, _SCALARS):
        raise refuse(f"{where}: {type(value).__name__} values cannot be stored.",
                     fix="store str, numbers, bool, None, datetime, Decimal, UUID, dicts and lists.")


def check_document(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, Mapping):
        raise refuse(f"{where} takes a dict, got {type(doc).__name__}.")
    check_value(doc, where)
    return dict(doc)


def check_filter(flt: Any, where: str = "filter") -> dict[str, Any]:
    """A MongoDB filter built from field paths and the operators above only."""
    if flt is None:
        return {}
    if not isinstance(flt, Mapping):
        raise refuse(f"{where} takes a dict, got {type(flt).__name__}.")
    for key, value in flt.items():
        if isinstance(key, str) and key in LOGICAL:
            if not isinstance(value, list) or not value:
                raise refuse(f"{where}: {key} takes a non-empty list of filters.", field=key)
            for item in value:
                check_filter(item, where)
            continue
        if isinstance(key, str) and key.startswith("$"):
            _refuse_operator(key, where)
        check_name(key, where, path=True)
        _check_condition(key, value, where)
    return dict(flt)


def _refuse_operator(key: str, where: str) -> None:
    if key in JAVASCRIPT:
        raise refuse(f"{where}: {key} runs JavaScript on the server; it is refused.", field=key,
                     fix="express the condition with query operators.")
    raise refuse(f"{where}: operator {key!r:.40} is not allowed here.", field=key[:80],
                 fix=f"use {', '.join(sorted(LOGICAL))} at the top and field operators "
                 f"({', '.join(sorted(FIELD_OPERATORS))}) on fields.")


def _check_condition(path: str, value: Any, where: str) -> None:
    if isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value):
        for op, operand in value.items():
            if not isinstance(op, str) or op not in FIELD_OPERATORS:
                _refuse_operator(str(op), where)
            if op == "$not":
                if isinstance(operand, Mapping):
                    _check_condition(path, operand, where)
                elif not isinstance(operand, Regex):
                    raise refuse(f"{where}: $not takes operators or a regex.", field=path)
            elif op == "$elemMatch":
                if not isinstance(operand, Mapping):
                    raise refuse(f"{where}: $elemMatch takes a dict.", field=path)
                if any(isinstance(k, str) and k.startswith("$") for k in operand):
                    _check_condition(path, operand, where)
                else:
                    check_filter(operand, where)
            else:
                check_value(operand, where)
        return
    check_value(value, where)


def check_update(update: Any, where: str = "update") -> dict[str, Any]:
    if not isinstance(update, Mapping) or not update:
        raise refuse(f"{where} takes a non-empty dict of update operators.",
                     fix='e.g. {"$set": {"status": "done"}}.')
    for op, fields in update.items():
        if not isinstance(op, str) or op not in UPDATE_OPERATORS:
            raise refuse(f"{where}: {op!r:.40} is not an update operator.", field=str(op)[:80],
                         fix=f"use {', '.join(sorted(UPDATE_OPERATORS))} "
                         '(wrap plain fields in {"$set": {...}}).')
        if not isinstance(fields, Mapping) or not fields:
            raise refuse(f"{where}: {op} takes a non-empty dict of fields.", field=op)
        for path, value in fields.items():
            check_name(path, where, path=True)
            if op == "$rename":
                check_name(value, where, path=True)
            elif op in ("$push", "$addToSet", "$pull") and isinstance(value, Mapping) and any(
                    isinstance(k, str) and k.startswith("$") for k in value):
                for k, v in value.items():
                    if k not in ("$each", "$position", "$slice", "$sort", "$in") and k not in FIELD_OPERATORS:
                        _refuse_operator(str(k), where)
                    check_value(v, where)
            else:
                check_value(value, where)
    return dict(update)


def _scan_javascript(value: Any, where: str) -> None:
    """Refuse server-side JavaScript at any depth of a pipeline."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and k in JAVASCRIPT:
                _refuse_operator(k, where)
            if isinstance(k, str) and "\x00" in k:
                raise refuse(f"{where}: a key holds a NUL character.")
            _scan_javascript(v, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _scan_javascript(v, where)


def check_pipeline(pipeline: Any, *, scope: Callable[[str], dict[str, Any] | None],
                   collection: str, where: str = "pipeline") -> list[dict[str, Any]]:
    """A checked copy of ``pipeline``. ``scope(name)`` gives the tenant ``$match`` condition
    for a collection, or None where the collection is not tenant-scoped."""
    if not isinstance(pipeline, list):
        raise refuse(f"{where} takes a list of stages, got {type(pipeline).__name__}.")
    _scan_javascript(pipeline, where)
    out = [_check_stage(stage, scope, where) for stage in pipeline]
    own = scope(collection)
    return [{"$match": own}, *out] if own is not None else out


def _check_stage(stage: Any, scope: Callable[[str], dict[str, Any] | None], where: str
                 ) -> dict[str, Any]:
    if not isinstance(stage, Mapping) or len(stage) != 1:
        raise refuse(f"{where}: each stage is a dict with one key, got {stage!r:.80}.")
    (name, body), = stage.items()
    if name in WRITING_STAGES:
        raise refuse(f"{where}: {name} writes to a collection; it is refused.", field=name,
                     fix="read the results and write them with insert_many.")
    if not isinstance(name, str) or name not in STAGES:
        raise refuse(f"{where}: stage {name!r:.40} is not allowed.", field=str(name)[:80],
                     fix=f"use {', '.join(sorted(STAGES))}.")
    if name == "$match":
        return {name: check_filter(body, where)}
    if name == "$facet":
        if not isinstance(body, Mapping):
            raise refuse(f"{where}: $facet takes a dict of pipelines.")
        return {name: {check_name(k, where): [_check_stage(s, scope, where) for s in _stages(v, where)]
                       for k, v in body.items()}}
    if name == "$lookup":
        return {name: _scoped_lookup(body, scope, where)}
    if name == "$unionWith":
        body = {"coll": body} if isinstance(body, str) else body
        if not isinstance(body, Mapping) or not isinstance(body.get("coll"), str):
            raise refuse(f"{where}: $unionWith takes a collection name.")
        inner = [_check_stage(s, scope, where) for s in _stages(body.get("pipeline", []), where)]
        condition = scope(body["coll"])
        if condition is not None:
            inner = [{"$match": condition}, *inner]
        return {name: {**body, "pipeline": inner}}
    if name == "$graphLookup":
        if not isinstance(body, Mapping) or not isinstance(body.get("from"), str):
            raise refuse(f"{where}: $graphLookup takes from, startWith, connectFromField, ...")
        restrict = body.get("restrictSearchWithMatch")
        if restrict is not None:
            check_filter(restrict, where)
        if scope(body["from"]) is not None:
            # a recursive search would connect through other tenants' documents before any
            # filter on its result could remove them: refused rather than scoped
            raise refuse(f"{where}: $graphLookup into the tenant-scoped collection "
                         f"{body['from']!r:.60} is refused.", field="$graphLookup",
                         fix="use $lookup (scoped to the bound tenant) one level at a time.")
        return {name: dict(body)}
    return {name: body}


def _stages(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise refuse(f"{where}: a sub-pipeline must be a list of stages.")
    return value


def _scoped_lookup(body: Any, scope: Callable[[str], dict[str, Any] | None], where: str
                   ) -> dict[str, Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get("from"), str):
        raise refuse(f"{where}: $lookup takes from (a collection name) and as.")
    inner = [_check_stage(s, scope, where) for s in _stages(body.get("pipeline", []), where)]
    condition = scope(body["from"])
    out = dict(body)
    if condition is None:
        if inner or "pipeline" in body:
            out["pipeline"] = inner
        return out
    if "localField" in out or "foreignField" in out:
        # the equality form, rewritten so the tenant $match runs inside the join
        local, foreign = out.pop("localField", None), out.pop("foreignField", None)
        if not isinstance(local, str) or not isinstance(foreign, str):
            raise refuse(f"{where}: $lookup takes localField and foreignField together.")
        check_name(local, where, path=True)
        check_name(foreign, where, path=True)
        if "let" in out:
            raise refuse(f"{where}: a scoped $lookup takes localField/foreignField or let, not both.")
        out["let"] = {"df_local": f"${local}"}
        inner = [{"$match": {"$expr": {"$eq": [f"${foreign}", "$$df_local"]}}}, *inner]
    out["pipeline"] = [{"$match": condition}, *inner]
    return out
