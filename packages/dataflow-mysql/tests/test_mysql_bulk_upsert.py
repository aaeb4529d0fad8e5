"""Bulk writes as multi-row statements cut to max_allowed_packet, in one transaction, and
upsert counts that are exact despite MySQL's affected-rows convention."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiomysql
import pytest

from dataflow import DataFlow, field
from dataflow.errors import IntegrityError
from dataflow.query.ast import Upsert
from dataflow_mysql.adapter import MySQLAdapter


class StatementLog:
    """Records the statements a connection sends (instrumentation, not a stand-in)."""

    def __init__(self, adapter: MySQLAdapter) -> None:
        self.sizes: list[int] = []
        self.adapter = adapter
        self.original = adapter._send

    async def __call__(self, conn: Any, sql: str) -> tuple[int, bytes]:
        self.sizes.append(len(sql.encode()))
        result: tuple[int, bytes] = await self.original(conn, sql)
        return result

    def __enter__(self) -> StatementLog:
        self.adapter._send = self  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.adapter._send


def adapter_of(db: DataFlow) -> MySQLAdapter:
    assert isinstance(db.adapter, MySQLAdapter)
    return db.adapter


async def test_bulk_create_is_multi_row_statements_under_the_packet_limit(make_db: Any) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyBulk:
        body: str
        n: int

    await db.initialize()
    adapter = adapter_of(db)
    packet = adapter.max_allowed_packet
    # ~1.5 x max_allowed_packet of 4-byte characters: must be cut into several statements
    chunk = "😀" * 2000
    rows = [{"body": chunk, "n": i} for i in range(int(packet * 1.5) // 8000 + 1)]
    with StatementLog(adapter) as log:
        result = await db.express.bulk_create("MyBulk", rows)
    assert result["inserted"] == len(rows)
    assert len(log.sizes) >= 2, "one statement cannot hold more than max_allowed_packet"
    assert max(log.sizes) < packet
    assert len(log.sizes) < len(rows) / 10, "rows are batched into multi-row statements"
    assert await db.express.count("MyBulk") == len(rows)
    assert (await db.express.read("MyBulk", 1) or {})["body"] == chunk


async def test_bulk_create_is_one_transaction(make_db: Any) -> None:
    db: DataFlow = make_db(statement_chars=4096)

    @db.model
    class MyAtomic:
        code: str = field(unique=True)

    rows = [{"code": f"c{i}"} for i in range(2000)] + [{"code": "c0"}]  # the last one collides
    with StatementLog(adapter_of(db)) as log, pytest.raises(IntegrityError):
        await db.express.bulk_create("MyAtomic", rows)
    assert len(log.sizes) > 5  # several statements had already succeeded ...
    assert await db.express.count("MyAtomic") == 0  # ... and were rolled back together


async def test_bulk_upsert_counts_are_exact(make_db: Any) -> None:
    db: DataFlow = make_db(statement_chars=2048)  # several statements per call

    @db.model
    class MyUp:
        name: str
        qty: int = 0

    await db.express.bulk_create("MyUp", [{"name": f"n{i}", "qty": i} for i in range(300)])
    rows = [{"id": i, "name": f"m{i}", "qty": i} for i in range(151, 601)]  # 150 exist, 300 new
    result = await db.express.bulk_upsert("MyUp", rows)
    assert (result["inserted"], result["updated"]) == (300, 150)
    # the same rows again, same values: all updates (updated_at moves), none inserted
    result = await db.express.bulk_upsert("MyUp", rows)
    assert (result["inserted"], result["updated"]) == (0, 450)
    assert await db.express.count("MyUp") == 600
    # one-row statements carry no "Records/Duplicates" info line: still exact
    assert (await db.express.bulk_upsert("MyUp", [{"id": 5, "name": "x"}]))["updated"] == 1
    assert (await db.express.bulk_upsert("MyUp", [{"id": 9000, "name": "x"}]))["inserted"] == 1
    rec = await db.express.upsert("MyUp", {"id": 5, "name": "five"})
    assert rec["name"] == "five" and rec["qty"] == 4  # the stored row (qty untouched), read back


async def test_upsert_counts_rows_left_unchanged(make_db: Any) -> None:
    """An ON DUPLICATE KEY update that changes nothing reports 0 affected rows on MySQL
    (1 with CLIENT_FOUND_ROWS, like an insert): the counts do not depend on it."""
    db: DataFlow = make_db()

    @db.model
    class MySame:
        name: str

    await db.express.bulk_create("MySame", [{"name": "a"}, {"name": "b"}])
    spec = db.get_model("MySame")
    adapter = adapter_of(db)
    existing = await db.express.list("MySame", order_by="id")
    rows = [*existing, {**existing[0], "id": 10}]
    for batch, expected in ((rows, (1, 2)), (rows[:1], (0, 1)), ([{**existing[0], "id": 11}], (1, 0))):
        stmt = Upsert(spec, tuple(spec.fields), [dict(r) for r in batch], ("id",), (), returning=False)

        async def write(conn: Any, stmt: Upsert = stmt) -> Any:
            await adapter.begin(conn)
            try:
                return await adapter.upsert(conn, stmt)
            finally:
                await adapter.commit(conn)

        out = await adapter.run(write)
        assert (out.inserted, out.updated) == expected


async def test_upsert_refuses_a_collision_on_another_unique_key(make_db: Any) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyUser:
        email: str = field(unique=True)
        name: str = ""

    await db.express.bulk_create("MyUser", [{"email": "a@x", "name": "A"}, {"email": "b@x", "name": "B"}])
    # id 50 is new, but its email belongs to row 1: ON DUPLICATE KEY would update row 1
    with pytest.raises(IntegrityError):
        await db.express.bulk_upsert("MyUser", [{"id": 2, "email": "b@x", "name": "B2"},
                                                 {"id": 50, "email": "a@x", "name": "evil"}])
    with pytest.raises(IntegrityError):
        await db.express.upsert("MyUser", {"id": 51, "email": "a@x", "name": "evil"})
    rows = {r["id"]: r["name"] for r in await db.express.list("MyUser")}
    assert rows == {1: "A", 2: "B"}  # nothing changed: the whole call rolled back
    ok = await db.express.bulk_upsert("MyUser", [{"email": "a@x", "name": "A2"}, {"email": "c@x"}],
                                      conflict_on="email")
    assert (ok["inserted"], ok["updated"]) == (1, 1)


async def test_create_and_update_return_what_a_read_returns(make_db: Any, raw: aiomysql.Connection
                                                            ) -> None:
    """No RETURNING: create derives the stored row (only the id is server-made) and
    ``read_back=True`` SELECTs it instead; both agree with a later read."""
    for read_back in (False, True):
        db: DataFlow = make_db(read_back=read_back)

        @db.model
        class MyBack:
            name: str
            price: Decimal = Decimal("1.10")
            meta: dict[str, Any] = {}

        rec = await db.express.create("MyBack", {"name": "n", "meta": {"b": 1, "a": [1.5]}})
        assert rec == await db.express.read("MyBack", rec["id"])
        upd = await db.express.update("MyBack", rec["id"], {"name": "m"})
        assert upd == await db.express.read("MyBack", rec["id"]) and upd is not None and upd["name"] == "m"
        await db.drop_tables()
