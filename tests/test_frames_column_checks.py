"""The column-wise shortcuts of ``db.frames``' row rules give exactly the per-value answers:
JSON text read by Polars first (``json_failures``) against express's ``json_checker``, and
canonical UUID text kept as it is (``uuid_text``) against the full normalisation."""

from __future__ import annotations

import datetime as _dt
import json
from decimal import Decimal
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow import DataFlow
from dataflow.frames.rules import (
    _datetime_formats,
    _uuid_text,
    coerce,
    coerce_text,
    json_checker,
    json_failures,
    json_pattern,
    parse_datetime_text,
    uuid_text,
)

JSON_TEXTS = ['{"k": 1, "x": [1,}', '{"k": 1} x', '{"k": NaN}', '{"k": Infinity}', '{"k": 1e400}',
              "null", "[1,2]", '{"k": "s"}', '{"k": 1, "s": "\\ud800"}', '{"k": 1, "s": "a\tb"}',
              '{"k": 123456789012345678901234567890}', "{'k': 1}", "", '  {"k": 1}  ',
              '{"k": 1}{"k": 2}', "5", '{"a":1,}', "[1,]", '"x"', "tru", "true", None,
              "[" * 40 + "]" * 40, "[" * 31 + "]" * 31, "[" * 32 + "]" * 32,
              "[" * 33 + "]" * 33, '{"a":' * 33 + "1" + "}" * 33, " [1]", '\n{"a": -0}',
              '{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
              # what the one-pass regex of json_failures meets: it may only pass rows Python's
              # json reads as the field's kind
              '{"a": {"b": [1, {"c": [true, false, null]}]}}', '[[[[1]]]]', '[[[[[1]]]]]',
              '{"a": [[[{"b": 1}]]]}', '{"a":1e400}', '[-0, 0.5e-3, 1E+2, -1.0]', "[01]", "[1.]",
              "[.5]", "[+1]", "[-]", "[1e]", '[1, 2, ]', '{"a" : 1 , "b" :2 }', "\t[1]\r\n",
              "\x0b[1]", "\ufeff[1]", "[1]\x00", '["\u00e9\U0001f600"]', '["\\ud800"]',
              '["\\u00zz"]', '["\\x41"]', '["\\/\\b\\f\\n\\r\\t\\"\\\\"]', '["a\x7fb"]',
              '["a\u2028b"]', "[\u0661]", "[True]", "[nul]", '{"a"}', '{1: 2}', '{"a": 1,}',
              '[1 2]', '["x" "y"]', "[" + "1" * 5000 + "]", '{"k": ' + "9" * 4301 + "}",
              '[' + '"x",' * 2000 + '"y"]', '{"a": [], "b": {}, "c": [{}], "d": [[]]}', "[]",
              "{}", " [ ] ", "[ {} ]"]


def test_json_text_failures_match_the_exact_check() -> None:
    db = DataFlow("sqlite://:memory:", name="frames_json_column_checks")

    @db.model
    class FrameJsonKinds:
        obj: dict[str, Any] | None = None
        items: list[Any] | None = None

    spec = db.get_model("FrameJsonKinds")
    texts = pl.Series(JSON_TEXTS * 3)
    for name in ("obj", "items"):
        f = spec.fields[name]
        check = json_checker(f)
        want = [None if v is None else check(v) for v in texts.to_list()]
        assert json_failures(f, texts).to_list() == want
        assert sum(w is None for w in want) >= 3  # some rows of each kind pass
        assert texts.str.contains(json_pattern(f.json_kind)).sum() >= 9  # some at once


_GENERATED: list[Any] = []


def _generated_model() -> Any:
    if not _GENERATED:
        db = DataFlow("sqlite://:memory:", name="frames_json_generated")

        @db.model
        class FrameJsonGenerated:
            obj: dict[str, Any] | None = None
            items: list[Any] | None = None

        _GENERATED.append(db.get_model("FrameJsonGenerated"))
    return _GENERATED[0]


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(_JSON_VALUES, min_size=1, max_size=20),
       spacing=st.sampled_from([(", ", ": "), (",", ":"), (" ,\n", " :\t")]),
       cut=st.integers(min_value=0, max_value=40))
