"""The filter language parses into the AST and is validated against the model."""

from __future__ import annotations

import datetime as dt

import pytest

from dataflow.errors import FilterError, UnknownOperatorError, ValidationError
from dataflow.model import build_model_spec
from dataflow.query import (
    And,
    Comparison,
    Const,
    InList,
    IsNull,
    Like,
    Not,
    Or,
    OrderBy,
    Regex,
    parse_filter,
    parse_order_by,
)


class Item:
    name: str
    qty: int
    price: float
    note: str | None = None
    seen: dt.datetime | None = None
    tags: list = []


ITEM = build_model_spec(Item)


def test_implicit_equality_and_operators() -> None:
    expr = parse_filter(ITEM, {"name": "a", "qty": {"$gte": 1, "$lt": 5}})
    assert expr == And((Comparison("name", "eq", "a"),
                        And((Comparison("qty", "ge", 1), Comparison("qty", "lt", 5)))))


def test_none_means_is_null() -> None:
    assert parse_filter(ITEM, {"note": None}) == IsNull("note")
    assert parse_filter(ITEM, {"note": {"$ne": None}}) == IsNull("note", negate=True)
    assert parse_filter(ITEM, {"note": {"$exists": False}}) == IsNull("note")


def test_empty_in_and_nin() -> None:
    assert parse_filter(ITEM, {"qty": {"$in": []}}) == Const(False)
    assert parse_filter(ITEM, {"qty": {"$nin": []}}) == Const(True)
    assert parse_filter(ITEM, {"qty": {"$in": [1, 2]}}) == InList("qty", (1, 2))


def test_logical_operators_nest() -> None:
    expr = parse_filter(ITEM, {"$or": [{"name": {"$like": "a%"}},
                                       {"$and": [{"qty": 1}, {"name": {"$regex": "^b", "$options": "i"}}]}],
                               "$not": {"qty": 3}})
    assert expr == And((Or((Like("name", "a%"), And((Comparison("qty", "eq", 1),
                                                      Regex("name", "^b", True))))),
                        Not(Comparison("qty", "eq", 3))))


def test_values_are_checked_against_the_field_type() -> None:
    with pytest.raises(ValidationError) as err:
        parse_filter(ITEM, {"qty": "abc"})
    assert err.value.code == "DF-301" and err.value.field == "qty"
    assert parse_filter(ITEM, {"price": 2}) == Comparison("price", "eq", 2.0)


def test_unknown_field_says_did_you_mean() -> None:
    with pytest.raises(FilterError) as err:
        parse_filter(ITEM, {"nmae": "x"})
    assert err.value.code == "DF-401"
    assert "Did you mean 'name'?" in str(err.value)


def test_unknown_operator_says_did_you_mean() -> None:
    with pytest.raises(UnknownOperatorError) as err:
        parse_filter(ITEM, {"qty": {"$gtee": 1}})
    assert err.value.code == "DF-402" and "'$gte'" in str(err.value)
    with pytest.raises(UnknownOperatorError):
        parse_filter(ITEM, {"$xor": []})


@pytest.mark.parametrize("bad", [
    {"name": {"$like": 3}},
    {"qty": {"$like": "1%"}},
    {"qty": {"$in": 3}},
    {"qty": {"$gt": None}},
    {"$or": []},
    {"tags": {"$eq": [1]}},
    {"name": {"$regex": "("}},
    {"name": {"$options": "i"}},
    {"name": {"x": 1}},
    {1: 2},
    "name = 'x'",
])
def test_malformed_filters_are_refused(bad: object) -> None:
    with pytest.raises((FilterError, ValidationError)) as err:
        parse_filter(ITEM, bad)
    assert err.value.code.startswith("DF-")


def test_hostile_identifiers_never_pass() -> None:
    for name in ['name"; DROP TABLE item; --', "name OR 1=1", "`x`", "na\x00me"]:
        with pytest.raises(FilterError):
            parse_filter(ITEM, {name: 1})
        with pytest.raises(FilterError):
            parse_order_by(ITEM, [name])


def test_order_by_terms() -> None:
    assert parse_order_by(ITEM, "-qty") == (OrderBy("qty", True),)
    assert parse_order_by(ITEM, ["-qty", "name"]) == (OrderBy("qty", True), OrderBy("name"))
    with pytest.raises(FilterError) as err:
        parse_order_by(ITEM, ["-qtty"])
    assert "Did you mean 'qty'?" in str(err.value)


def test_contains_parses_for_json_fields_only() -> None:
    from dataflow.query import JsonContains

    assert parse_filter(ITEM, {"tags": {"$contains": ["a"]}}) == JsonContains("tags", ["a"])
    with pytest.raises(FilterError):
        parse_filter(ITEM, {"name": {"$contains": "a"}})
    with pytest.raises(FilterError):
        parse_filter(ITEM, {"tags": {"$contains": {1, 2}}})  # not JSON
