"""DataFlow on SQLite vs raw aiosqlite, in the same run, on the same schema.

    .venv/bin/python bench/bench_sqlite.py            # full run (100k bulk insert)
    .venv/bin/python bench/bench_sqlite.py --quick    # smaller sizes, for a smoke check
    .venv/bin/python bench/bench_sqlite.py --markdown # also print a Markdown table for RESULTS.md

Fairness rules for the raw baselines:
  * the same table layout and column types (the raw tables are created from DataFlow's own DDL),
    the same pragmas (WAL, synchronous=NORMAL), each side on its own database file;
  * the same input: both sides start from the same list of dicts and write the same columns,
    including ``created_at`` / ``updated_at`` (ISO text, as DataFlow stores them);
  * raw single statements run in autocommit, bulk writes use ``executemany`` in one transaction;
  * raw reads return one dict per row (``dict(zip(columns, row))``), no type conversion.

Ratio = raw time / DataFlow time: >= 1.0 means DataFlow is as fast as the raw driver.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import itertools
import os
import sys
import tempfile
import time
from typing import Any

import aiosqlite
from harness import Result, measure_import, print_header
from workloads import ItemBench, Plan, arguments, make_rows, report, run_standard, sizes

from dataflow import DataFlow
from dataflow.workflow import Connection, Workflow, WorkflowBuilder

PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON")
COLUMNS = ("name", "category", "price", "qty", "active", "created_at", "updated_at")


def ts_text(now: _dt.datetime) -> str:
    return now.isoformat(sep=" ", timespec="microseconds")


PLAN = Plan(nodes=frozenset({"bulk", "single", "reads", "lists", "upsert"}), min_table_rows=20_000,
            table_follows_bulk=False)
FULL = {"bulk": 100_000, "single": 1_000, "reads": 1_000, "lists": 100, "upsert": 10_000,
        "wf_nodes": 1_000}
QUICK = {"bulk": 10_000, "single": 300, "reads": 300, "lists": 20, "upsert": 2_000, "wf_nodes": 200}


class Bench(ItemBench):
    def __init__(self, workdir: str, sizes: dict[str, int], repeat: int) -> None:
        super().__init__(DataFlow(f"sqlite:///{workdir}/ours.db", name="bench_ours"), "Item", sizes,
                         repeat)
        self.workdir = workdir
        self.raw: aiosqlite.Connection | None = None
        self._built: dict[str, Workflow] = {}

    # --- setup -------------------------------------------------------------------------------
    async def open(self) -> None:
        await self.db.initialize()
        raw = await aiosqlite.connect(f"{self.workdir}/raw.db", isolation_level=None)
        for p in PRAGMAS:
            await raw.execute(p)
        # identical DDL: DataFlow's own CREATE TABLE for the same model
        compiler = self.db.adapter.compiler  # type: ignore[attr-defined]
        for sql in compiler.create_table(self.db.get_model("Item")):
            await raw.execute(sql)
        self.raw = raw

    async def close(self) -> None:
        await self.db.close()
        if self.raw is not None:
            await self.raw.close()

    async def reset(self, keep: int = 0) -> None:
        """Empty both tables, then (optionally) load ``keep`` rows into each (untimed)."""
        assert self.raw is not None
        await self.db.express.bulk_delete("Item", confirmed=True)
        await self.raw.execute('DELETE FROM "item"')
        if keep:
            rows = make_rows(keep)
            await self.db.express.bulk_create("Item", rows)
            await self.raw_bulk(rows)

    # --- raw baselines --------------------------------------------------------------------
    async def raw_bulk(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        now = ts_text(_dt.datetime.now(_dt.UTC))
        params = [(r["name"], r["category"], r["price"], r["qty"], r["active"], now, now) for r in rows]
        await self.raw.execute("BEGIN")
        await self.raw.executemany(
            'INSERT INTO "item" (name, category, price, qty, active, created_at, updated_at) '
            "VALUES (?, ?, ?, ?, ?, ?, ?)", params)
        await self.raw.execute("COMMIT")

    async def raw_single_inserts(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        sql = ('INSERT INTO "item" (name, category, price, qty, active, created_at, updated_at) '
               "VALUES (?, ?, ?, ?, ?, ?, ?)")
        for r in rows:
            now = ts_text(_dt.datetime.now(_dt.UTC))
            async with self.raw.execute(sql, (r["name"], r["category"], r["price"], r["qty"],
                                              r["active"], now, now)) as cur:
                _ = cur.lastrowid

    async def raw_reads(self, ids: list[int]) -> None:
        assert self.raw is not None
        cols = ("id", *COLUMNS)
        sql = f'SELECT {", ".join(cols)} FROM "item" WHERE id = ?'
        for i in ids:
            rows = list(await self.raw.execute_fetchall(sql, (i,)))
            _ = dict(zip(cols, rows[0], strict=True))

    async def raw_filtered(self, times: int) -> None:
        assert self.raw is not None
        cols = ("id", *COLUMNS)
        sql = (f'SELECT {", ".join(cols)} FROM "item" WHERE category = ? AND price >= ? '
               "AND active = ? ORDER BY price DESC, name LIMIT 100")
        for k in range(times):
            rows = await self.raw.execute_fetchall(sql, (f"c{k % 20}", 50.0, 1))
            _ = [dict(zip(cols, r, strict=True)) for r in rows]

    async def raw_upsert(self, rows: list[dict[str, Any]]) -> None:
        assert self.raw is not None
        now = ts_text(_dt.datetime.now(_dt.UTC))
        params = [(r["id"], r["name"], r["category"], r["price"], r["qty"], r["active"], now, now)
                  for r in rows]
        await self.raw.execute("BEGIN")
        await self.raw.executemany(
            'INSERT INTO "item" (id, name, category, price, qty, active, created_at, updated_at) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
            "category = excluded.category, price = excluded.price, qty = excluded.qty, "
            "active = excluded.active, updated_at = excluded.updated_at", params)
        await self.raw.execute("COMMIT")

    # --- DataFlow: nodes (a workflow built once, run per operation with its inputs,
    # as a service runs a stored workflow) -----------------------------------------------
    async def run_node(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        node = f"{self.model}{op}Node"
        built = self._built.get(node)
        if built is None:
            built = self._built[node] = WorkflowBuilder().add_node(node, "op", {}).build()
        results, _ = await self.runtime.execute_workflow_async(built, {"op": params})
        out: dict[str, Any] = results["op"]
        return out

    async def workflow_overhead(self) -> Result:
        """What the runtime itself adds per node: a chain of N no-op nodes (each fed by a
        connection from the previous one), so no database time is in the figure."""
        n = self.sizes["wf_nodes"]
        ids = [f"n{i}" for i in range(n)]
        nodes: dict[str, Any] = {i: _NoopNode() for i in ids}
        incoming: dict[str, list[Connection]] = {ids[0]: []}
        for a, b in itertools.pairwise(ids):
            incoming[b] = [Connection(a, "value", b, "value")]
        wf = Workflow(nodes, {i: {"value": 0} for i in ids}, list(ids), incoming)
        best = float("inf")
        for _ in range(max(5, self.repeat)):
            t0 = time.perf_counter()
            await self.runtime.execute_workflow_async(wf)
            best = min(best, time.perf_counter() - t0)
        per_node = best / n * 1e6
        # building: resolve ItemCountNode n times, connect them in a chain, order them
        t0 = time.perf_counter()
        for _ in range(5):
            wb = WorkflowBuilder()
            for k in range(n):
                wb.add_node("ItemCountNode", f"c{k}", {"filter": {"qty": 1}})
                if k:
                    wb.add_connection(f"c{k - 1}", "count", f"c{k}", "filter.qty")
            wb.build()
        build_us = (time.perf_counter() - t0) / 5 / n * 1e6
        res = Result(f"workflow overhead per node ({n}-node chain)", per_node, target=50.0, unit="us",
                     note=f"execute; build() adds {build_us:.1f} us/node")
        print(f"  {res.name:<44} ours {per_node:8.1f} us   (build {build_us:.1f} us/node)  "
              f"{'PASS' if res.passed else 'FAIL'}", flush=True)
        return res


class _NoopNode:
    """A node that does nothing: isolates the runtime's own per-node cost."""

    type_name = "BenchNoopNode"

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"value": params["value"] + 1}


async def amain(args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="dataflow-bench-") as tmp:
        bench = Bench(tmp, sizes(args, FULL, QUICK), args.repeat)
        await bench.open()
        try:
            return [*await run_standard(bench, PLAN), await bench.workflow_overhead()]
        finally:
            await bench.close()


def main() -> int:
    args = arguments(__doc__).parse_args()
    print_header("DataFlow SQLite vs raw aiosqlite")
    imp = measure_import("python -c 'import dataflow'", "import dataflow", repeat=7, target=0.15)
    return report([imp, *asyncio.run(amain(args))], args.markdown)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "0")
    sys.exit(main())
