"""Step 2 of the frame pipeline: row rules as Polars expressions.

Each field's column is coerced to its canonical dtype in one expression (``String`` ->
int, float, bool, date, datetime, UUID, enum value, ...), and every rule is a boolean mask
over the whole column: required, coercion, 64-bit range, finite numbers, max_length, NUL
in text where the backend cannot store it, enum membership, and keys that repeat inside
the frame. No Python loop runs per row, except over pydantic-typed JSON and the JSON text
rows Polars' JSON reader cannot settle (those go through Python's ``json``, as express;
see ``json_failures``).

Messages are only built for the rows that fail a rule. Failures are kept in long form
(``row``, ``field``, ``code``, ``message``), so foreign-key checks and propagation add to
the same table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from ..errors import IntegrityError, UnsupportedError, ValidationError
from ..model import FieldSpec, LogicalType, ModelSpec
from ..values import JSON_MAX_DEPTH, json_depth_exceeds

ROW = "__df_row"
_IN = "__df_in_"
_JSON = "__df_json_"
VALIDATION = ValidationError.code
UNSUPPORTED = UnsupportedError.code
INTEGRITY = IntegrityError.code

_ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M")
_TEXT_DTYPES = (pl.String, pl.Categorical, pl.Enum)
_UUID_HEX = r"^[0-9a-f]{32}$"
_DECIMAL_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"  # ASCII digits
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}
_PLAIN_TEXT_TYPES = (LogicalType.INT, LogicalType.FLOAT, LogicalType.BOOL, LogicalType.DATE,
                     LogicalType.DECIMAL)
_TYPE_NAMES = {
    LogicalType.INT: "an integer in the 64-bit range",
    LogicalType.FLOAT: "a number",
    LogicalType.BOOL: "true or false",
    LogicalType.DATETIME: "an ISO 8601 timestamp",
    LogicalType.DATE: "an ISO 8601 date (YYYY-MM-DD)",
    LogicalType.DECIMAL: "a decimal number",
    LogicalType.UUID: "a UUID",
}

ERROR_SCHEMA = {ROW: pl.UInt32, "field": pl.String, "code": pl.String, "message": pl.String}


def empty_errors() -> pl.DataFrame:
    return pl.DataFrame(schema=ERROR_SCHEMA)


@dataclass
class Rule:
    """One check of one field: ``bad`` marks the failing rows; ``message`` is evaluated
    on those rows only."""

    field: str
    code: str
    bad: pl.Expr
    message: pl.Expr


def _text(src: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return src if dtype == pl.String else src.cast(pl.String)


def _shown(src: pl.Expr) -> pl.Expr:
    """A caller's value quoted in a message: at most 60 characters, control characters
    replaced, so a message never colours a terminal or forges a log line."""
    return src.cast(pl.String).str.slice(0, 60).str.replace_all(r"[\x00-\x1f\x7f-\x9f]", "?")


def _datetime_formats() -> list[Callable[[pl.Expr], pl.Expr]]:
    """ISO 8601 readers, most specific first: offset-aware forms, then naive (taken as UTC),
    then a bare date (midnight UTC)."""
    out: list[Callable[[pl.Expr], pl.Expr]] = []
    for base in _ISO_FORMATS[:2]:  # UTC spelled out: the suffix cut, the rest read naive
        for suffix in ("+00:00", "Z"):
            out.append(lambda e, fmt=base, sfx=suffix: pl.when(  # type: ignore[misc]
                e.str.ends_with(sfx)).then(e.str.head(-len(sfx)).str.strptime(
                    pl.Datetime("us"), fmt, strict=False, cache=False)).dt.replace_time_zone("UTC"))
    for base in _ISO_FORMATS:
        for zone in ("%:z", "%#z"):
            out.append(lambda e, fmt=base + zone: e.str.strptime(  # type: ignore[misc]
                pl.Datetime("us", "UTC"), fmt, strict=False, cache=False))
        out.append(lambda e, fmt=base: e.str.strptime(  # type: ignore[misc]
            pl.Datetime("us"), fmt, strict=False, cache=False).dt.replace_time_zone("UTC"))
    out.append(lambda e: e.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
               .cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    return out


def _fixed_datetime_formats() -> list[Callable[[pl.Expr], pl.Expr]]:
    """Fixed layouts of UTC or naive ISO 8601 text (``2024-01-02T03:04:05.123456+00:00``):
    formats Polars' own parser reads without chrono, four times faster. A text in such a
    layout reads the same with the general formats (see ``_datetime_formats``)."""
    out: list[Callable[[pl.Expr], pl.Expr]] = []
    for sep in ("T", " "):
        for frac in (".%6f", "", ".%3f"):
            for suffix in ("+00:00", "Z", ""):
                out.append(lambda e, fmt=f"%Y-%m-%d{sep}%H:%M:%S{frac}{suffix}": e.str.strptime(  # type: ignore[misc]
                    pl.Datetime("us"), fmt, strict=False, cache=False).dt.replace_time_zone("UTC"))
    for sep in ("T", " "):
        for frac in (".%6f", "", ".%3f"):
            out.append(lambda e, fmt=f"%Y-%m-%d{sep}%H:%M:%S{frac}": _with_offset(e, fmt))  # type: ignore[misc]
    return out


#: every ``+HH:MM`` / ``-HH:MM`` offset chrono's ``%:z`` reads (under 24 hours)
_OFFSETS = [f"{sign}{h:02d}:{m:02d}" for sign in "+-" for h in range(24) for m in range(60)]


def _with_offset(e: pl.Expr, fmt: str) -> pl.Expr:
    """Text of a fixed layout ``fmt`` followed by a ``±HH:MM`` offset, as UTC: the local
    part by Polars' own parser, minus the offset read from its four digits."""
    zone = e.str.tail(6)
    minutes = (zone.str.slice(1, 2).str.to_integer(strict=False) * 60
               + zone.str.slice(4, 2).str.to_integer(strict=False))
    local = e.str.head(-6).str.strptime(pl.Datetime("us"), fmt, strict=False, cache=False)
    utc = local - pl.duration(minutes=pl.when(zone.str.starts_with("-")).then(-minutes)
                              .otherwise(minutes))
    return pl.when(zone.is_in(_OFFSETS)).then(utc).dt.replace_time_zone("UTC")