def test_json_text_failures_match_on_generated_json(values: list[Any], spacing: tuple[str, str],
                                                    cut: int) -> None:
    """Generated JSON (any kind, nested, escapes, big and float numbers), as written and with
    its tail cut off: every row gets exactly the per-value answer."""
    spec = _generated_model()
    texts = [json.dumps(v, separators=spacing, ensure_ascii=i % 2 == 0)
             for i, v in enumerate(values)]
    texts += [t[:-1 - cut % len(t)] if len(t) > 1 else t + "," for t in texts]
    series = pl.Series(texts, dtype=pl.String)
    for name in ("obj", "items"):
        f = spec.fields[name]
        check = json_checker(f)
        assert json_failures(f, series).to_list() == [check(v) for v in texts]


def test_uuid_text_matches_the_full_normalisation() -> None:
    canonical = "0b3c4a9e-1d2f-4c3b-8a7e-123456789abc"
    texts = pl.Series([canonical, canonical.upper(), "{" + canonical + "}", "urn:uuid:" + canonical,
                       canonical.replace("-", ""), "nope", None, f" {canonical} ", canonical[:-1]])
    full = texts.to_frame("t").select(_uuid_text(pl.col("t"), pl.String())[0]).to_series()
    assert uuid_text(texts).to_list() == full.to_list()
    assert uuid_text(texts).to_list()[:5] == [canonical] * 5
    only_canonical = pl.Series([canonical, None])
    assert uuid_text(only_canonical).to_list() == [canonical, None]


_STAMPS = st.datetimes(min_value=_dt.datetime(1, 1, 2), max_value=_dt.datetime(9999, 12, 30))


@settings(max_examples=80, deadline=None)
@given(stamps=st.lists(_STAMPS, min_size=1, max_size=24),
       sep=st.sampled_from(["T", " "]),
       spec=st.sampled_from(["seconds", "milliseconds", "microseconds"]),
       suffix=st.sampled_from(["+00:00", "Z", "", "+02:00", "-05:30", "+23:59", "-00:00",
                               "+24:00", "+0200"]),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 40),
                                st.sampled_from(list("0123456789+-:TZ. x"))), max_size=8))
def test_datetime_text_reads_as_the_general_formats(stamps: list[_dt.datetime], sep: str,
                                                    spec: str, suffix: str,
                                                    edits: list[tuple[int, int, str]]) -> None:
    """ISO 8601 text in one layout, some rows edited (a character replaced, whitespace
    around): the fixed-layout shortcut of parse_datetime_text reads every row exactly as the
    general formats do (the same timestamp, or null for both)."""
    texts = [s.isoformat(sep=sep, timespec=spec) + suffix for s in stamps]
    for row, at, char in edits:
        text = texts[row % len(texts)]
        if char == " " and at % 3 == 0:
            texts[row % len(texts)] = f" {text} "
            continue
        at %= len(text)
        texts[row % len(texts)] = text[:at] + char + text[at + 1:]
    texts.append(None)  # type: ignore[arg-type]
    series = pl.Series(texts, dtype=pl.String)
    readers = _datetime_formats()
    t = pl.col("t")
    want = series.str.strip_chars().to_frame("t").select(pl.coalesce([r(t) for r in readers]))
    got = parse_datetime_text(series)
    assert got.dtype == pl.Datetime("us", "UTC")
    # compared as microseconds: year 0 (read from "0000-...") has no Python datetime
    assert got.cast(pl.Int64).to_list() == want.to_series().cast(pl.Int64).to_list()


def test_sqlite_timestamp_text_decodes_as_the_dialect_does() -> None:
    """SQLite stores timestamps as ISO text (with or without microseconds): read column-wise
    (a fixed layout first, the general reader for the rest), every value is the dialect's
    own decoding."""
    from dataflow.frames.codec import decode_column
    from dataflow.frames.io import frame_values

    db = DataFlow("sqlite://:memory:", name="frames_sqlite_decode")

    @db.model
    class FrameDecodeStamp:
        at: _dt.datetime | None = None

    f = db.get_model("FrameDecodeStamp").fields["at"]
    decoder = db.adapter.compiler.decoder(f)  # type: ignore[attr-defined]
    assert decoder is not None
    base = _dt.datetime(2024, 1, 1, tzinfo=_dt.UTC)
    stamps = [base + _dt.timedelta(seconds=i * 7919, microseconds=(i % 3) * 250_001)
              for i in range(40)]
    texts: list[str | None] = [s.isoformat(sep=" ") for s in stamps]
    texts[5] = None
    texts[9] = "2024-03-04T05:06:07+02:00"
    raw = pl.Series("at", texts, dtype=pl.String)
    got = decode_column(f, raw, decoder, frame_values)
    assert got.dtype == pl.Datetime("us", "UTC")
    assert got.to_list() == [None if t is None else decoder(t) for t in texts]


