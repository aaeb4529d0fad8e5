"""DataFlow on MySQL / MariaDB vs raw aiomysql, in the same run, on the same server and schema.

    .venv/bin/python bench/bench_mysql.py            # full run (100k bulk insert and upsert)
    .venv/bin/python bench/bench_mysql.py --quick    # smaller sizes, for a smoke check
    .venv/bin/python bench/bench_mysql.py --markdown # also print a Markdown table for RESULTS.md

The server is ``$DATAFLOW_MYSQL_URL`` (default mysql://root@127.0.0.1:3306/test).

Fairness rules for the raw baselines:
  * the same table layout: the raw table is created from DataFlow's own DDL, under another name;
  * the same input: both sides start from the same list of dicts and write the same columns,
    including ``created_at`` / ``updated_at``;
  * raw single statements take a connection from an aiomysql pool per statement (autocommit), as a
    service does; a raw single insert is the INSERT alone (DataFlow also reads the stored row back);
  * raw bulk insert / upsert is ``cursor.executemany`` (aiomysql folds it into multi-row statements
    of up to 1 MB) inside one transaction; the upsert is ``INSERT ... ON DUPLICATE KEY UPDATE``;
  * raw reads return one dict per row, no type conversion.

Ratio = raw time / DataFlow time: >= 1.0 means DataFlow is as fast as the raw driver.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import os
import sys
from typing import Any

import aiomysql
from harness import Result, print_header
from workloads import ItemBench, Plan, arguments, make_rows, report, run_bench, sizes

from dataflow import DataFlow
from dataflow.adapter import DatabaseURL

URL = os.environ.get("DATAFLOW_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
COLUMNS = ("name", "category", "price", "qty", "active", "created_at", "updated_at")
RAW = "`bench_raw_item`"
MARKS = ", ".join(["%s"] * len(COLUMNS))
INSERT_ONE = f"INSERT INTO {RAW} ({', '.join(COLUMNS)}) VALUES ({MARKS})"
UPSERT = (f"INSERT INTO {RAW} (id, {', '.join(COLUMNS)}) VALUES (%s, {MARKS}) ON DUPLICATE KEY UPDATE "
          + ", ".join(f"{c} = VALUES({c})" for c in COLUMNS if c != "created_at"))
SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM {RAW}"
NAMES = ("id", *COLUMNS)


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


def as_tuple(r: dict[str, Any], ts: _dt.datetime) -> tuple[Any, ...]:
    return (r["name"], r["category"], r["price"], r["qty"], r["active"], ts, ts)


PLAN = Plan(bulk_vs=" vs executemany", targets={"bulk": 0.85, "lists": 0.9, "upsert": 0.85})


class Bench(ItemBench):
    def __init__(self, sizes: dict[str, int], repeat: int) -> None:
        super().__init__(DataFlow(URL, name="bench_mysql"), "BenchItem", sizes, repeat)
        self.raw: aiomysql.Pool | None = None

    async def open(self) -> None:
        await self.db.drop_tables()
        await self.db.initialize()
        u = DatabaseURL.parse(URL)
        size = self.db.pool_stats()["max"] or 10
        self.raw = await aiomysql.create_pool(
            host=u.host, port=u.port or 3306, user=u.username or "root", password=u.password or "",
            db=u.database, autocommit=True, charset="utf8mb4", minsize=1, maxsize=size,
            init_command="SET time_zone = '+00:00'")
        compiler = self.db.adapter.compiler  # type: ignore[attr-defined]
        async with self.raw.acquire() as c, c.cursor() as cur:
            await cur.execute(f"DROP TABLE IF EXISTS {RAW}")
            for sql in compiler.create_table(self.db.get_model("BenchItem")):
                await cur.execute(sql.replace("`bench_item`", RAW))

    async def close(self) -> None:
        await self.db.drop_tables()
        await self.db.close()
        if self.raw is not None:
            async with self.raw.acquire() as c, c.cursor() as cur:
                await cur.execute(f"DROP TABLE IF EXISTS {RAW}")
            self.raw.close()
            await self.raw.wait_closed()

    async def reset(self, keep: int = 0) -> None:
        """Empty both tables, then (optionally) load ``keep`` rows into each (untimed)."""
        assert self.raw is not None
        async with self.raw.acquire() as c, c.cursor() as cur:
            await cur.execute("TRUNCATE TABLE `bench_item`")
            await cur.execute(f"TRUNCATE TABLE {RAW}")
        if keep:
            rows = make_rows(keep)
            await self.db.express.bulk_create("BenchItem", rows)
            await self.raw_bulk(rows)

    # --- raw baselines --------------------------------------------------------------------
    async def raw_bulk(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        ts = now()
        async with self.raw.acquire() as c, c.cursor() as cur:
            await c.begin()
            await cur.executemany(INSERT_ONE, [as_tuple(r, ts) for r in rows])
            await c.commit()

    async def raw_single_inserts(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        for r in rows:
            async with self.raw.acquire() as c, c.cursor() as cur:
                await cur.execute(INSERT_ONE, as_tuple(r, now()))
                _ = cur.lastrowid

    async def raw_reads(self, ids: list[int]) -> None:
        assert self.raw is not None
        sql = f"{SELECT} WHERE id = %s"
        for i in ids:
            async with self.raw.acquire() as c, c.cursor() as cur:
                await cur.execute(sql, (i,))
                _ = dict(zip(NAMES, (await cur.fetchall())[0], strict=True))

    async def raw_filtered(self, times: int) -> None:
        assert self.raw is not None
        sql = (f"{SELECT} WHERE category = %s AND price >= %s AND active = %s "
               "ORDER BY price DESC, name LIMIT 100")
        for k in range(times):
            async with self.raw.acquire() as c, c.cursor() as cur:
                await cur.execute(sql, (f"c{k % 20}", 50.0, True))
                _ = [dict(zip(NAMES, r, strict=True)) for r in await cur.fetchall()]

    async def raw_upsert(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        ts = now()
        async with self.raw.acquire() as c, c.cursor() as cur:
            await c.begin()
            await cur.executemany(UPSERT, [(r["id"], *as_tuple(r, ts)) for r in rows])
            await c.commit()


async def amain(args: argparse.Namespace) -> list[Result]:
    return await run_bench(Bench(sizes(args), args.repeat), PLAN)


def main() -> int:
    args = arguments(__doc__).parse_args()
    print_header("DataFlow MySQL / MariaDB vs raw aiomysql")
    return report(asyncio.run(amain(args)), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
