"""DataFlow on PostgreSQL vs raw asyncpg, in the same run, on the same server and schema.

    .venv/bin/python bench/bench_postgres.py            # full run (100k bulk insert)
    .venv/bin/python bench/bench_postgres.py --quick    # smaller sizes, for a smoke check
    .venv/bin/python bench/bench_postgres.py --markdown # also print a Markdown table for RESULTS.md

The server is ``$DATAFLOW_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test).

Fairness rules for the raw baselines:
  * the same table layout: the raw table is created from DataFlow's own DDL, under another name;
  * the same input: both sides start from the same list of dicts and write the same columns,
    including ``created_at`` / ``updated_at``;
  * raw single statements take a connection from an asyncpg pool per statement (as a service
    does), with asyncpg's defaults; bulk insert is ``copy_records_to_table`` (binary COPY);
  * bulk upsert is compared with the best of two raw paths: ``executemany`` of
    ``INSERT ... ON CONFLICT`` and COPY into a temporary table + ``INSERT ... SELECT``;
  * raw reads return one dict per row (``dict(row)``), no type conversion.

Ratio = raw time / DataFlow time: >= 1.0 means DataFlow is as fast as the raw driver.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from harness import Result, measure, print_header
from workloads import ItemBench, Plan, arguments, make_rows, report, run_bench, sizes

from dataflow import DataFlow

URL = os.environ.get("DATAFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
COLUMNS = ("name", "category", "price", "qty", "active", "created_at", "updated_at")
RAW = '"bench_raw_item"'
INSERT_ONE = (f"INSERT INTO {RAW} ({', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
              f"RETURNING id, {', '.join(COLUMNS)}")
UPSERT_SET = ("name = excluded.name, category = excluded.category, price = excluded.price, "
              "qty = excluded.qty, active = excluded.active, updated_at = excluded.updated_at")


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def as_tuple(r: dict[str, Any], ts: _dt.datetime) -> tuple[Any, ...]:
    return (r["name"], r["category"], r["price"], r["qty"], r["active"], ts, ts)


PLAN = Plan(bulk_vs=" vs COPY", nodes=frozenset({"bulk", "single", "reads", "lists", "upsert"}),
            targets={"lists": 0.9})


class Bench(ItemBench):
    def __init__(self, sizes: dict[str, int], repeat: int) -> None:
        super().__init__(DataFlow(URL, name="bench_pg"), "BenchItem", sizes, repeat)
        self.raw: asyncpg.Pool | None = None

    # --- setup -------------------------------------------------------------------------------
    async def open(self) -> None:
        await self.db.drop_tables()
        await self.db.initialize()
        size = self.db.pool_stats()["max"] or 10
        self.raw = await asyncpg.create_pool(URL, min_size=1, max_size=max(1, size))
        compiler = self.db.adapter.compiler  # type: ignore[attr-defined]
        async with self.raw.acquire() as c:
            await c.execute(f"DROP TABLE IF EXISTS {RAW}")
            for sql in compiler.create_table(self.db.get_model("BenchItem")):
                await c.execute(sql.replace('"bench_item"', RAW))

    async def close(self) -> None:
        await self.db.drop_tables()
        await self.db.close()
        if self.raw is not None:
            async with self.raw.acquire() as c:
                await c.execute(f"DROP TABLE IF EXISTS {RAW}")
            await self.raw.close()

    async def reset(self, keep: int = 0) -> None:
        """Empty both tables, then (optionally) load ``keep`` rows into each (untimed)."""
        assert self.raw is not None
        async with self.raw.acquire() as c:
            await c.execute(f'TRUNCATE "bench_item", {RAW} RESTART IDENTITY')
        if keep:
            rows = make_rows(keep)
            await self.db.express.bulk_create("BenchItem", rows)
            await self.raw_bulk(rows)
        async with self.raw.acquire() as c:
            await c.execute('VACUUM ANALYZE "bench_item"')
            await c.execute(f'VACUUM ANALYZE {RAW}')

    # --- raw baselines --------------------------------------------------------------------
    async def raw_bulk(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        ts = now()
        async with self.raw.acquire() as c:
            await c.copy_records_to_table("bench_raw_item", records=[as_tuple(r, ts) for r in rows],
                                          columns=list(COLUMNS))

    async def raw_single_inserts(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        for r in rows:
            async with self.raw.acquire() as c:
                _ = dict(await c.fetchrow(INSERT_ONE, *as_tuple(r, now())))

    async def raw_reads(self, ids: list[int]) -> None:
        assert self.raw is not None
        sql = f"SELECT id, {', '.join(COLUMNS)} FROM {RAW} WHERE id = $1"
        for i in ids:
            async with self.raw.acquire() as c:
                _ = dict(await c.fetchrow(sql, i))

    async def raw_filtered(self, times: int) -> None:
        assert self.raw is not None
        sql = (f"SELECT id, {', '.join(COLUMNS)} FROM {RAW} WHERE category = $1 AND price >= $2 "
               "AND active = $3 ORDER BY price DESC, name LIMIT 100")
        for k in range(times):
            async with self.raw.acquire() as c:
                _ = [dict(r) for r in await c.fetch(sql, f"c{k % 20}", 50.0, True)]

    async def raw_upsert(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        ts = now()
        sql = (f"INSERT INTO {RAW} (id, {', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
               f"ON CONFLICT (id) DO UPDATE SET {UPSERT_SET}")
        async with self.raw.acquire() as c, c.transaction():
            await c.executemany(sql, [(r["id"], *as_tuple(r, ts)) for r in rows])

    async def raw_upsert_copy(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        ts = now()
        cols = ("id", *COLUMNS)
        async with self.raw.acquire() as c, c.transaction():
            await c.execute(f"CREATE TEMP TABLE raw_stage AS SELECT {', '.join(cols)} FROM {RAW} "
                            "WITH NO DATA")
            await c.copy_records_to_table("raw_stage", records=[(r["id"], *as_tuple(r, ts))
                                                                for r in rows], columns=list(cols))
            await c.execute(f"INSERT INTO {RAW} ({', '.join(cols)}) SELECT {', '.join(cols)} "
                            f"FROM raw_stage ON CONFLICT (id) DO UPDATE SET {UPSERT_SET}")
            await c.execute("DROP TABLE raw_stage")

    async def best_raw_upsert(self, rows: list[dict[str, Any]], setup: Callable[[], Awaitable[None]]
                              ) -> tuple[Callable[[list[dict[str, Any]]], Awaitable[None]], str]:
        """The faster of two raw paths: COPY into a temporary table + INSERT ... SELECT, and
        ``executemany`` of INSERT ... ON CONFLICT."""
        copy = await measure("raw upsert: COPY + INSERT SELECT", lambda: self.raw_upsert_copy(rows),
                             None, self.repeat, setup=setup, quiet=True)
        many = await measure("raw upsert: executemany ON CONFLICT", lambda: self.raw_upsert(rows),
                             None, self.repeat, setup=setup, quiet=True)
        best = self.raw_upsert_copy if copy.ours <= many.ours else self.raw_upsert
        return best, f"raw best of executemany {many.ours:.3f}s / COPY {copy.ours:.3f}s"


async def amain(args: argparse.Namespace) -> list[Result]:
    return await run_bench(Bench(sizes(args), args.repeat), PLAN)


def main() -> int:
    args = arguments(__doc__).parse_args()
    print_header("DataFlow PostgreSQL vs raw asyncpg")
    return report(asyncio.run(amain(args)), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