_COERCED_TEXTS = ["7", " 7", "7 ", "\t-7\n", "+7", "-0", "007", "1e3", "1.5", ".5", "5.", "0x10",
                  "1_000", "\u0663", "9" * 20, "-9223372036854775808", "9223372036854775808",
                  "nan", "NaN", "inf", "-Infinity", "1,5", "", " ", "true", "True", "TRUE",
                  " true", "tRuE", "false", "FALSE", "False ", "1", "0", " 0", "yes", "t",
                  "2024-02-29", " 2024-02-29", "2024-02-30", "2024-1-1", "2024-01-01T00:00",
                  "+2024-01-01", "20240101", "1e-3", "-.5e+2", "1.", "1..2", "--1", None]


@settings(max_examples=60, deadline=None)
@given(extra=st.lists(st.text(alphabet=" \t+-.eE0123456789truefalsTRUEFALS_x:", max_size=12),
                      max_size=30))
def test_text_read_as_given_first_matches_the_full_coercion(extra: list[str]) -> None:
    """int, float, bool, date and Decimal from text: reading the text as given first
    (coerce_text) gives, row for row, what the full coercion (stripped, case folded) gives."""
    spec = _coercion_model()
    series = pl.Series(_COERCED_TEXTS + extra, dtype=pl.String)
    for f in spec.fields.values():
        if f.managed or f.primary_key:
            continue
        want = series.to_frame("t").select(coerce(f, pl.col("t"), pl.String())).to_series()
        got = coerce_text(f, series)
        assert got.dtype == want.dtype
        assert got.cast(pl.String).to_list() == want.cast(pl.String).to_list(), f.name


def _coercion_model() -> Any:
    if not _COERCION:
        db = DataFlow("sqlite://:memory:", name="frames_text_coercion")

        @db.model
        class FrameTextCoercion:
            n: int | None = None
            x: float | None = None
            b: bool | None = None
            d: _dt.date | None = None
            m: Decimal | None = None

        _COERCION.append(db.get_model("FrameTextCoercion"))
    return _COERCION[0]


_COERCION: list[Any] = []


_DECIMAL_TEXTS = ["1.5", " 1.5 ", "-0.25", "+3", ".5", "5.", "1e3", "-.5e+2", "007", "1_000",
                  "\u0661\u0662\u0663.\u0664", "\u0663", "\uff11\uff12", "1.5\u0663", "nan", "NaN", "inf",
                  "-Infinity", "sNaN", "1,5", "", " ", "0x10", "1..2", "--1", "1e", "e3"]


def test_decimal_text_is_read_alike_by_express_and_frames() -> None:
    """A Decimal field given text: express's checker and the frames coercion accept the same
    texts (ASCII digits only -- ``Decimal()`` alone would read other scripts' digits and
    ``1_000``, which no other numeric entry accepts) and read them to the same value."""
    from dataflow.values import checker_for

    f = _coercion_model().fields["m"]
    check = checker_for(f)
    got = pl.Series(_DECIMAL_TEXTS, dtype=pl.String).to_frame("t").select(
        coerce(f, pl.col("t"), pl.String())).to_series().to_list()
    for text, framed in zip(_DECIMAL_TEXTS, got, strict=True):
        try:
            value = check(text)
        except Exception:
            value = None
        assert (framed is None) == (value is None), text
        if value is not None:
            assert Decimal(str(framed).strip()) == value, text
    assert got[_DECIMAL_TEXTS.index("1_000")] is None
    assert got[_DECIMAL_TEXTS.index("\u0663")] is None
