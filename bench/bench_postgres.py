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
import time
from typing import Any

import asyncpg
from harness import (
    Result,
    machine_note,
    markdown_table,
    measure,
    print_header,
    print_table,
)

from dataflow import DataFlow
from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder

URL = os.environ.get("DATAFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
COLUMNS = ("name", "category", "price", "qty", "active", "created_at", "updated_at")
RAW = '"bench_raw_item"'
INSERT_ONE = (f"INSERT INTO {RAW} ({', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
              f"RETURNING id, {', '.join(COLUMNS)}")
UPSERT_SET = ("name = excluded.name, category = excluded.category, price = excluded.price, "
              "qty = excluded.qty, active = excluded.active, updated_at = excluded.updated_at")


def make_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"name": f"item-{i}", "category": f"c{i % 20}", "price": (i % 1000) / 10.0,
         "qty": i % 97, "active": i % 3 != 0}
        for i in range(start, start + n)
    ]


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def as_tuple(r: dict[str, Any], ts: _dt.datetime) -> tuple[Any, ...]:
    return (r["name"], r["category"], r["price"], r["qty"], r["active"], ts, ts)


class Bench:
    def __init__(self, sizes: dict[str, int], repeat: int) -> None:
        self.sizes = sizes
        self.repeat = repeat
        self.db = DataFlow(URL, name="bench_pg")
        db = self.db

        @db.model
        class BenchItem:
            name: str
            category: str
            price: float
            qty: int = 0
            active: bool = True

        self.raw: asyncpg.Pool | None = None
        self.runtime = AsyncLocalRuntime()

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
            await self.raw_copy(rows)
        async with self.raw.acquire() as c:
            await c.execute('VACUUM ANALYZE "bench_item"')
            await c.execute(f'VACUUM ANALYZE {RAW}')

    # --- raw baselines --------------------------------------------------------------------
    async def raw_copy(self, rows: list[dict[str, Any]]) -> None:
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

    async def raw_upsert_executemany(self, rows: list[dict[str, Any]]) -> None:
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

    # --- DataFlow: express ---------------------------------------------------------------
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

    # --- DataFlow: nodes (one workflow per operation, as a service would run them) ----------
    async def _run_wf(self, node: str, params: dict[str, Any]) -> dict[str, Any]:
        wf = WorkflowBuilder().add_node(node, "op", params).build()
        results, _ = await self.runtime.execute_workflow_async(wf)
        out: dict[str, Any] = results["op"]
        return out

    async def node_single_inserts(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            await self._run_wf("BenchItemCreateNode", r)

    async def node_reads(self, ids: list[int]) -> None:
        for i in ids:
            await self._run_wf("BenchItemReadNode", {"id": i})

    async def node_filtered(self, times: int) -> None:
        for k in range(times):
            await self._run_wf("BenchItemListNode", {
                "filter": {"category": f"c{k % 20}", "price": {"$gte": 50.0}, "active": True},
                "order_by": ["-price", "name"], "limit": 100})

    # --- workloads ------------------------------------------------------------------------
    async def run(self) -> list[Result]:
        n_bulk, n_single, n_reads = self.sizes["bulk"], self.sizes["single"], self.sizes["reads"]
        n_list, n_upsert = self.sizes["lists"], self.sizes["upsert"]
        rep = self.repeat
        out: list[Result] = []
        db = self.db

        bulk_rows = make_rows(n_bulk)
        out.append(await measure(
            f"bulk insert {n_bulk:,} vs COPY (express)",
            lambda: db.express.bulk_create("BenchItem", bulk_rows),
            lambda: self.raw_copy(bulk_rows), rep, setup=self.reset))
        out.append(await measure(
            f"bulk insert {n_bulk:,} vs COPY (node)",
            lambda: self._run_wf("BenchItemBulkCreateNode", {"data": bulk_rows}),
            lambda: self.raw_copy(bulk_rows), rep, setup=self.reset))

        single = make_rows(n_single)
        out.append(await measure(
            f"{n_single:,} single inserts (express)", lambda: self.ours_single_inserts(single),
            lambda: self.raw_single_inserts(single), rep, setup=self.reset))
        out.append(await measure(
            f"{n_single:,} single inserts (node)", lambda: self.node_single_inserts(single),
            lambda: self.raw_single_inserts(single), rep, setup=self.reset))

        table_rows = max(n_bulk, n_reads)
        await self.reset(keep=table_rows)
        ids = [(i * 7919) % table_rows + 1 for i in range(n_reads)]
        out.append(await measure(f"{n_reads:,} reads by id (express)", lambda: self.ours_reads(ids),
                                 lambda: self.raw_reads(ids), rep))
        out.append(await measure(f"{n_reads:,} reads by id (node)", lambda: self.node_reads(ids),
                                 lambda: self.raw_reads(ids), rep))
        out.append(await measure(
            f"{n_list} filtered lists, 3 ops + order_by, limit 100 (express)",
            lambda: self.ours_filtered(n_list), lambda: self.raw_filtered(n_list), rep,
            target=0.9))
        out.append(await measure(
            f"{n_list} filtered lists (node)", lambda: self.node_filtered(n_list),
            lambda: self.raw_filtered(n_list), rep, target=0.9))

        # half the keys exist (updates), half are new (inserts)
        upsert_rows = [{"id": i + 1 + n_upsert // 2, **r}
                       for i, r in enumerate(make_rows(n_upsert, 7))]

        async def upsert_setup() -> None:
            await self.reset(keep=n_upsert)

        raw_paths = [
            await measure("raw upsert: COPY + INSERT SELECT", lambda: self.raw_upsert_copy(upsert_rows),
                          None, rep, setup=upsert_setup, quiet=True),
            await measure("raw upsert: executemany ON CONFLICT",
                          lambda: self.raw_upsert_executemany(upsert_rows), None, rep,
                          setup=upsert_setup, quiet=True),
        ]
        best = min(raw_paths, key=lambda r: r.ours)
        best_raw = (self.raw_upsert_copy if best is raw_paths[0] else self.raw_upsert_executemany)
        counts: dict[str, Any] = {}

        async def ours_upsert() -> None:
            counts.update(await db.express.bulk_upsert("BenchItem", upsert_rows))

        out.append(await measure(
            f"bulk upsert {n_upsert:,} (50% new) (express)", ours_upsert,
            lambda: best_raw(upsert_rows), rep, setup=upsert_setup,
            note=f"raw best of executemany {raw_paths[1].ours:.3f}s / COPY {raw_paths[0].ours:.3f}s"))
        assert counts["inserted"] == n_upsert // 2 and counts["updated"] == n_upsert - n_upsert // 2, counts
        out.append(await measure(
            f"bulk upsert {n_upsert:,} (50% new) (node)",
            lambda: self._run_wf("BenchItemBulkUpsertNode", {"data": upsert_rows}),
            lambda: best_raw(upsert_rows), rep, setup=upsert_setup))
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
    print_header("DataFlow PostgreSQL vs raw asyncpg")
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
