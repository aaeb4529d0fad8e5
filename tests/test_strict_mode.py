"""Strict mode: declared keys, no implicit conversions (naive datetimes, floats for Decimals,
text for dates, Decimals and UUIDs); the default mode keeps converting, as documented."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from dataflow import DataFlow
from dataflow.errors import BulkValidationError, ModelDefinitionError, ValidationError

UTC = dt.UTC


def _ledger(db: DataFlow, **options: object) -> None:
    @db.model
    class Entry:
        id: int
        at: dt.datetime
        amount: Decimal
        ref: uuid.UUID
        day: dt.date
        __dataflow__ = dict(options)


GOOD = {"at": dt.datetime(2024, 1, 2, 3, 4, tzinfo=UTC), "amount": Decimal("1.10"),
        "ref": uuid.UUID(int=7), "day": dt.date(2024, 1, 2)}


@pytest.mark.parametrize("how", ["instance", "model"])
async def test_strict_refuses_implicit_conversions(how: str) -> None:
    db = DataFlow("sqlite://:memory:", strict=how == "instance")
    _ledger(db, **({"strict": True} if how == "model" else {}))
    try:
        stored = await db.express.create("Entry", GOOD)
        assert stored["amount"] == Decimal("1.10")
        for name, bad, fix in [
            ("at", dt.datetime(2024, 1, 2, 3, 4), "attach the time zone"),
            ("at", "2024-01-02T03:04:00+00:00", "aware datetime"),
            ("amount", 1.1, "Decimal('1.10'), not 1.1"),
            ("amount", "1.10", "a Decimal"),
            ("ref", str(uuid.UUID(int=8)), "uuid.UUID"),
            ("day", "2024-01-02", "a date"),
            ("day", dt.datetime(2024, 1, 2, tzinfo=UTC), "a date"),
        ]:
            with pytest.raises(ValidationError, match="strict mode") as info:
                await db.express.create("Entry", {**GOOD, name: bad})
            assert info.value.field == name and fix in str(info.value), str(info.value)
        with pytest.raises(BulkValidationError):  # the bulk path takes no shortcut around it
            await db.express.bulk_create("Entry", [GOOD, {**GOOD, "amount": 2.5}])
        with pytest.raises(ValidationError, match="naive"):
            await db.express.list("Entry", {"at": {"$gte": dt.datetime(2024, 1, 1)}})
        assert await db.express.count("Entry") == 1, "nothing else was written"
    finally:
        await db.close()


async def test_strict_needs_a_declared_key() -> None:
    db = DataFlow("sqlite://:memory:", strict=True)
    with pytest.raises(ModelDefinitionError, match="explicit primary key"):
        @db.model
        class NoKey:
            name: str
    relaxed = DataFlow("sqlite://:memory:")

    @relaxed.model
    class AlsoNoKey:
        name: str

    with pytest.raises(ModelDefinitionError, match="explicit primary key"):
        @relaxed.model
        class StrictNoKey:
            name: str
            __dataflow__ = {"strict": True}
    with pytest.raises(ModelDefinitionError, match="True or False"):
        @relaxed.model
        class Odd:
            id: int
            __dataflow__ = {"strict": "yes"}
    await db.close()
    await relaxed.close()


async def test_default_mode_converts_as_documented() -> None:
    db = DataFlow("sqlite://:memory:")
    _ledger(db)
    try:
        row = await db.express.create("Entry", {**GOOD, "at": dt.datetime(2024, 1, 2, 3, 4),
                                                "amount": 1.1, "ref": str(uuid.UUID(int=9))})
        assert row["at"] == dt.datetime(2024, 1, 2, 3, 4, tzinfo=UTC)  # naive taken as UTC
        assert row["amount"] == Decimal("1.1")  # the float's shortest repr
        assert row["ref"] == uuid.UUID(int=9)
    finally:
        await db.close()


async def test_strict_refuses_unknown_node_parameters_at_build_time() -> None:
    from dataflow.errors import WorkflowError
    from dataflow.workflow import WorkflowBuilder

    db = DataFlow("sqlite://:memory:", strict=True, name="strict_nodes")

    @db.model
    class Job:
        id: int
        title: str

    try:
        wf = WorkflowBuilder()
        wf.add_node("JobListNode", "list", {"filtr": {"title": "x"}, "db_instance": "strict_nodes"})
        with pytest.raises(WorkflowError, match="takes no parameter 'filtr'") as info:
            wf.build()
        assert "Did you mean 'filter'" in str(info.value) or "filter" in str(info.value)
        ok = WorkflowBuilder()
        ok.add_node("JobCreateNode", "make", {"title": "t", "db_instance": "strict_nodes"})
        ok.add_node("JobListNode", "list", {"filter": {"title": "t"}, "db_instance": "strict_nodes"})
        assert ok.build().order == ["make", "list"]
    finally:
        await db.close()
