"""Validation of caller input against a model, before any SQL is written.

Each field gets one checker that returns the canonical Python value (``Decimal``,
aware UTC ``datetime``, ``UUID``, enum member, plain JSON) or raises a DF error
naming the model, the field and the fix.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import (
    DataFlowError,
    ManagedFieldError,
    MissingFieldError,
    UnknownFieldError,
    UnsupportedError,
    ValidationError,
    did_you_mean,
)
from .model import MISSING, FieldSpec, LogicalType, ModelSpec

Checker = Callable[[Any], Any]
UTC = _dt.UTC


def utcnow(resolution: int = 1) -> _dt.datetime:
    """The current time, aware UTC, truncated to ``resolution`` microseconds (a backend's
    ``datetime_resolution``: what it stores is what the caller gets back)."""
    now = _dt.datetime.now(UTC)
    return now if resolution == 1 else truncate_datetime(now, resolution)


def truncate_datetime(value: _dt.datetime, resolution: int) -> _dt.datetime:
    """``value`` with the microseconds below ``resolution`` dropped (toward the past)."""
    extra = value.microsecond % resolution
    return value.replace(microsecond=value.microsecond - extra) if extra else value


def to_utc(value: _dt.datetime) -> _dt.datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _Bad(Exception):
    """Internal: raised by a checker with the reason, and the fix when it is not "pass a value
    of the declared type" (``{name}`` stands for the field); the caller makes the DF error."""

    def __init__(self, reason: str, fix: str | None = None) -> None:
        super().__init__(reason)
        self.fix = fix


#: fixes for causes other than a wrong type
_FIX_SHORTEN = "shorten '{name}' to at most {limit} characters, or declare a larger max_length."
_FIX_JSON = ("pass only JSON values for '{name}': str, int, float, bool, None, and lists or dicts "
             "(with str keys) of them.")
_FIX_UNICODE = "decode the text of '{name}' properly, or remove the lone surrogate."
_FIX_DEPTH = "flatten the value of '{name}', or store it as text."


def _type_fix(f: FieldSpec, name: str) -> str:
    """``pass an int for 'qty'.`` with the right article."""
    kind = getattr(f.python_type, "__name__", str(f.python_type))
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"pass {article} {kind} for '{name}'."


class _Slow(Exception):
    """Internal: the compiled fast path declines a row; the general path handles it."""


def _check_str(f: FieldSpec) -> Checker:
    limit = f.max_length

    def check(v: Any) -> Any:
        if type(v) is not str and not isinstance(v, str):
            raise _Bad(f"expected str, got {type(v).__name__} {v!r:.60}")
        if limit is not None and len(v) > limit:
            raise _Bad(f"is {len(v)} characters long; max_length is {limit}",
                       _FIX_SHORTEN.replace("{limit}", str(limit)))
        if not v.isascii() and not _utf8_ok(v):
            raise _Bad("is not valid Unicode text (it holds a lone surrogate)", _FIX_UNICODE)
        return v

    return check


def _utf8_ok(v: str) -> bool:
    """Can ``v`` be stored as UTF-8? (False for lone surrogates such as ``"\\ud800"``.)"""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: every backend stores ``int`` as a signed 64-bit integer (INTEGER / BIGINT)
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 63 - 1


def _check_int(v: Any) -> Any:
    if type(v) is not int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"expected int, got {type(v).__name__} {v!r:.60}")
        v = int(v)
    if not INT_MIN <= v <= INT_MAX:
        # refused here, not by the driver (SQLite's raised a bare OverflowError)
        raise _Bad(f"{v!r:.60} is outside the 64-bit integer range every backend stores")
    return v


def _check_float(v: Any) -> Any:
    if type(v) is float:
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad(f"expected float, got {type(v).__name__} {v!r:.60}")
    try:
        return float(v)
    except OverflowError:  # an int beyond the double range, e.g. 10**400
        raise _Bad("is too large for a float (a 64-bit double)") from None


def _check_bool(v: Any) -> Any:
    if v is True or v is False:
        return v
    raise _Bad(f"expected bool, got {type(v).__name__} {v!r:.60}")