def parse_datetime_text(text: pl.Series) -> pl.Series:
    """ISO 8601 text -> aware UTC timestamps (null where unreadable). The format that reads a
    sample of the column (a fixed layout if one does, as given; else a general format, on
    the text stripped of surrounding whitespace) is applied to all of it; only the rows it
    leaves unread go through every general format, so a uniform column is parsed once."""
    t = pl.col("t")
    frame = text.to_frame("t")
    sample = frame.filter(t.is_not_null()).head(8)
    fixed = next((r for r in _fixed_datetime_formats()
                  if sample.height and sample.select(r(t).is_not_null().all()).item()), None)
    readers = _datetime_formats()
    if fixed is not None:
        out = frame.select(fixed(t)).to_series()
    else:
        frame = frame.select(t.str.strip_chars())
        sample = frame.filter(t.is_not_null()).head(8)
        first = next((r for r in readers
                      if sample.height and sample.select(r(t).is_not_null().all()).item()), None)
        if first is None:
            return frame.select(pl.coalesce([r(t) for r in readers])).to_series()
        out = frame.select(first(t)).to_series()
    left = out.is_null() & text.is_not_null()
    if left.any():
        at = left.arg_true()
        rest = frame[at].select(pl.coalesce([r(t.str.strip_chars()) for r in readers])
                                ).to_series()
        out = out.scatter(at, rest)
    return out


