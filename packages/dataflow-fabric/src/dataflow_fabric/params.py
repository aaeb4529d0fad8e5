"""Query-string parameters checked against a product function's signature.

Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``datetime``, ``date``,
``X | None`` of those, and ``list[X]`` (repeat the parameter). Values are parsed strictly:
``int`` is optional sign and digits, ``float`` must be finite, ``bool`` is one of
true/false/1/0/yes/no/on/off. Anything else, an unknown name, a missing required value or
a repeated scalar is DF-1102 naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import FabricConfigError, ParameterError

_INT = re.compile(r"[+-]?[0-9]+\Z")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
MAX_VALUE_LENGTH = 4096
SCALARS: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool",
                           dt.datetime: "datetime", dt.date: "date"}


def _parse_scalar(kind: Any, raw: str, name: str) -> Any:
    if len(raw) > MAX_VALUE_LENGTH:
        raise ParameterError(f"query parameter {name!r} is longer than {MAX_VALUE_LENGTH} characters.",
                             field=name)
    if kind is str:
        return raw
    if kind is int:
        if not _INT.match(raw) or len(raw) > 20:
            raise ParameterError(f"query parameter {name!r} must be an integer, got {raw!r:.40}.",
                                 field=name, fix=f"e.g. ?{name}=10")
        return int(raw)
    if kind is float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or "_" in raw:
            raise ParameterError(f"query parameter {name!r} must be a finite number, got {raw!r:.40}.",
                                 field=name, fix=f"e.g. ?{name}=1.5")
        return value
    if kind is bool:
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ParameterError(f"query parameter {name!r} must be true or false, got {raw!r:.40}.",
                             field=name)
    try:
        if kind is dt.datetime:
            return dt.datetime.fromisoformat(raw)
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ParameterError(f"query parameter {name!r} must be an ISO-8601 {SCALARS[kind]}, "
                             f"got {raw!r:.40}.", field=name) from None


@dataclass(frozen=True)
class Param:
    name: str
    kind: Any        # one of SCALARS
    many: bool       # list[kind]
    optional: bool   # accepts None (only as the default)
    default: Any     # inspect.Parameter.empty when required

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def _unwrap(annotation: Any, fn_name: str, name: str) -> tuple[Any, bool, bool]:
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise FabricConfigError(f"product {fn_name}: parameter {name!r} has an unsupported "
                                    f"union type.", field=name)
        optional = True
        annotation = args[0]
        origin = typing.get_origin(annotation)
    many = False
    if origin in (list, Sequence):
        (annotation,) = typing.get_args(annotation) or (str,)
        many = True
    if annotation not in SCALARS:
        raise FabricConfigError(
            f"product {fn_name}: parameter {name!r} has type {annotation!r}; query parameters "
            f"can be {', '.join(SCALARS.values())}, optional, or a list of them.", field=name)
    return annotation, many, optional


def signature_params(fn: Callable[..., Any]) -> tuple[Param, ...]:
    """The query parameters of ``fn(ctx, ...)``: every parameter after the first."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise FabricConfigError(f"product {fn.__name__}: cannot read its type hints ({exc}).") from exc
    params = []
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise FabricConfigError(f"product {fn.__name__}: parameter {p.name!r} must be a plain "
                                    "keyword parameter.", field=p.name)
        kind, many, optional = _unwrap(hints.get(p.name, str), fn.__name__, p.name)
        params.append(Param(p.name, kind, many, optional, p.default))
    return tuple(params)


def parse_query(params: Sequence[Param], items: Sequence[tuple[str, str]],
                ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Typed keyword arguments for the product from the query string's ``items``."""
    by_name = {p.name: p for p in params}
    raw: dict[str, list[str]] = {}
    for key, value in items:
        if key in ignore:
            continue
        if key not in by_name:
            known = ", ".join(by_name) or "none"
            raise ParameterError(f"unknown query parameter {key!r:.60}; this product takes: {known}.",
                                 field=key[:60])
        raw.setdefault(key, []).append(value)
    out: dict[str, Any] = {}
    for p in params:
        values = raw.get(p.name)
        if values is None:
            if p.required:
                raise ParameterError(f"query parameter {p.name!r} is required.", field=p.name,
                                     fix=f"add ?{p.name}=... to the URL.")
            out[p.name] = p.default
        elif p.many:
            out[p.name] = [_parse_scalar(p.kind, v, p.name) for v in values]
        elif len(values) > 1:
            raise ParameterError(f"query parameter {p.name!r} was given {len(values)} times; "
                                 "it takes one value.", field=p.name)
        else:
            out[p.name] = _parse_scalar(p.kind, values[0], p.name)
    return out


def cache_key(values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable key for one parameter combination (defaults filled in, so spellings agree)."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(values.items()))
