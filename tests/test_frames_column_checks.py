"""The column-wise shortcuts of ``db.frames``' row rules give exactly the per-value answers:
JSON text read by Polars first (``json_failures``) against express's ``json_checker``, and
canonical UUID text kept as it is (``uuid_text``) against the full normalisation."""

from __future__ import annotations

from typing import Any

import polars as pl

from dataflow import DataFlow
from dataflow.frames.rules import _uuid_text, json_checker, json_failures, uuid_text

JSON_TEXTS = ['{"k": 1, "x": [1,}', '{"k": 1} x', '{"k": NaN}', '{"k": Infinity}', '{"k": 1e400}',
              "null", "[1,2]", '{"k": "s"}', '{"k": 1, "s": "\\ud800"}', '{"k": 1, "s": "a\tb"}',
              '{"k": 123456789012345678901234567890}', "{'k': 1}", "", '  {"k": 1}  ',
              '{"k": 1}{"k": 2}', "5", '{"a":1,}', "[1,]", '"x"', "tru", "true", None,
              "[" * 40 + "]" * 40, "[" * 31 + "]" * 31, "[" * 32 + "]" * 32,
              "[" * 33 + "]" * 33, '{"a":' * 33 + "1" + "}" * 33, " [1]", '\n{"a": -0}',
              '{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}']


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


def test_uuid_text_matches_the_full_normalisation() -> None:
    canonical = "0b3c4a9e-1d2f-4c3b-8a7e-123456789abc"
    texts = pl.Series([canonical, canonical.upper(), "{" + canonical + "}", "urn:uuid:" + canonical,
                       canonical.replace("-", ""), "nope", None, f" {canonical} ", canonical[:-1]])
    full = texts.to_frame("t").select(_uuid_text(pl.col("t"), pl.String())[0]).to_series()
    assert uuid_text(texts).to_list() == full.to_list()
    assert uuid_text(texts).to_list()[:5] == [canonical] * 5
    only_canonical = pl.Series([canonical, None])
    assert uuid_text(only_canonical).to_list() == [canonical, None]