def _check_datetime(v: Any) -> Any:
    if isinstance(v, str):
        try:
            v = _dt.datetime.fromisoformat(v)
        except ValueError:
            pass
    if isinstance(v, _dt.datetime):
        try:
            return to_utc(v)
        except OverflowError:  # e.g. 0001-01-01 00:00+05:00 is before year 1 in UTC
            raise _Bad(f"{v.isoformat()} is outside the years 1-9999 once converted to UTC"
                       ) from None
    raise _Bad(f"expected datetime (or ISO 8601 text), got {type(v).__name__} {v!r:.60}")


def _check_date(v: Any) -> Any:
    if isinstance(v, _dt.date) and not isinstance(v, _dt.datetime):
        return v
    if isinstance(v, str):
        try:
            return _dt.date.fromisoformat(v)
        except ValueError:
            pass
    raise _Bad(f"expected date (or ISO 8601 text), got {type(v).__name__} {v!r:.60}")


#: decimal text: ASCII digits only (``Decimal()`` also reads other scripts' digits and
#: ``1_000``, which no other entry -- ints, floats, frames -- accepts); surrounding white
#: space is allowed, as for frames
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _check_decimal(v: Any) -> Any:
    if isinstance(v, bool):
        raise _Bad(f"expected Decimal, got bool {v!r}")
    try:
        if isinstance(v, Decimal):
            d = v
        elif isinstance(v, int):
            d = Decimal(v)
        elif isinstance(v, float):
            d = Decimal(repr(v))
        elif isinstance(v, str):
            if _DECIMAL_TEXT.fullmatch(v.strip()) is None:
                raise _Bad(f"expected a decimal number (ASCII digits), got {v!r:.60}")
            d = Decimal(v)
        else:
            raise _Bad(f"expected Decimal, got {type(v).__name__} {v!r:.60}")
    except InvalidOperation:
        raise _Bad(f"expected a decimal number, got {v!r:.60}") from None
    if not d.is_finite():
        raise _Bad(f"{v!r} is not a finite number")
    return d


def _check_uuid(v: Any) -> Any:
    if isinstance(v, uuid.UUID):
        return v
    if isinstance(v, str):
        try:
            return uuid.UUID(v)
        except ValueError:
            pass
    raise _Bad(f"expected UUID, got {type(v).__name__} {v!r:.60}")


#: the deepest JSON value every backend stores (MariaDB's JSON_VALID limit; a scalar has depth 1)
JSON_MAX_DEPTH = 32


