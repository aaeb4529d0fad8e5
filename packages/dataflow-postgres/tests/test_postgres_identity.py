"""Rows written with explicit ids around the key's identity sequence (another program, a
restore, two explicit-id creates racing) leave the sequence behind the table: the next
generated key meets a row already there. DataFlow moves the sequence past the rows then; a
create on its own is sent again, a bulk write in DataFlow's own transaction is run again (both
succeed), a write inside the caller's transaction fails DF-902 with the reason (nothing
written) and succeeds when the caller runs it again."""

from __future__ import annotations

from typing import Any

import pytest
from pg_support import run_sql

from dataflow.errors import IntegrityError


async def _write_around(pg_url: str, ids: range) -> None:
    """Rows with explicit ids, written as another program would: the sequence stays put."""
    await run_sql(pg_url, "INSERT INTO pg_ticket (id, name, created_at, updated_at) "
                          "SELECT g, 'outside-' || g, now(), now() FROM generate_series($1::int, $2::int) g",
                  ids.start, ids.stop - 1)


async def _sequence(pg_url: str) -> int:
    rows = await run_sql(pg_url, "SELECT last_value FROM pg_sequences WHERE format('%I.%I', "
                                 "schemaname, sequencename) = pg_get_serial_sequence('pg_ticket', 'id')")
    return int(rows[0][0] or 0)


def _declare(db: Any) -> None:
    @db.model
    class PgTicket:
        name: str


async def test_a_create_on_its_own_moves_a_sequence_left_behind_and_succeeds(
        make_db: Any, pg_url: str) -> None:
    db = make_db()
    _declare(db)
    await db.initialize()
    assert (await db.express.create("PgTicket", {"name": "first"}))["id"] == 1
    await _write_around(pg_url, range(2, 41))
    made = await db.express.create("PgTicket", {"name": "next"})
    assert made["id"] == 41 and await _sequence(pg_url) == 41
    assert await db.express.count("PgTicket") == 41
    # a duplicate that is not the sequence's doing still fails, and nothing moves
    with pytest.raises(IntegrityError, match="already exists"):
        await db.express.create("PgTicket", {"id": 5, "name": "dup"})
    assert await _sequence(pg_url) == 41


async def test_a_bulk_create_is_run_again_once_the_sequence_is_past_the_rows(
        make_db: Any, pg_url: str) -> None:
    db = make_db()
    _declare(db)
    await db.initialize()
    # more rows around it than the failed COPY draws from the sequence before it fails
    await _write_around(pg_url, range(1, 3001))
    rows = [{"name": f"b{i}"} for i in range(500)]
    assert (await db.express.bulk_create("PgTicket", rows))["inserted"] == 500
    ids = [r["id"] for r in await db.express.list("PgTicket", {"name": {"$like": "b%"}},
                                                  limit=1000)]
    assert len(ids) == 500 and min(ids) == 3001
    # the general path (rows from an iterable other than a list) too
    await _write_around(pg_url, range(3501, 6001))
    assert (await db.express.bulk_create("PgTicket", ({"name": f"m{i}"} for i in range(300)))
            )["inserted"] == 300
    assert await db.express.count("PgTicket") == 3000 + 500 + 2500 + 300


async def test_partial_bulk_create_lists_the_rows_the_sequence_refused_then_recovers(
        make_db: Any, pg_url: str) -> None:
    """partial=True is not run again (its failures are its answer): rows whose generated key
    met a row are listed as failed, DF-902 with the reason, and the sequence is past the
    rows afterwards."""
    db = make_db()
    _declare(db)
    await db.initialize()
    await _write_around(pg_url, range(1, 4))
    out = await db.express.bulk_create("PgTicket", [{"name": f"p{i}"} for i in range(5)],
                                       partial=True)
    assert out["inserted"] + len(out["failed"]) == 5 and out["failed"]
    assert all(f["code"] == "DF-902" for f in out["failed"])
    again = await db.express.bulk_create("PgTicket", [{"name": f"q{i}"} for i in range(5)])
    assert again["inserted"] == 5


async def test_a_create_inside_a_transaction_fails_and_the_next_one_succeeds(
        make_db: Any, pg_url: str) -> None:
    db = make_db()
    _declare(db)
    await db.initialize()
    await _write_around(pg_url, range(1, 11))
    with pytest.raises(IntegrityError, match="sequence was behind"):
        async with db.transaction():
            await db.express.create("PgTicket", {"name": "in a transaction"})
    assert await db.express.count("PgTicket") == 10
    async with db.transaction():
        made = await db.express.create("PgTicket", {"name": "again"})
    assert made["id"] == 11


async def test_an_upsert_by_another_key_is_run_again_once_the_sequence_is_past_the_rows(
        make_db: Any, pg_url: str) -> None:
    db = make_db()

    @db.model
    class PgTicket:
        name: str
        __dataflow__ = {"unique": [("name",)]}

    await db.initialize()
    await _write_around(pg_url, range(1, 11))
    out = await db.express.bulk_upsert("PgTicket", [{"name": "new-a"}, {"name": "new-b"}],
                                       conflict_on="name")
    assert out["inserted"] == 2 and await db.express.count("PgTicket") == 12
    assert await _sequence(pg_url) == 12
