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

from harness import Result, print_header
from pymongo import AsyncMongoClient, UpdateOne
from workloads import ItemBench, Plan, arguments, make_rows, report, run_bench, sizes

from dataflow import DataFlow

DATABASE = "dataflow_bench"
RAW = "bench_raw_item"


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


PLAN = Plan(nodes=frozenset({"upsert"}))
QUICK = {"bulk": 5_000, "single": 200, "reads": 200, "lists": 20, "upsert": 5_000}


class Bench(ItemBench):
    def __init__(self, url: str, sizes: dict[str, int], repeat: int) -> None:
        super().__init__(DataFlow(url, name="bench_mongo"), "BenchItem", sizes, repeat)
        self.url = url
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        self.raw = self.client[self.db.adapter.database][RAW]  # type: ignore[attr-defined]

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
    full = {"bulk": args.bulk, "single": args.single, "reads": args.reads, "lists": args.lists,
            "upsert": args.bulk}
    return await run_bench(Bench(url, sizes(args, full, QUICK), args.repeat), PLAN)


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--bulk", type=int, default=100_000, help="rows of the bulk workloads")
    ap.add_argument("--lists", type=int, default=100, help="filtered lists (default 100)")
    ap.add_argument("--single", type=int, default=1_000, help="single inserts (default 1,000)")
    ap.add_argument("--reads", type=int, default=1_000, help="reads by id (default 1,000)")
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
    return report(results, args.markdown, table)


if __name__ == "__main__":
    sys.exit(main())