def json_depth_exceeds(v: Any, limit: int = JSON_MAX_DEPTH) -> bool:
    """Is ``v`` nested deeper than ``limit`` (counted as MySQL's ``JSON_DEPTH``)? Iterative, so
    a value nested 100,000 deep is answered without recursion."""
    stack: list[tuple[Any, int]] = [(v, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth >= limit and len(children):
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _not_json(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _strict_json_encoder() -> Callable[[Any], str]:
    """Compact JSON text with NaN and infinities refused: the C encoder called directly (no
    per-call encoder set-up); the circular-reference check is left to RecursionError."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - interpreters without the C accelerator
        return json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
    chunks = make(None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",",
                  False, False, False)

    def dump(v: Any) -> str:
        return "".join(chunks(v, 0))

    return dump


_strict_json = _strict_json_encoder()


def json_text(v: Any) -> str:
    """A JSON value as stored text (compact separators)."""
    return json.dumps(v, separators=(",", ":"))


#: JSON encoders of the dialects that are :func:`json_text` followed by a rewrite of the text
#: (None: none); the bulk fast path then serialises once and applies the rewrite
_JSON_TEXT_ENCODERS: dict[Any, Callable[[str], str] | None] = {json_text: None}


def register_json_text(encoder: Callable[[Any], str], rewrite: Callable[[str], str]) -> None:
    """Declare ``encoder(v) == rewrite(json_text(v))`` for every JSON value ``v``."""
    _JSON_TEXT_ENCODERS[encoder] = rewrite


def _json_safe(v: Any) -> None:
    if json_depth_exceeds(v):
        raise _Bad(f"is nested more than {JSON_MAX_DEPTH} levels deep", _FIX_DEPTH)
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _Bad(f"is not JSON-serialisable ({type(exc).__name__}: {exc})",
                       _FIX_JSON) from None


def _check_json(f: FieldSpec) -> Checker:
    if f.pydantic_cls is not None:
        model_cls = f.pydantic_cls

        def check_model(v: Any) -> Any:
            if isinstance(v, model_cls):
                return v
            if isinstance(v, Mapping):
                try:
                    return model_cls.model_validate(v)
                except Exception as exc:  # pydantic's ValidationError
                    raise _Bad(f"does not match {model_cls.__name__}: {exc}") from None
            raise _Bad(f"expected {model_cls.__name__} or a dict, got {type(v).__name__}")

        return check_model
    kind = f.json_kind

    def check(v: Any) -> Any:
        if kind is not None and not isinstance(v, kind):
            raise _Bad(f"expected {kind.__name__}, got {type(v).__name__} {v!r:.60}")
        _json_safe(v)
        return v

    return check


def _json_text_checker(f: FieldSpec, rewrite: Callable[[str], str] | None = None
                       ) -> Checker | None:
    """For a plain JSON field: the field's checker fused with :func:`json_text` (the value
    serialised once, not once to check and once to store), then ``rewrite``; None for
    pydantic fields."""
    if f.pydantic_cls is not None:
        return None
    kind = f.json_kind

    def check_and_dump(v: Any) -> Any:
        if kind is not None and not isinstance(v, kind):
            raise _Bad(f"expected {kind.__name__}, got {type(v).__name__} {v!r:.60}")
        try:
            text = _strict_json(v)
        except (TypeError, ValueError, RecursionError) as exc:
            raise _Bad(f"is not JSON-serialisable ({type(exc).__name__}: {exc})",
                       _FIX_JSON) from None
        # fewer opening brackets than the limit (counted in C, strings included: an upper
        # bound; a text shorter than the limit has fewer) cannot nest that deep; otherwise
        # the exact walk decides
        if (len(text) >= JSON_MAX_DEPTH - 1
                and text.count("[") + text.count("{") >= JSON_MAX_DEPTH - 1
                and json_depth_exceeds(v)):
            raise _Bad(f"is nested more than {JSON_MAX_DEPTH} levels deep", _FIX_DEPTH)
        return text if rewrite is None else rewrite(text)

    return check_and_dump


def _check_enum(f: FieldSpec) -> Checker:
    enum_cls = f.enum_cls
    assert enum_cls is not None

    def check(v: Any) -> Any:
        if isinstance(v, enum_cls):
            return v
        try:
            return enum_cls(v)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in enum_cls)
            raise _Bad(f"{v!r:.60} is not one of {allowed}") from None

    return check


def _float_finite(check: Checker) -> Checker:
    def wrapped(v: Any) -> Any:
        out = check(v)
        if math.isnan(out) or math.isinf(out):
            raise _Bad(f"{v!r} is not a finite number")
        return out

    return wrapped


def checker_for(f: FieldSpec) -> Checker:
    """The canonicalising checker of one field (None handling is the caller's)."""
    lt = f.ltype
    if lt is LogicalType.STR:
        return _check_str(f)
    if lt is LogicalType.INT:
        return _check_int
    if lt is LogicalType.FLOAT:
        return _float_finite(_check_float)
    if lt is LogicalType.BOOL:
        return _check_bool
    if lt is LogicalType.DATETIME:
        return _check_datetime
    if lt is LogicalType.DATE:
        return _check_date
    if lt is LogicalType.DECIMAL:
        return _check_decimal
    if lt is LogicalType.UUID:
        return _check_uuid
    if lt is LogicalType.JSON:
        return _check_json(f)
    if lt is LogicalType.ENUM:
        return _check_enum(f)
    raise AssertionError(lt)


#: the conversions DataFlow makes silently, which strict mode refuses: logical type ->
#: (the Python types taken as they are, what to pass instead)
STRICT_TYPES: dict[LogicalType, tuple[tuple[type, ...], str]] = {
    LogicalType.DATETIME: ((_dt.datetime,), "an aware datetime (e.g. datetime.now(UTC))"),
    LogicalType.DATE: ((_dt.date,), "a date"),
    LogicalType.DECIMAL: ((Decimal, int), "a Decimal (Decimal('1.10'), not 1.1)"),
    LogicalType.UUID: ((uuid.UUID,), "a uuid.UUID"),
}


def _strict(f: FieldSpec, check: Checker) -> Checker:
    """``check`` refusing the implicit conversions: a naive datetime (taken as UTC
    otherwise), a float for a Decimal (its binary value otherwise), text parsed into a
    datetime, date, Decimal or UUID."""
    rule = STRICT_TYPES.get(f.ltype)
    if rule is None:
        return check
    exact, instead = rule

    def strict(v: Any) -> Any:
        if not isinstance(v, exact) or isinstance(v, bool) or (
                f.ltype is LogicalType.DATE and isinstance(v, _dt.datetime)):
            raise _Bad(f"strict mode takes no implicit conversion: got {type(v).__name__} "
                       f"{v!r:.60}", f"pass {instead} for '{{name}}'.")
        if isinstance(v, _dt.datetime) and f.ltype is LogicalType.DATETIME and v.tzinfo is None:
            raise _Bad("strict mode refuses a naive datetime (it would be taken as UTC)",
                       "attach the time zone: value.replace(tzinfo=UTC) if it is UTC, or "
                       "value.astimezone(UTC) for local time, for '{name}'.")
        return check(v)

    return strict


def _resolution(check: Checker, resolution: int, strict: bool) -> Checker:
    """``check`` for a backend that keeps datetimes to ``resolution`` microseconds (BSON
    dates: milliseconds): a finer value is truncated to that step, or refused in strict mode
    (it would not read back as written)."""
    unit = "milliseconds" if resolution == 1000 else f"steps of {resolution} microseconds"

    def check_step(v: Any) -> Any:
        out = check(v)
        extra = out.microsecond % resolution
        if not extra:
            return out
        if strict:
            raise _Bad(f"{out.isoformat()} is finer than this backend keeps datetimes ({unit}); "
                       "strict mode refuses to truncate it",
                       f"round '{{name}}' to {unit} first, e.g. value.replace(microsecond="
                       f"value.microsecond // {resolution} * {resolution}).")
        return out.replace(microsecond=out.microsecond - extra)

    return check_step


def _no_fast_path(data: Any, *args: Any, **kwargs: Any) -> None:
    return None


class RowValidator:
    """Validates whole rows of one model; built once per model and reused. ``strict``
    (``DataFlow(strict=True)`` or ``__dataflow__ = {"strict": True}``) refuses the implicit
    conversions listed in :data:`STRICT_TYPES`; strict rows always take the general path."""

    def __init__(self, model: ModelSpec, *, nul_in_text: bool = True, strict: bool = False,
                 datetime_resolution: int = 1) -> None:
        self.model = model
        self.strict = strict or bool(model.options.get("strict", False))
        #: microseconds a stored datetime keeps (the backend's ``datetime_resolution``)
        self.datetime_resolution = datetime_resolution
        self.checkers: dict[str, Checker] = {n: checker_for(f) for n, f in model.fields.items()}
        if datetime_resolution != 1:
            for n, f in model.fields.items():
                if f.ltype is LogicalType.DATETIME:
                    self.checkers[n] = _resolution(self.checkers[n], datetime_resolution,
                                                   self.strict)
        if self.strict:
            self.checkers = {n: _strict(model.fields[n], c) for n, c in self.checkers.items()}
        self.writable = frozenset(model.writable)
        #: False where the backend cannot store NUL in text: such values are refused
        self.nul_in_text = nul_in_text
        self._fast_create: Callable[[dict[str, Any], _dt.datetime], dict[str, Any]] | None = (
            None if self.strict else _compile_create(self))  # NUL text: the general path refuses it
        self._tuple_creators: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = {}

    def value(self, name: str, value: Any, *, op: str) -> Any:
        """Check one value of field ``name``; raises a DF error naming it."""
        f = self.model.fields[name]
        if value is None:
            if f.nullable:
                return None
            raise ValidationError(
                f"None is not allowed in {op}: the field is required.",
                model=self.model.name,
                field=name,
                fix=f"give '{name}' a {f.python_type.__name__} value, or declare it Optional.",
            )
        try:
            out = self.checkers[name](value)
        except _Bad as bad:
            raise ValidationError(
                f"invalid value in {op}: {bad}.",
                model=self.model.name,
                field=name,
                fix=bad.fix.replace("{name}", name) if bad.fix else _type_fix(f, name),
            ) from None
        if not self.nul_in_text and isinstance(out, str) and "\x00" in out:
            raise UnsupportedError(
                f"this backend cannot store the NUL character (\\x00) in text ({op}).",
                model=self.model.name,
                field=name,
                fix="remove or replace the NUL characters before writing.",
            )
        return out

    def _unknown(self, data: Mapping[str, Any], op: str) -> None:
        errors = self._unknown_errors(data, op)
        if errors:
            raise _all_problems(errors)

    def _unknown_errors(self, data: Mapping[str, Any], op: str) -> list[DataFlowError]:
        errors: list[DataFlowError] = []
        for key in data:
            if key in self.writable:
                continue
            if key in self.model.fields:
                errors.append(ManagedFieldError(
                    f"'{key}' is managed by DataFlow and cannot be set in {op}.",
                    model=self.model.name,
                    field=key,
                    fix=f"remove '{key}' from the data; DataFlow sets it.",
                ))
                continue
            # the caller's key is echoed as a short repr: never raw control characters or
            # a 10k-character name in a message or a log line
            name = key[:80] if isinstance(key, str) else repr(key)[:80]
            errors.append(UnknownFieldError(
                f"unknown field {key!r:.80} in {op}.{did_you_mean(name, self.writable)}",
                model=self.model.name,
                field=name,
                fix=f"use one of: {', '.join(sorted(self.writable))}.",
            ))
            if len(errors) >= MAX_REPORTED_PROBLEMS:
                break
        return errors

    def insert_columns(self, *, with_id: bool = False) -> tuple[str, ...]:
        """The columns of a row that leaves generated ids (unless ``with_id``) and server
        defaults to the database."""
        return tuple(n for n, f in self.model.fields.items()
                     if (with_id or not f.auto_increment) and f.server_default is None)

    def tuple_creator(self, encoders: tuple[Any, ...], columns: tuple[str, ...] | None = None
                      ) -> Callable[..., tuple[Any, ...] | None]:
        """``fn(data, encoded_now, tenant=None)``: the encoded row of :meth:`insert_columns`
        for a plain valid dict, or None for anything else (the caller then runs
        :meth:`for_create`, which names the error). Validation is the same as
        ``for_create``'s, fused with the driver encoding so no intermediate dict is built
        (bulk inserts). With ``tenant``, the tenant column is that tenant: filled in where
        the row leaves it out, and a row naming another tenant gets None."""
        if self.strict:
            return _no_fast_path  # every row through for_create, with the strict checkers
        columns = columns if columns is not None else self.insert_columns()
        key = (columns, *map(id, encoders))
        cached = self._tuple_creators.get(key)
        if cached is None or cached[0] != encoders:
            cached = (encoders, _compile_tuple_create(self, columns, encoders))
            self._tuple_creators[key] = cached
        return cached[1]

    def creator(self, now: _dt.datetime) -> Callable[[Any], dict[str, Any]]:
        """``for_create`` with ``now`` bound, one call per row (for bulk writes)."""
        fast = self._fast_create
        for_create = self.for_create
        if fast is None:
            return lambda data: for_create(data, now)

        def create(data: Any) -> dict[str, Any]:
            if type(data) is dict:
                try:
                    return fast(data, now)
                except _Slow:
                    pass
            return for_create(data, now)

        return create

    def for_create(self, data: Mapping[str, Any], now: _dt.datetime) -> dict[str, Any]:
        """A complete row for insert: defaults filled, ids generated, timestamps set."""
        fast = self._fast_create
        if fast is not None and type(data) is dict:
            try:
                return fast(data, now)
            except _Slow:
                pass  # anything unusual: the general path below decides (and names the error)
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"create expects a dict of fields, got {type(data).__name__}.",
                model=self.model.name,
            )
        errors = self._unknown_errors(data, "create")
        row: dict[str, Any] = {}
        for name, f in self.model.fields.items():
            if f.managed:
                row[name] = None if f.tombstone else now  # a new row is live
            elif name in data:
                try:
                    row[name] = self.value(name, data[name], op="create")
                except DataFlowError as exc:  # every problem of the row is reported
                    errors.append(exc)
            elif f.auto_increment or f.server_default is not None:
                continue  # the database fills it
            elif f.generated_uuid:
                row[name] = uuid.uuid4()
            elif f.has_default:
                row[name] = f.make_default()
                if row[name] is not None:
                    row[name] = self.value(name, row[name], op="create")
            elif f.nullable:
                row[name] = None
            else:
                errors.append(MissingFieldError(
                    "missing required field in create.",
                    model=self.model.name,
                    field=name,
                    fix=f"pass '{name}' ({getattr(f.python_type, '__name__', f.python_type)}).",
                ))
        if errors:
            raise _all_problems(errors)
        return row

    def for_update(self, fields: Mapping[str, Any], now: _dt.datetime) -> dict[str, Any]:
        """The SET clause of an update: only given fields, plus ``updated_at``."""
        if not isinstance(fields, Mapping):
            raise ValidationError(
                f"update expects a dict of fields, got {type(fields).__name__}.",
                model=self.model.name,
            )
        self._unknown(fields, "update")
        if "id" in fields:
            raise ValidationError(
                "the primary key cannot be changed by update.",
                model=self.model.name,
                field="id",
                fix="create a new record instead.",
            )
        values: dict[str, Any] = {}
        errors: list[DataFlowError] = []
        for k, v in fields.items():
            try:
                values[k] = self.value(k, v, op="update")
            except DataFlowError as exc:  # every problem of the update is reported
                errors.append(exc)
        if errors:
            raise _all_problems(errors)
        if "updated_at" in self.model.fields:  # absent on tables registered from a schema
            values["updated_at"] = now
        return values

    def key(self, value: Any) -> Any:
        """Check a primary-key value (for read/update/delete by id)."""
        return self.value("id", value, op="id lookup")


_MISSING_KEY = object()
#: problems of one row listed in its error, at most
MAX_REPORTED_PROBLEMS = 20


def _all_problems(errors: list[DataFlowError]) -> DataFlowError:
    """The first problem's error (its class and code), naming every other problem of the
    same row too; all of them are in ``.details["problems"]``."""
    first = errors[0]
    if len(errors) > 1:
        more = "; ".join(f"{e.field}: {e.message.rstrip('.')}"
                         + (f" (fix: {e.fix.rstrip('.')})" if e.fix else "") for e in errors[1:])
        more += "."
        first.message = f"{first.message} The row has {len(errors) - 1} more problem(s): {more}"
        first.details["problems"] = errors
        first.args = (first._render(),)
    return first


_NO_CONSTANT: Any = object()
_IMMUTABLE = (str, int, float, bool, Decimal, _dt.date, uuid.UUID, enum.Enum, type(None))


def _constant_default(validator: RowValidator, name: str, f: FieldSpec) -> Any:
    """A plain immutable default, already canonical; ``_NO_CONSTANT`` otherwise."""
    if f.default_factory is not None or f.default is MISSING or not isinstance(f.default, _IMMUTABLE):
        return _NO_CONSTANT
    if f.default is None:
        return None if f.nullable else _NO_CONSTANT
    try:
        return validator.checkers[name](f.default)
    except _Bad:
        return _NO_CONSTANT


def _fast_test(f: FieldSpec, nul_check: bool, resolution: int = 1) -> str:
    """Generated-code test for "``v`` is already a valid value of exactly the declared type"
    (never true for a missing key or None); empty where every value needs its checker.
    Names it uses come from :data:`_FAST_ENV`."""
    lt = f.ltype
    if lt is LogicalType.STR:
        test = "type(v) is str and (v.isascii() or _utf8_ok(v))"
        if f.max_length is not None:
            test = f"type(v) is str and len(v) <= {int(f.max_length)} and (v.isascii() or _utf8_ok(v))"
        return test + (' and "\\x00" not in v' if nul_check else "")
    if lt is LogicalType.INT:
        return f"type(v) is int and {INT_MIN} <= v <= {INT_MAX}"
    if lt is LogicalType.FLOAT:
        return "type(v) is float and v - v == 0.0"  # finite floats only
    if lt is LogicalType.BOOL:
        return "v is True or v is False"
    if lt is LogicalType.DECIMAL:
        return "type(v) is _Decimal and v.is_finite()"
    if lt is LogicalType.DATETIME:
        test = "type(v) is _datetime and v.tzinfo is _UTC"  # already canonical: aware UTC
        return test if resolution == 1 else f"{test} and not v.microsecond % {int(resolution)}"
    if lt is LogicalType.DATE:
        return "type(v) is _date"
    if lt is LogicalType.UUID:
        return "type(v) is _UUID"
    return ""


#: the names :func:`_fast_test`'s expressions use
_FAST_ENV: dict[str, Any] = {"_Decimal": Decimal, "_datetime": _dt.datetime, "_UTC": UTC,
                             "_date": _dt.date, "_UUID": uuid.UUID, "_utf8_ok": _utf8_ok}


def _check_and_store(i: int, pad: str, nul_check: bool, stored: str) -> list[str]:
    """Generated lines: run column ``i``'s checker on ``v`` (None, the per-row path, if it
    refuses), refuse NUL text where the backend cannot store it, then store ``stored``."""
    lines = [f"{pad}try:", f"{pad}    v = _c{i}(v)", f"{pad}except _Bad:", f"{pad}    return None"]
    if nul_check:
        lines.append(f'{pad}if "\\x00" in v: return None')
    lines.append(f"{pad}x{i} = {stored}")
    return lines


def _compile_tuple_create(validator: RowValidator, columns: tuple[str, ...],
                          encoders: tuple[Any, ...]) -> Callable[..., tuple[Any, ...] | None]:
    model = validator.model
    settable = frozenset(c for c in columns if not model.fields[c].managed)
    env: dict[str, Any] = {"_Bad": _Bad, "_M": _MISSING_KEY, "_uuid4": uuid.uuid4,
                           "_settable": settable, **_FAST_ENV}
    # unknown keys: every settable key found is counted out of ``data``; the ``m`` missing
    # ones are counted, so ``len(data) == len(settable) - m`` holds exactly when ``data``
    # has no other key (one length test per row instead of a set comparison)
    lines = ["def fused(data, now, tenant=None):",
             "    if type(data) is not dict:",
             "        return None",
             "    m = 0"]
    for i, name in enumerate(columns):
        f = model.fields[name]
        enc = encoders[i]
        checker = validator.checkers[name]
        if f.ltype is LogicalType.JSON and enc in _JSON_TEXT_ENCODERS:
            fused_json = _json_text_checker(f, _JSON_TEXT_ENCODERS[enc])
            if fused_json is not None:  # checked and serialised in one pass
                checker, enc = fused_json, None
        env[f"_e{i}"] = enc

        def wrap(expr: str, i: int = i, enc: Any = enc) -> str:
            return expr if enc is None else f"_e{i}({expr})"

        if f.managed:
            lines.append(f"    x{i} = {'None' if f.tombstone else 'now'}")
            continue
        key = repr(name)
        env[f"_c{i}"] = checker
        nul_check = f.ltype is LogicalType.STR and not validator.nul_in_text
        fast_test = _fast_test(f, nul_check, validator.datetime_resolution)
        # a subscript in a try block costs less than dict.get when the key is there
        lines += ["    try:", f"        v = data[{key}]", "    except KeyError:", "        v = _M"]
        if f.tenant:  # the bound tenant's rows only, as Express._tenant_data
            lines += ["    if tenant is not None:", "        if v is _M:", "            m += 1",
                      "            v = tenant", "        elif v != tenant:", "            return None"]
        first = "if"
        if fast_test:
            lines.append(f"    if {fast_test}:")
            lines.append(f"        x{i} = {wrap('v')}")
            first = "elif"
        lines.append(f"    {first} v is _M:")
        lines.append("        m += 1")
        constant = _constant_default(validator, name, f)
        if f.generated_uuid:
            lines.append(f"        x{i} = {wrap('_uuid4()')}")
        elif constant is not _NO_CONSTANT and not (nul_check and "\x00" in str(constant)):
            env[f"_d{i}"] = constant if constant is None or enc is None else enc(constant)
            lines.append(f"        x{i} = _d{i}")
        elif f.has_default:
            env[f"_f{i}"] = f
            lines.append(f"        v = _f{i}.make_default()")
            lines.append("        if v is None:")
            lines.append(f"            x{i} = None" if f.nullable else "            return None")
            lines.append("        else:")
            lines += _check_and_store(i, "            ", nul_check, wrap("v"))
        elif f.nullable:
            lines.append(f"        x{i} = None")
        else:
            lines.append("        return None")
        lines.append("    elif v is None:")
        lines.append(f"        x{i} = None" if f.nullable else "        return None")
        lines.append("    else:")
        lines += _check_and_store(i, "        ", nul_check, wrap("v"))
    lines += [f"    if len(data) != {len(settable)} - m:", "        return None"]
    lines.append("    return (" + "".join(f"x{i}, " for i in range(len(columns))) + ")")
    exec("\n".join(lines), env)  # names are validated identifiers, embedded with repr()
    fused: Callable[..., tuple[Any, ...] | None] = env["fused"]
    return fused


def _compile_create(
    validator: RowValidator,
) -> Callable[[dict[str, Any], _dt.datetime], dict[str, Any]] | None:
    """A straight-line ``for_create`` for one model, for the common case.

    It returns exactly what the general path returns for a plain dict whose keys are all writable
    and whose values are all valid and not None; on anything else (unknown or managed key, None,
    a value its checker rejects, a missing required field) it raises ``_Slow`` and the general
    path runs instead, so every error and every None rule stays in one place.
    """
    model = validator.model
    env: dict[str, Any] = {"_Slow": _Slow, "_Bad": _Bad, "_M": _MISSING_KEY, "_uuid4": uuid.uuid4,
                           "_writable": validator.writable, **_FAST_ENV}
    lines = ["def fast(data, now):",
             "    if not _writable.issuperset(data):",
             "        raise _Slow",
             "    row = {}",
             "    try:"]
    for i, (name, f) in enumerate(model.fields.items()):
        key = repr(name)
        if f.managed:
            lines.append(f"        row[{key}] = {'None' if f.tombstone else 'now'}")
            continue
        chk = f"_c{i}"
        env[chk] = validator.checkers[name]
        nul_check = f.ltype is LogicalType.STR and not validator.nul_in_text
        fast_test = _fast_test(f, nul_check, validator.datetime_resolution)
        lines += ["        try:", f"            v = data[{key}]", "        except KeyError:",
                  "            v = _M"]
        # the common case first: a value of exactly the declared type (never _M or None)
        first = "if"
        if fast_test:
            lines.append(f"        if {fast_test}:")
            lines.append(f"            row[{key}] = v")
            first = "elif"
        lines.append(f"        {first} v is _M:")
        constant = _constant_default(validator, name, f)
        if f.auto_increment or f.server_default is not None:
            lines.append("            pass")
        elif f.generated_uuid:
            lines.append(f"            row[{key}] = _uuid4()")
        elif constant is not _NO_CONSTANT and not (nul_check and "\x00" in str(constant)):
            env[f"_d{i}"] = constant  # an immutable default, checked once here
            lines.append(f"            row[{key}] = _d{i}")
        elif f.has_default:
            env[f"_f{i}"] = f
            lines.append(f"            d = _f{i}.make_default()")
            lines.append(f"            row[{key}] = d if d is None else {chk}(d)")
            if nul_check:
                lines.append(f'            if d is not None and "\\x00" in row[{key}]: raise _Slow')
        elif f.nullable:
            lines.append(f"            row[{key}] = None")
        else:
            lines.append("            raise _Slow")
        lines.append("        elif v is None:")
        lines.append(f"            row[{key}] = None" if f.nullable else "            raise _Slow")
        lines.append("        else:")
        lines.append(f"            row[{key}] = {chk}(v)")
        if nul_check:
            lines.append(f'            if "\\x00" in row[{key}]: raise _Slow')
    lines += ["    except _Bad:", "        raise _Slow from None", "    return row"]
    try:
        exec("\n".join(lines), env)  # names are validated identifiers, embedded with repr()
    except SyntaxError:  # pragma: no cover - defensive: fall back to the general path
        return None
    fast: Callable[[dict[str, Any], _dt.datetime], dict[str, Any]] = env["fast"]
    return fast