def _to_datetime(src: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            out = src.dt.replace_time_zone("UTC")
        else:
            out = src.dt.convert_time_zone("UTC")
        return out.cast(pl.Datetime("us", "UTC"))
    text = _text(src, dtype).str.strip_chars()
    tries = []
    for base in _ISO_FORMATS:
        tries.append(text.str.strptime(pl.Datetime("us", "UTC"), base + "%:z", strict=False))
        tries.append(text.str.strptime(pl.Datetime("us", "UTC"), base + "%#z", strict=False))
        tries.append(text.str.strptime(pl.Datetime("us"), base, strict=False)
                     .dt.replace_time_zone("UTC"))
    tries.append(text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
                 .cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    return pl.coalesce(tries)


def _uuid_text(src: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """(canonical hyphenated lower-case text or null, the 32 hex digits)."""
    hexes = (_text(src, dtype).str.strip_chars().str.to_lowercase()
             .str.replace("^urn:", "").str.replace("^uuid:", "")
             .str.strip_chars("{}").str.replace_all("-", "", literal=True))
    ok = hexes.str.contains(_UUID_HEX)
    canon = pl.concat_str([hexes.str.slice(0, 8), hexes.str.slice(8, 4), hexes.str.slice(12, 4),
                           hexes.str.slice(16, 4), hexes.str.slice(20, 12)], separator="-")
    return pl.when(ok).then(canon), hexes


def coerce(f: FieldSpec, src: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """The canonical column of ``f`` (null where the value cannot be coerced)."""
    lt = f.ltype
    if dtype == pl.Null:
        return src.cast(canonical_dtype(f, dtype))
    if lt is LogicalType.STR or lt is LogicalType.ENUM:
        return _text(src, dtype)
    if lt is LogicalType.INT:
        if dtype.is_integer():
            return src.cast(pl.Int64, strict=False)
        return _text(src, dtype).str.strip_chars().str.to_integer(strict=False).cast(
            pl.Int64, strict=False)
    if lt is LogicalType.FLOAT:
        if dtype.is_numeric():
            return src.cast(pl.Float64)
        return _text(src, dtype).str.strip_chars().cast(pl.Float64, strict=False)
    if lt is LogicalType.BOOL:
        if dtype == pl.Boolean:
            return src
        return (_text(src, dtype).str.strip_chars().str.to_lowercase()
                .replace_strict(_BOOL_TEXT, default=None, return_dtype=pl.Boolean))
    if lt is LogicalType.DATETIME:
        return _to_datetime(src, dtype)
    if lt is LogicalType.DATE:
        if dtype == pl.Date:
            return src
        return _text(src, dtype).str.strip_chars().str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    if lt is LogicalType.UUID:
        return _uuid_text(src, dtype)[0]
    if lt is LogicalType.DECIMAL:
        if dtype.is_numeric():
            return src
        text = _text(src, dtype).str.strip_chars()
        return pl.when(text.str.contains(_DECIMAL_TEXT)).then(text)
    if lt is LogicalType.JSON:
        return src
    raise AssertionError(lt)


#: every spelling the boolean coercion reads, as given (the rest: stripped and lower-cased)
_BOOL_SPELLINGS = {**_BOOL_TEXT, **{k.title(): v for k, v in _BOOL_TEXT.items()},
                   **{k.upper(): v for k, v in _BOOL_TEXT.items()}}


def _plain_text_coercion(f: FieldSpec, t: pl.Expr) -> pl.Expr | None:
    """``coerce`` from text as given -- no whitespace stripped, no case folded -- for the
    types where a value it reads is the value ``coerce`` gives; None for the others."""
    lt = f.ltype
    if lt is LogicalType.INT:
        return t.str.to_integer(strict=False).cast(pl.Int64, strict=False)
    if lt is LogicalType.FLOAT:
        return t.cast(pl.Float64, strict=False)
    if lt is LogicalType.BOOL:
        return t.replace_strict(_BOOL_SPELLINGS, default=None, return_dtype=pl.Boolean)
    if lt is LogicalType.DATE:
        return t.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    if lt is LogicalType.DECIMAL:
        return pl.when(t.str.contains(_DECIMAL_TEXT)).then(t)
    return None


def coerce_text(f: FieldSpec, text: pl.Series) -> pl.Series:
    """``coerce`` of a text column: the text as given first (see ``_plain_text_coercion``),
    then ``coerce`` itself (stripped, case folded) only on the rows that left unread -- in a
    clean column none, so the whitespace and case passes over every value are skipped."""
    t = pl.col("t")
    frame = text.to_frame("t")
    full = coerce(f, t, pl.String())
    plain = _plain_text_coercion(f, t)
    if plain is None:
        return frame.select(full).to_series()
    out = frame.select(plain).to_series()
    left = out.is_null() & text.is_not_null()
    if left.any():
        at = left.arg_true()
        out = out.scatter(at, frame[at].select(full).to_series())
    return out


def canonical_dtype(f: FieldSpec, given: pl.DataType) -> pl.DataType:
    """The dtype of ``f``'s column after coercion (the dtype frames are read into)."""
    lt = f.ltype
    if lt is LogicalType.INT:
        return pl.Int64()
    if lt is LogicalType.FLOAT:
        return pl.Float64()
    if lt is LogicalType.BOOL:
        return pl.Boolean()
    if lt is LogicalType.DATETIME:
        return pl.Datetime("us", "UTC")
    if lt is LogicalType.DATE:
        return pl.Date()
    if lt is LogicalType.DECIMAL and given.is_numeric():
        return given
    return pl.String()


def _rules(f: FieldSpec, dtype: pl.DataType, *, nul_in_text: bool, full: bool) -> list[Rule]:
    """The checks of one field; without ``full``, only the coercion (a value that cannot
    take the column's type cannot be written at all)."""
    name, lt = f.name, f.ltype
    src, out = pl.col(_IN + name), pl.col(name)
    rules: list[Rule] = []
    if lt not in (LogicalType.STR, LogicalType.JSON, LogicalType.ENUM) and dtype != pl.Null:
        rules.append(Rule(name, VALIDATION, src.is_not_null() & out.is_null(),
                          pl.concat_str([pl.lit("expected "), pl.lit(_TYPE_NAMES[lt]),
                                         pl.lit(", got "), _shown(src)])))
    if not full:
        return rules
    if not f.nullable:
        what = getattr(f.python_type, "__name__", str(f.python_type))
        rules.append(Rule(name, VALIDATION, src.is_null(),
                          pl.lit(f"None is not allowed: the field is required (give a {what}).")))
    if lt is LogicalType.STR:
        if f.max_length is not None:
            rules.append(Rule(name, VALIDATION, out.str.len_chars() > f.max_length,
                              pl.concat_str([pl.lit("is "), out.str.len_chars().cast(pl.String),
                                             pl.lit(f" characters long; max_length is {f.max_length}")])))
        if not nul_in_text:
            rules.append(Rule(name, UNSUPPORTED, out.str.contains("\x00", literal=True),
                              pl.lit("this backend cannot store the NUL character (\\x00) in text")))
    if lt is LogicalType.FLOAT or (lt is LogicalType.DECIMAL and dtype.is_float()):
        rules.append(Rule(name, VALIDATION, out.is_nan() | out.is_infinite(),
                          pl.concat_str([_shown(src), pl.lit(" is not a finite number")])))
    if lt in (LogicalType.DATETIME, LogicalType.DATE):
        year = out.dt.year()
        rules.append(Rule(name, VALIDATION, (year < 1) | (year > 9999),
                          pl.concat_str([_shown(src), pl.lit(" is outside the years 1-9999"
                                                             + (" once converted to UTC"
                                                                if lt is LogicalType.DATETIME
                                                                else ""))])))
    if lt is LogicalType.ENUM:
        cls = f.enum_cls
        assert cls is not None
        allowed = [str(m.value) for m in cls]
        rules.append(Rule(name, VALIDATION, out.is_not_null() & ~out.is_in(allowed),
                          pl.concat_str([_shown(src), pl.lit(" is not one of "),
                                         pl.lit(", ".join(repr(m.value) for m in cls))])))
    if lt is LogicalType.JSON and dtype != pl.Null:
        kind = f.json_kind
        if isinstance(dtype, pl.Struct | pl.List):
            expected = pl.Struct if kind is dict else pl.List if kind is list else None
            if expected is not None and not isinstance(dtype, expected):
                rules.append(Rule(name, VALIDATION, src.is_not_null(),
                                  pl.lit(f"expected a JSON {kind.__name__ if kind else 'value'}, "
                                         f"got a {dtype} column")))
        else:  # the reasons were found column-wise before (see json_failures)
            reason = pl.col(_JSON + name)
            rules.append(Rule(name, VALIDATION, reason.is_not_null(), reason))
    return rules


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number (JSON has no NaN or Infinity)")


def json_checker(f: FieldSpec) -> Callable[[str], str | None]:
    """``check(text)``: None when ``text`` is JSON the field accepts, else the reason."""
    kind, model_cls = f.json_kind, f.pydantic_cls

    def check(text: str) -> str | None:
        try:
            value = json.loads(text, parse_constant=_no_constant)
        except RecursionError:
            return f"is nested more than {JSON_MAX_DEPTH} levels deep"
        except ValueError as exc:
            return f"is not JSON text ({exc})"
        if json_depth_exceeds(value):
            return f"is nested more than {JSON_MAX_DEPTH} levels deep"
        if model_cls is not None:
            try:
                model_cls.model_validate(value)
            except Exception as exc:  # pydantic's ValidationError
                return f"does not match {model_cls.__name__}: {exc}"
        elif kind is not None and not isinstance(value, kind):
            return f"expected {kind.__name__}, got {type(value).__name__}"
        return None

    return check


# JSON text (RFC 8259) nested at most _JSON_REGEX_DEPTH levels, as one regular expression:
# with the nesting bounded the language is regular, and Rust's regex engine runs it in one
# pass per row. Only ASCII digits, JSON's four whitespace characters, and strings without
# raw control characters: every text it matches is one Python's ``json`` reads, no deeper
# than JSON_MAX_DEPTH and with no NaN or Infinity; so it can only send rows on to the other
# checks, never accept one they would refuse.
_JSON_WS = r"[ \t\n\r]*"
_JSON_STR = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_JSON_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_JSON_SCALAR = f"(?:{_JSON_STR}|{_JSON_NUM}|true|false|null)"
_JSON_REGEX_DEPTH = 5
#: longer texts skip the regex: Python refuses integers of more than 4300 digits
_JSON_REGEX_MAX_BYTES = 4000


def _json_containers(inner: str) -> tuple[str, str]:
    ws, key = _JSON_WS, _JSON_STR
    array = rf"\[{ws}(?:{inner}{ws}(?:,{ws}{inner}{ws})*)?\]"
    obj = rf"\{{{ws}(?:{key}{ws}:{ws}{inner}{ws}(?:,{ws}{key}{ws}:{ws}{inner}{ws})*)?\}}"
    return array, obj


def json_pattern(kind: type | None) -> str:
    """The regular expression of JSON text of ``kind`` (dict, list, or None: any value)
    nested at most ``_JSON_REGEX_DEPTH`` levels (a scalar is one level)."""
    value = _JSON_SCALAR
    for _ in range(_JSON_REGEX_DEPTH - 2):
        array, obj = _json_containers(value)
        value = f"(?:{_JSON_SCALAR}|{array}|{obj})"
    array, obj = _json_containers(value)
    top = obj if kind is dict else array if kind is list else f"(?:{_JSON_SCALAR}|{array}|{obj})"
    return f"^{_JSON_WS}{top}{_JSON_WS}$"


def json_failures(f: FieldSpec, text: pl.Series) -> pl.Series:
    """Per row of a JSON text column: why the field refuses it (``json_checker``'s reason),
    or null. Rows matching ``json_pattern`` pass at once (one regex pass over the column);
    Polars' JSON reader reads the others (``json_path_match("$")``: null for text it
    refuses); only rows it refuses or reads as ``null``, rows of the wrong kind (first
    character), rows with brackets enough to be nested too deep, and every row of a
    pydantic-typed field, go through the exact check in Python (``json``, as express). The
    regex and the reader are stricter than ``json``, never looser, so they can only send
    more rows there."""
    n = text.len()
    out = pl.repeat(None, n, dtype=pl.String, eager=True).alias(text.name)
    todo = text.is_not_null()
    kind = f.json_kind
    if f.pydantic_cls is None and kind in (None, dict, list) and todo.any():
        t = pl.col("t")
        quick = text.to_frame("t").select(
            t.str.contains(json_pattern(kind)) & (t.str.len_bytes() < _JSON_REGEX_MAX_BYTES)
        ).to_series()
        todo = todo & ~quick.fill_null(False)
    if f.pydantic_cls is None and todo.any():
        at = todo.arg_true()
        frame = text.gather(at).to_frame("t")
        t = pl.col("t")
        head = t.str.strip_chars_start().str.slice(0, 1)
        kind_ok = (pl.lit(True) if kind is None
                   else head == ("{" if kind is dict else "[") if kind in (dict, list)
                   else pl.lit(False))
        left = frame.select(
            t.str.json_path_match("$").is_null() | ~kind_ok
            | (t.str.count_matches(r"[\[{]") >= JSON_MAX_DEPTH)).to_series()
        todo = pl.repeat(False, n, eager=True).scatter(at.filter(left), True)
    if todo.any():
        check = json_checker(f)
        at = todo.arg_true()
        reasons = pl.Series([check(v) for v in text.gather(at).to_list()], dtype=pl.String)
        out = out.scatter(at, reasons)
    return out


_UUID_CANONICAL = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def uuid_text(text: pl.Series) -> pl.Series:
    """UUID text -> canonical text (null where it is no UUID). Values already canonical
    (lower-case, hyphenated) are kept as they are, so a canonical column costs one regex;
    only the other rows go through every accepted spelling (see ``_uuid_text``)."""
    canonical = text.str.contains(_UUID_CANONICAL)
    left = ~canonical & text.is_not_null()
    if not left.any():
        return text
    at = left.arg_true()
    rest = text.gather(at)
    fixed = rest.to_frame("t").select(_uuid_text(pl.col("t"), pl.String())[0]).to_series()
    return text.scatter(at, fixed)


def _unique_rules(model: ModelSpec, columns: set[str]) -> list[Rule]:
    rules = []
    for key in model.unique_keys():
        if not set(key) <= columns:
            continue
        present = pl.all_horizontal([pl.col(c).is_not_null() for c in key])
        dup = (pl.col(key[0]) if len(key) == 1 else pl.struct(list(key))).is_duplicated()
        shown = ", ".join(key)
        rules.append(Rule(key[0], VALIDATION, present & dup,
                          pl.lit(f"key ({shown}) repeats inside the frame; send each key once")))
    return rules


@dataclass
class Checked:
    """The canonical frame (with a ``ROW`` index) and the failures found so far."""

    model: ModelSpec
    frame: pl.DataFrame
    errors: pl.DataFrame


def check_rows(model: ModelSpec, frame: pl.DataFrame, *, nul_in_text: bool,
               rules: bool = True) -> Checked:
    """Coerce every column and evaluate every rule (see the module docstring); with
    ``rules=False`` (``validate=False``) only the coercions are checked."""
    schema = frame.schema
    fields = [model.fields[c] for c in frame.columns]
    # timestamps given as text are parsed column by column first (see parse_datetime_text)
    # and so are UUIDs and JSON given as text (see uuid_text, json_failures)
    parsed = {f.name: parse_datetime_text(frame.get_column(f.name).cast(pl.String))
              for f in fields
              if f.ltype is LogicalType.DATETIME and isinstance(schema[f.name], _TEXT_DTYPES)}
    parsed.update({f.name: uuid_text(frame.get_column(f.name).cast(pl.String))
                   for f in fields
                   if f.ltype is LogicalType.UUID and isinstance(schema[f.name], _TEXT_DTYPES)})
    # numbers, booleans, dates and decimals given as text: read as given first (coerce_text)
    parsed.update({f.name: coerce_text(f, frame.get_column(f.name).cast(pl.String))
                   for f in fields
                   if f.ltype in _PLAIN_TEXT_TYPES and isinstance(schema[f.name], _TEXT_DTYPES)})
    json_reasons = [json_failures(f, frame.get_column(f.name).cast(pl.String)).alias(_JSON + f.name)
                    for f in fields
                    if rules and f.ltype is LogicalType.JSON and schema[f.name] != pl.Null
                    and not isinstance(schema[f.name], pl.Struct | pl.List)]
    lazy = frame.lazy().with_row_index(ROW).with_columns(
        [pl.col(f.name).alias(_IN + f.name) for f in fields])
    if json_reasons:
        lazy = lazy.with_columns(json_reasons)
    lazy = lazy.with_columns([
        (pl.lit(parsed[f.name]) if f.name in parsed
         else coerce(f, pl.col(_IN + f.name), schema[f.name])).alias(f.name)
        for f in fields])
    checks = [r for f in fields
              for r in _rules(f, schema[f.name], nul_in_text=nul_in_text, full=rules)]
    if rules:
        checks += _unique_rules(model, set(frame.columns))
    masks = [r.bad.fill_null(False).alias(f"__df_bad_{i}") for i, r in enumerate(checks)]
    lazy = lazy.with_columns(masks)
    full = lazy.collect()
    parts = []
    if checks:
        any_bad = full.select(pl.any_horizontal([pl.col(f"__df_bad_{i}")
                                                 for i in range(len(checks))]))
        if any_bad.to_series().any():
            failing = full.filter(any_bad.to_series())
            for i, r in enumerate(checks):
                hit = failing.filter(pl.col(f"__df_bad_{i}"))
                if hit.height:
                    parts.append(hit.select(pl.col(ROW), pl.lit(r.field).alias("field"),
                                            pl.lit(r.code).alias("code"),
                                            r.message.cast(pl.String).alias("message")))
    canonical = full.select([ROW, *[f.name for f in fields]])
    errors = pl.concat(parts) if parts else empty_errors()
    return Checked(model, canonical, errors)


def error_lists(errors: pl.DataFrame) -> pl.DataFrame:
    """Long-form failures -> one row per failing row: ``ROW`` and a list of
    ``{field, code, message}``."""
    return (errors.group_by(ROW, maintain_order=True)
            .agg(pl.struct("field", "code", "message").alias("errors")))
