"""``datetime_resolution``: the validator truncates finer datetimes to the backend's step on
every path (general, compiled create, fused bulk tuples, filters), and strict mode refuses them."""

from __future__ import annotations

import datetime as _dt

import pytest

from dataflow.errors import ValidationError
from dataflow.model import ModelSpec
from dataflow.query.ast import Comparison
from dataflow.query.filters import parse_filter
from dataflow.values import RowValidator, truncate_datetime, utcnow

UTC = _dt.UTC
FINE = _dt.datetime(2024, 5, 6, 7, 8, 9, 123999, tzinfo=UTC)
KEPT = FINE.replace(microsecond=123000)


class Event:
    id: int
    at: _dt.datetime
    note: str = ""


def _spec() -> ModelSpec:
    from dataflow import DataFlow

    db = DataFlow("sqlite:///:memory:")
    db.model(Event)
    return db.get_model("Event")


def test_every_validation_path_truncates_to_the_step() -> None:
    spec = _spec()
    v = RowValidator(spec, datetime_resolution=1000)
    now = utcnow(1000)
    assert now.microsecond % 1000 == 0 and now.tzinfo is UTC
    assert v.for_create({"id": 1, "at": FINE}, now)["at"] == KEPT  # compiled fast path
    assert v.for_create({"id": 1, "at": FINE.isoformat()}, now)["at"] == KEPT  # text, general path
    plus2 = _dt.timezone(_dt.timedelta(hours=2))
    assert v.for_create({"id": 1, "at": FINE.astimezone(plus2)}, now)["at"] == KEPT
    assert v.for_update({"at": FINE}, now)["at"] == KEPT
    columns = v.insert_columns(with_id=True)
    row = v.tuple_creator(tuple(None for _ in columns), columns)({"id": 1, "at": FINE}, now)
    assert row is not None and row[columns.index("at")] == KEPT  # fused bulk path
    where = parse_filter(spec, {"at": FINE}, v)
    assert isinstance(where, Comparison) and where.value == KEPT
    # a value already on the step is taken as it is
    assert v.for_create({"id": 1, "at": KEPT}, now)["at"] is KEPT


def test_microsecond_backends_keep_every_microsecond() -> None:
    v = RowValidator(_spec())
    assert v.for_create({"id": 1, "at": FINE}, utcnow())["at"] == FINE
    assert truncate_datetime(FINE, 1) == FINE and truncate_datetime(FINE, 1_000_000) == FINE.replace(
        microsecond=0)


def test_strict_mode_refuses_what_it_would_truncate() -> None:
    spec = _spec()
    v = RowValidator(spec, strict=True, datetime_resolution=1000)
    with pytest.raises(ValidationError) as info:
        v.for_create({"id": 1, "at": FINE}, utcnow(1000))
    assert info.value.code == "DF-301" and info.value.field == "at"
    assert "milliseconds" in info.value.message and info.value.fix and "// 1000" in info.value.fix
    with pytest.raises(ValidationError):
        v.for_update({"at": FINE}, utcnow(1000))
    assert v.for_create({"id": 1, "at": KEPT}, utcnow(1000))["at"] == KEPT
