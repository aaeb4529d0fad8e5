"""Every "Fix:" fits its cause, and a row with several problems names all of them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from dataflow import DataFlow
from dataflow.errors import FilterError, IntegrityError, UnknownFieldError, ValidationError
from dataflow.model import field


@pytest.fixture
async def db() -> AsyncIterator[DataFlow]:
    db = DataFlow("sqlite://:memory:")

    @db.model
    class Item:
        sku: str = field(unique=True, max_length=5)
        qty: int
        meta: dict[str, Any] = {}
        price: Decimal = Decimal("0")

    await db.express.create("Item", {"sku": "a", "qty": 1})
    yield db
    await db.close()


async def _error(coro: Any, kind: type[Exception]) -> str:
    with pytest.raises(kind) as info:
        await coro
    text = str(info.value)
    assert not re.search(r"\w\.\. ", text) and " Fix: " in text, text
    return text.split(" Fix: ", 1)[1]


async def test_each_fix_fits_its_cause(db: DataFlow) -> None:
    x = db.express
    fix = await _error(x.create("Item", {"sku": "toolong", "qty": 1}), ValidationError)
    assert fix.startswith("shorten 'sku' to at most 5 characters"), fix
    fix = await _error(x.create("Item", {"sku": "b", "qty": "x"}), ValidationError)
    assert fix == "pass an int for 'qty'."
    fix = await _error(x.create("Item", {"sku": "b", "qty": 1, "meta": {"a": object()}}),
                       ValidationError)
    assert fix.startswith("pass only JSON values for 'meta'"), fix
    fix = await _error(x.create("Item", {"sku": "b", "qty": 1, "price": "abc"}), ValidationError)
    assert fix == "pass a Decimal for 'price'."
    fix = await _error(x.list("Item", {"qty": {"$in": 5}}), FilterError)
    assert "wrap the value in a list" in fix
    fix = await _error(x.list("Item", {"sku": {"$regex": 5}}), FilterError)
    assert "pattern as text" in fix
    fix = await _error(x.list("Item", {"sku": {"$regex": "("}}), FilterError)
    assert "re module" in fix
    await _error(x.create("Item", {"sku": "a", "qty": 2}), IntegrityError)


async def test_a_row_with_several_problems_names_all_of_them(db: DataFlow) -> None:
    with pytest.raises(UnknownFieldError) as info:
        await db.express.create("Item", {"sku": 5, "qty": "x", "bogus": 1})
    text = str(info.value)
    assert "bogus" in text and "sku: invalid value" in text and "qty: invalid value" in text
    assert "2 more problem(s)" in text
    assert [e.field for e in info.value.details["problems"]] == ["bogus", "sku", "qty"]
    with pytest.raises(ValidationError) as upd:
        await db.express.update("Item", 1, {"sku": "waytoolong", "qty": "y"})
    assert {e.field for e in upd.value.details["problems"]} == {"sku", "qty"}
    assert await db.express.count("Item") == 1, "nothing written"
    # one problem: the error is exactly that problem's, as before
    with pytest.raises(ValidationError) as one:
        await db.express.create("Item", {"sku": "b", "qty": "x"})
    assert "problems" not in one.value.details and "more problem" not in str(one.value)
