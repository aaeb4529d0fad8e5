"""DataFlow on MongoDB vs raw PyMongo async, in the same run, on the same server.

    .venv/bin/python bench/bench_mongo.py                 # full sizes (100k bulk)
    .venv/bin/python bench/bench_mongo.py --quick         # smaller sizes
    .venv/bin/python bench/bench_mongo.py --markdown      # also print a table for RESULTS.md

The server is ``$DATAFLOW_MONGO_URL``; without it a ``secantusd-py`` test server (from the
``secantusdb`` package) is started on a free port with in-memory storage and stopped at the end.

Fairness rules for the raw baselines (one ``AsyncMongoClient``, default options):
  * the same input: both sides start from the same list of dicts and write the same fields,
    including ``created_at`` / ``updated_at``;
  * bulk insert is one ``insert_many`` (PyMongo batches it); single inserts are ``insert_one``;
  * reads by id are ``find_one({"_id": i})``; filtered lists are ``find(...).sort(...).limit(100)``
    returning the raw documents, no type conversion;
  * bulk upsert is one ordered ``bulk_write`` of ``UpdateOne(..., upsert=True)``.
DataFlow validates every value, keeps ids in a counters collection, writes bulk operations in a
transaction (all or nothing) and decodes documents back into typed records: that is the price
measured. Ratio = raw time / DataFlow time (>= 1.0: as fast as the raw driver).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import Result, machine_note, measure, print_header, print_table
from pymongo import AsyncMongoClient, UpdateOne

from dataflow import DataFlow
from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder

DATABASE = "dataflow_bench"
RAW = "bench_raw_item"


def make_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"name": f"item-{i}", "category": f"c{i % 20}", "price": (i % 1000) / 10.0,
         "qty": i % 97, "active": i % 3 != 0}
        for i in range(start, start + n)
    ]


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def raw_doc(r: dict[str, Any], ts: _dt.datetime) -> dict[str, Any]:
    return {**r, "created_at": ts, "updated_at": ts}


def start_server() -> tuple[str, subprocess.Popen[bytes] | None]:
    url = os.environ.get("DATAFLOW_MONGO_URL")
    if url:
        return url, None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = Path(sys.executable).with_name("secantusd-py")
    proc = subprocess.Popen([str(binary), "--host", "127.0.0.1", "--port", str(port),
                             "--storage-path", ":memory:"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(150):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.2)
    return f"mongodb://127.0.0.1:{port}/{DATABASE}?directConnection=true", proc


class Bench:
    def __init__(self, url: str, sizes: dict[str, int], repeat: int) -> None:
        self.url = url
        self.sizes = sizes
        self.repeat = repeat
        self.db = DataFlow(url, name="bench_mongo")

        @self.db.model
        class BenchItem:
            name: str
            category: str
            price: float
            qty: int = 0
            active: bool = True

        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        self.raw = self.client[self.db.adapter.database][RAW]  # type: ignore[attr-defined]
        self.runtime = AsyncLocalRuntime()

    async def open(self) -> None:
        await self.db.drop_tables()
        await self.db.initialize()
        await self.raw.drop()

    async def close(self) -> None:
        await self.db.drop_tables()
        await self.raw.drop()
        await self.db.close()
        await self.client.close()

    async def reset(self, keep: int = 0) -> None:
        await self.db.drop_tables()
        await self.db.initialize()
        await self.raw.drop()
        if keep:
            rows = make_rows(keep)
            await self.db.express.bulk_create("BenchItem", rows)
            ts = now()
            await self.raw.insert_many([{"_id": i + 1, **raw_doc(r, ts)} for i, r in enumerate(rows)])

    # --- raw baselines -------------------------------------------------------------------
    async def raw_bulk(self, rows: list[dict[str, Any]]) -> None:
        ts = now()
        await self.raw.insert_many([raw_doc(r, ts) for r in rows])

    async def raw_single_inserts(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            ts = now()
            await self.raw.insert_one(raw_doc(r, ts))

    async def raw_reads(self, ids: list[int]) -> None:
        for i in ids:
            await self.raw.find_one({"_id": i})

    async def raw_filtered(self, times: int) -> None:
        for k in range(times):
            cursor = self.raw.find({"category": f"c{k % 20}", "price": {"$gte": 50.0},
                                    "active": True}).sort([("price", -1), ("name", 1)]).limit(100)
            _ = [d async for d in cursor]

    async def raw_upsert(self, rows: list[dict[str, Any]]) -> None:
        ts = now()
        ops = [UpdateOne({"_id": r["id"]}, {"$set": {k: v for k, v in r.items() if k != "id"} | {
            "updated_at": ts}, "$setOnInsert": {"created_at": ts}}, upsert=True) for r in rows]
        await self.raw.bulk_write(ops, ordered=True)

    # --- DataFlow --------------------------------------------------------------------------
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

    async def _run_wf(self, node: str, params: dict[str, Any]) -> dict[str, Any]:
        wf = WorkflowBuilder().add_node(node, "op", params).build()
        results, _ = await self.runtime.execute_workflow_async(wf)
        out: dict[str, Any] = results["op"]
        return out

    async def run(self) -> list[Result]:
        s, rep, db = self.sizes, self.repeat, self.db
        out: list[Result] = []
        bulk_rows = make_rows(s["bulk"])
        out.append(await measure(
            f"bulk insert {s['bulk']:,} (express)", lambda: db.express.bulk_create("BenchItem", bulk_rows),
            lambda: self.raw_bulk(bulk_rows), rep, setup=self.reset, target=0.8))
        single = make_rows(s["single"])
        out.append(await measure(
            f"{s['single']:,} single inserts (express)", lambda: self.ours_single_inserts(single),
            lambda: self.raw_single_inserts(single), rep, setup=self.reset, target=0.8))
        table_rows = max(s["bulk"], s["reads"])
        await self.reset(keep=table_rows)
        ids = [(i * 7919) % table_rows + 1 for i in range(s["reads"])]
        out.append(await measure(f"{s['reads']:,} reads by id (express)", lambda: self.ours_reads(ids),
                                 lambda: self.raw_reads(ids), rep, target=0.8))
        out.append(await measure(
            f"{s['lists']} filtered lists, 3 ops + order_by, limit 100 (express)",
            lambda: self.ours_filtered(s["lists"]), lambda: self.raw_filtered(s["lists"]), rep,
            target=0.8))
        n = s["upsert"]
        upsert_rows = [{"id": i + 1 + n // 2, **r} for i, r in enumerate(make_rows(n, 7))]
        counts: dict[str, Any] = {}

        async def ours_upsert() -> None:
            counts.update(await db.express.bulk_upsert("BenchItem", upsert_rows))

        out.append(await measure(
            f"bulk upsert {n:,} (50% new) (express)", ours_upsert, lambda: self.raw_upsert(upsert_rows),
            rep, setup=lambda: self.reset(keep=n), target=0.8))
        assert counts["inserted"] == n - n // 2 and counts["updated"] == n // 2, counts
        out.append(await measure(
            f"bulk upsert {n:,} (50% new) (node)",
            lambda: self._run_wf("BenchItemBulkUpsertNode", {"data": upsert_rows}),
            lambda: self.raw_upsert(upsert_rows), rep, setup=lambda: self.reset(keep=n), target=0.8))
        return out


def table(results: list[Result]) -> str:
    """Markdown: best-of-N times, the best ratio and the worst run's ratio (each run pairs one
    DataFlow timing with the raw timing of the same repeat)."""
    lines = ["| workload | dataflow (best) | raw (best) | ratio best | ratio worst run | target |",
             "|---|---|---|---|---|---|"]
    for r in results:
        cells = r.row()
        pairs = [raw / ours for ours, raw in zip(r.samples_ours, r.samples_raw, strict=False)]
        worst = f"{min(pairs):.2f}x" if pairs else ""
        lines.append(f"| {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {worst} | {cells[4]} |")
    return "\n".join(lines)


async def amain(url: str, args: argparse.Namespace) -> list[Result]:
    if args.quick:
        sizes = {"bulk": 5_000, "single": 200, "reads": 200, "lists": 20, "upsert": 5_000}
    else:
        sizes = {"bulk": args.bulk, "single": args.single, "reads": args.reads, "lists": args.lists,
                 "upsert": args.bulk}
    bench = Bench(url, sizes, args.repeat)
    await bench.open()
    try:
        return await bench.run()
    finally:
        await bench.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke check)")
    ap.add_argument("--bulk", type=int, default=100_000, help="rows of the bulk workloads")
    ap.add_argument("--lists", type=int, default=100, help="filtered lists (default 100)")
    ap.add_argument("--single", type=int, default=1_000, help="single inserts (default 1,000)")
    ap.add_argument("--reads", type=int, default=1_000, help="reads by id (default 1,000)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per side (default 3)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = ap.parse_args()
    url, proc = start_server()
    server = "external server" if proc is None else "secantusd-py test server"
    print_header(f"DataFlow MongoDB vs raw PyMongo async ({server})")
    try:
        results = asyncio.run(amain(url, args))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    print()
    print_table(results)
    if args.markdown:
        print(f"\n{time.strftime('%Y-%m-%d')} -- {machine_note()}\n")
        print(table(results))
    failed = [r.name for r in results if r.passed is False]
    if failed:
        print(f"\nbelow target: {', '.join(failed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
