"""``db.express_sync``: the same operations, blocking, with or without a running loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ...errors import UnknownFieldError
from ._helpers import MakeDB, raises_df

pytestmark = pytest.mark.asyncio


def _model(db: Any) -> None:
    @db.model
    class KitSyncRow:
        name: str
        qty: int = 0


def _exercise(db: Any) -> dict[str, Any]:
    """Every express_sync method once; returns what the assertions need."""
    s = db.express_sync
    rec = s.create("KitSyncRow", {"name": "a", "qty": 1})
    out: dict[str, Any] = {"created": rec}
    out["read"] = s.read("KitSyncRow", rec["id"])
    out["updated"] = s.update("KitSyncRow", rec["id"], {"qty": 2})
    out["upsert"] = s.upsert("KitSyncRow", {"id": rec["id"], "name": "a2"})
    out["bulk_create"] = s.bulk_create("KitSyncRow", [{"name": f"b{i}", "qty": i} for i in range(3)])
    out["bulk_update"] = s.bulk_update("KitSyncRow", {"name": {"$like": "b%"}}, {"qty": 9})
    out["bulk_upsert"] = s.bulk_upsert("KitSyncRow", [{"id": rec["id"], "name": "a3"},
                                                     {"id": 5000, "name": "z"}])
    out["find_one"] = s.find_one("KitSyncRow", {"name": "z"})
    out["list"] = s.list("KitSyncRow", {"qty": 9}, order_by="name")
    out["count"] = s.count("KitSyncRow")
    out["delete"] = s.delete("KitSyncRow", 5000)
    out["bulk_delete"] = s.bulk_delete("KitSyncRow", {"qty": 9})
    out["final"] = s.count("KitSyncRow")
    return out


def _check(out: dict[str, Any]) -> None:
    assert out["created"]["name"] == "a"
    assert out["read"] == out["created"]
    assert out["updated"]["qty"] == 2
    assert out["upsert"]["name"] == "a2" and out["upsert"]["qty"] == 2
    assert out["bulk_create"]["inserted"] == 3
    assert out["bulk_update"]["updated"] == 3
    assert (out["bulk_upsert"]["inserted"], out["bulk_upsert"]["updated"]) == (1, 1)
    assert out["find_one"]["id"] == 5000
    assert [r["name"] for r in out["list"]] == ["b0", "b1", "b2"]
    assert out["count"] == 5
    assert out["delete"] is True
    assert out["bulk_delete"]["deleted"] == 3
    assert out["final"] == 1


@pytest.mark.asyncio
class TestExpressSync:
    async def test_without_a_running_loop(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        out = await asyncio.to_thread(_exercise, db)  # a plain thread: no event loop there
        _check(out)
        assert await db.express.count("KitSyncRow") == 1

    async def test_with_a_running_loop(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        asyncio.get_running_loop()  # we are inside the test's loop
        out = _exercise(db)
        _check(out)
        assert await db.express.count("KitSyncRow") == 1

    async def test_sync_errors_are_the_same_df_errors(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        with raises_df(UnknownFieldError, "DF-302", "Did you mean 'name'"):
            db.express_sync.create("KitSyncRow", {"nam": "x"})
        assert db.express_sync.count("KitSyncRow") == 0
        assert db.express_sync.read("KitSyncRow", 1) is None
        assert db.express_sync.update("KitSyncRow", 1, {"qty": 1}) is None
        assert db.express_sync.delete("KitSyncRow", 1) is False
