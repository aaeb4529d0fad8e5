"""Streaming reads: ``express.stream`` vs the raw driver's cursor over the same rows, time and
peak RSS growth; ``express.list`` of the same rows for the memory comparison.

    .venv/bin/python bench/bench_stream.py --backend postgres [--rows 1000000] [--repeat 5]
    .venv/bin/python bench/bench_stream.py --backend sqlite
    .venv/bin/python bench/bench_stream.py --backend mysql

Each measured pass runs in a fresh interpreter (so peak RSS is that pass's own); the table is
loaded once beforehand. Raw: PostgreSQL, an asyncpg server-side cursor in a transaction
(``cursor.fetch(n)``) and ``dict(row)``; MySQL, an aiomysql ``SSCursor`` with ``fetchmany``
and a dict per row; SQLite, one aiosqlite cursor with ``fetchmany`` and a dict per row.
DataFlow decodes every value to its declared type (the raw side does not).
Ratio = raw time / DataFlow time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from harness import machine_note

from dataflow import DataFlow

COLUMNS = ("id", "name", "category", "price", "qty", "active", "created_at", "updated_at")


def url_for(backend: str, workdir: str) -> str:
    if backend == "postgres":
        return os.environ.get("DATAFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    if backend == "mysql":
        return os.environ.get("DATAFLOW_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
    return f"sqlite:///{workdir}/stream.db"


def declare(db: DataFlow) -> None:
    @db.model
    class StreamItem:
        name: str
        category: str
        price: float
        qty: int = 0
        active: bool = True


async def load(url: str, rows: int) -> None:
    db = DataFlow(url, name="bench_stream_load")
    declare(db)
    await db.drop_tables()
    await db.initialize()
    for start in range(0, rows, 100_000):
        await db.express.bulk_create("StreamItem", [
            {"name": f"item-{i}", "category": f"c{i % 20}", "price": (i % 1000) / 10.0,
             "qty": i % 97, "active": i % 3 != 0} for i in range(start, min(rows, start + 100_000))])
    await db.close()


async def drop(url: str) -> None:
    db = DataFlow(url, name="bench_stream_drop")
    declare(db)
    await db.drop_tables()
    await db.close()


async def one_pass(backend: str, url: str, side: str, batch: int) -> dict[str, Any]:
    """One timed pass in this (fresh) process: seconds, rows seen, peak RSS growth in MB."""
    db = DataFlow(url, name="bench_stream_pass")
    declare(db)
    await db.express.count("StreamItem")  # connect and migrate before the baseline
    raw: Any = None
    if side == "raw":
        raw = await open_raw(backend, url)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    seen = 0
    if side == "stream":
        async with db.express.stream("StreamItem", order_by="id", batch_size=batch) as rows:
            async for _ in rows:
                seen += 1
    elif side == "list":
        seen = len(await db.express.list("StreamItem", order_by="id"))
    else:
        seen = await raw_pass(backend, raw, batch)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await db.close()
    return {"seconds": elapsed, "rows": seen, "rss_mb": (peak - base) / 1024}


async def open_raw(backend: str, url: str) -> Any:
    if backend == "postgres":
        import asyncpg

        return await asyncpg.connect(url)
    if backend == "mysql":
        import aiomysql

        from dataflow.adapter import DatabaseURL

        u = DatabaseURL.parse(url)
        return await aiomysql.connect(host=u.host or "127.0.0.1", port=u.port or 3306,
                                      user=u.username or "root", password=u.password or "",
                                      db=u.database, autocommit=True)
    import aiosqlite

    return await aiosqlite.connect(url.split("///", 1)[1])


async def raw_pass(backend: str, conn: Any, batch: int) -> int:
    sql = f"SELECT {', '.join(COLUMNS)} FROM stream_item ORDER BY id"
    seen = 0
    if backend == "postgres":
        async with conn.transaction():
            cur = await conn.cursor(sql)
            while rows := await cur.fetch(batch):
                for r in rows:
                    _ = dict(r)
                    seen += 1
        return seen
    if backend == "mysql":
        import aiomysql

        async with conn.cursor(aiomysql.SSCursor) as cur:
            await cur.execute(sql)
            while rows := await cur.fetchmany(batch):
                for r in rows:
                    _ = dict(zip(COLUMNS, r, strict=True))
                    seen += 1
        return seen
    async with conn.execute(sql) as cur:
        while rows := await cur.fetchmany(batch):
            for r in rows:
                _ = dict(zip(COLUMNS, r, strict=True))
                seen += 1
    return seen


def run_pass(args: argparse.Namespace, url: str, side: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--backend", args.backend, "--pass", side,
                          "--url", url, "--batch", str(args.batch)],
                         check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("postgres", "sqlite", "mysql"), default="postgres")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--pass", dest="side", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        print(json.dumps(asyncio.run(one_pass(args.backend, args.url, args.side, args.batch))))
        return 0
    print(f"== streaming {args.rows:,} rows on {args.backend} ==  ({machine_note()})", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        url = url_for(args.backend, workdir)
        asyncio.run(load(url, args.rows))
        try:
            samples: dict[str, list[dict[str, Any]]] = {"stream": [], "raw": []}
            for _ in range(args.repeat):
                for side in ("stream", "raw"):
                    samples[side].append(run_pass(args, url, side))
            listed = run_pass(args, url, "list")
        finally:
            asyncio.run(drop(url))
    for side in ("stream", "raw"):
        assert all(s["rows"] == args.rows for s in samples[side]), samples[side]
    ours = [s["seconds"] for s in samples["stream"]]
    raw = [s["seconds"] for s in samples["raw"]]
    pairs = [r / o for o, r in zip(ours, raw, strict=True)]
    print("| workload | dataflow best / worst | raw best / worst | ratio best | ratio worst run "
          "| peak RSS growth |")
    print("|---|---|---|---|---|---|")
    print(f"| express.stream {args.rows:,} rows, batch_size={args.batch} | {min(ours):.2f} s / "
          f"{max(ours):.2f} s | {min(raw):.2f} s / {max(raw):.2f} s | {min(raw) / min(ours):.2f}x | "
          f"{min(pairs):.2f}x | {max(s['rss_mb'] for s in samples['stream']):.0f} MB "
          f"(raw {max(s['rss_mb'] for s in samples['raw']):.0f} MB) |")
    print(f"| express.list of the same rows (for memory) | {listed['seconds']:.2f} s | | | | "
          f"{listed['rss_mb']:.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
