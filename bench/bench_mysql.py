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
import time
from typing import Any

import aiomysql
from harness import Result, machine_note, markdown_table, measure, print_header, print_table

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


def make_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"name": f"item-{i}", "category": f"c{i % 20}", "price": (i % 1000) / 10.0,
         "qty": i % 97, "active": i % 3 != 0}
        for i in range(start, start + n)
    ]


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


def as_tuple(r: dict[str, Any], ts: _dt.datetime) -> tuple[Any, ...]:
    return (r["name"], r["category"], r["price"], r["qty"], r["active"], ts, ts)


class Bench:
    def __init__(self, sizes: dict[str, int], repeat: int) -> None:
        self.sizes = sizes
        self.repeat = repeat
        self.db = DataFlow(URL, name="bench_mysql")
        db = self.db

        @db.model
        class BenchItem:
            name: str
            category: str
            price: float
            qty: int = 0
            active: bool = True

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

    # --- DataFlow ---------------------------------------------------------------------------
    async def ours_single_inserts(self, rows: list[dict[str, Any]]) -> None:
        create = self.db.express.create
        for r in rows:
            await create("BenchItem", r)

    async def ours_reads(self, ids: list[int]) -> None:
        read = self.db.express.read
        for i in ids:
            await read("BenchItem", i)

    async def ours_filtered(self, times: int) -> None:
        lst = self.db.express.list
        for k in range(times):
            await lst("BenchItem", {"category": f"c{k % 20}", "price": {"$gte": 50.0}, "active": True},
                      order_by=["-price", "name"], limit=100)

    async def run(self) -> list[Result]:
        n_bulk, n_single, n_reads = self.sizes["bulk"], self.sizes["single"], self.sizes["reads"]
        n_list, n_upsert = self.sizes["lists"], self.sizes["upsert"]
        rep = self.repeat
        out: list[Result] = []
        db = self.db

        bulk_rows = make_rows(n_bulk)
        out.append(await measure(
            f"bulk insert {n_bulk:,} vs executemany (express)",
            lambda: db.express.bulk_create("BenchItem", bulk_rows),
            lambda: self.raw_bulk(bulk_rows), rep, setup=self.reset, target=0.85))

        single = make_rows(n_single)
        out.append(await measure(
            f"{n_single:,} single inserts (express)", lambda: self.ours_single_inserts(single),
            lambda: self.raw_single_inserts(single), rep, setup=self.reset, target=0.8))

        table_rows = max(n_bulk, n_reads)
        await self.reset(keep=table_rows)
        ids = [(i * 7919) % table_rows + 1 for i in range(n_reads)]
        out.append(await measure(f"{n_reads:,} reads by id (express)", lambda: self.ours_reads(ids),
                                 lambda: self.raw_reads(ids), rep, target=0.8))
        out.append(await measure(
            f"{n_list} filtered lists, 3 ops + order_by, limit 100 (express)",
            lambda: self.ours_filtered(n_list), lambda: self.raw_filtered(n_list), rep, target=0.9))

        # half the keys exist (updates), half are new (inserts)
        upsert_rows = [{"id": i + 1 + n_upsert // 2, **r} for i, r in enumerate(make_rows(n_upsert, 7))]
        counts: dict[str, Any] = {}

        async def upsert_setup() -> None:
            await self.reset(keep=n_upsert)

        async def ours_upsert() -> None:
            counts.update(await db.express.bulk_upsert("BenchItem", upsert_rows))

        out.append(await measure(
            f"bulk upsert {n_upsert:,} (50% new) (express)", ours_upsert,
            lambda: self.raw_upsert(upsert_rows), rep, setup=upsert_setup, target=0.85))
        assert counts["inserted"] == n_upsert - n_upsert // 2 and counts["updated"] == n_upsert // 2, counts
        return out


async def amain(args: argparse.Namespace) -> list[Result]:
    if args.quick:
        sizes = {"bulk": 10_000, "single": 300, "reads": 300, "lists": 20, "upsert": 10_000}
    else:
        sizes = {"bulk": 100_000, "single": 1_000, "reads": 1_000, "lists": 100, "upsert": 100_000}
    bench = Bench(sizes, args.repeat)
    await bench.open()
    try:
        return await bench.run()
    finally:
        await bench.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke check)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per side (default 3)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = ap.parse_args()
    print_header("DataFlow MySQL / MariaDB vs raw aiomysql")
    results = asyncio.run(amain(args))
    print()
    print_table(results)
    if args.markdown:
        print(f"\n{time.strftime('%Y-%m-%d')} -- {machine_note()}\n")
        print(markdown_table(results))
    failed = [r.name for r in results if r.passed is False]
    if failed:
        print(f"\nbelow target: {', '.join(failed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
