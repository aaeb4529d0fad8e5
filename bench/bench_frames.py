"""``db.frames`` vs the raw driver, in the same run: validated frame writes and frame reads.

    .venv/bin/python bench/bench_frames.py                 # 1,000,000 rows, PostgreSQL and SQLite
    .venv/bin/python bench/bench_frames.py --n 100000      # a quicker run
    .venv/bin/python bench/bench_frames.py --backend sqlite --markdown

The frame has 8 mixed columns (2 text, int, float, bool, datetime, date, int). Workloads:

  * validation alone: the column contract and every row rule (``check_rows``), no database;
    reported as values/s (target >= 5,000,000);
  * validated create: ``db.frames.create(model, frame)`` vs the raw driver's fastest load of the
    same frame with the same columns (the frame's plus ``created_at`` / ``updated_at``):
    ``copy_records_to_table`` (binary COPY) on PostgreSQL, ``executemany`` in one transaction on
    SQLite; both start from the Polars frame (target >= 0.7x);
  * read: ``db.frames.read(model, batch_size=...)`` (every row, typed columns) vs one raw fetch of
    the same columns + ``pl.DataFrame`` construction (target >= 0.8x);
  * peak memory of the validated create, measured in a fresh process: growth of the peak RSS
    (``VmHWM``, reset just before the call) over the frame's ``estimated_size``; target <= 3x.

The server is ``$DATAFLOW_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test);
SQLite runs on a WAL file database in a temporary directory, with the same pragmas on both sides.
Ratio = raw time / DataFlow time: >= 1.0 means DataFlow is as fast as the raw driver.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import enum
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import polars as pl
from harness import Result, markdown_table, measure, print_header, print_table

from dataflow import DataFlow, field
from dataflow.frames.contract import align
from dataflow.frames.rules import check_rows

PG_URL = os.environ.get("DATAFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("DATAFLOW_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
FRAME_COLUMNS = ("name", "category", "qty", "price", "active", "placed", "due", "rank")
WRITE_COLUMNS = (*FRAME_COLUMNS, "created_at", "updated_at")


def make_frame(n: int) -> pl.DataFrame:
    base = _dt.datetime(2024, 1, 1, tzinfo=_dt.UTC)
    i = pl.int_range(0, n, eager=True)
    return pl.DataFrame({
        "name": ("item-" + i.cast(pl.String)),
        "category": ("c" + (i % 20).cast(pl.String)),
        "qty": i % 97,
        "price": (i % 1000).cast(pl.Float64) / 10.0,
        "active": (i % 3) != 0,
        "placed": pl.datetime_range(base, base + _dt.timedelta(seconds=n - 1), "1s", eager=True,
                                    time_zone="UTC").dt.cast_time_unit("us"),
        "due": pl.Series([_dt.date(2024, 1, 1)] * n) + (i % 365).cast(pl.Duration("ms")) * 86_400_000,
        "rank": i * 7,
    })


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"
    BRONZE = "bronze"


def make_all_types(n: int) -> pl.DataFrame:
    """9 columns, one per coerced type: int, float, Decimal, date, datetime, UUID, bool, Enum,
    JSON (Decimal, UUID, Enum and JSON are text even in the "typed" frame: their canonical
    frame form)."""
    base = _dt.datetime(2024, 1, 1, tzinfo=_dt.UTC)
    i = pl.int_range(0, n, eager=True)
    return pl.DataFrame({
        "qty": i % 97,
        "price": (i % 1000).cast(pl.Float64) / 10.0,
        "amount": (i % 100_000).cast(pl.String) + "." + (i % 100).cast(pl.String).str.zfill(2),
        "due": pl.Series([_dt.date(2024, 1, 1)] * n) + (i % 365).cast(pl.Duration("ms")) * 86_400_000,
        "placed": pl.datetime_range(base, base + _dt.timedelta(seconds=n - 1), "1s", eager=True,
                                    time_zone="UTC").dt.cast_time_unit("us"),
        "ref": pl.Series([str(uuid.UUID(int=k * 2_654_435_761)) for k in range(n)]),
        "active": (i % 3) != 0,
        "tier": pl.Series(["gold", "silver", "bronze"]).gather(i % 3),
        "meta": '{"k": ' + (i % 50).cast(pl.String) + ', "tags": ["a", "b"]}',
    })


def declare_all_types(db: DataFlow) -> None:
    @db.model
    class BenchFrameAllTypes:
        qty: int
        price: float
        amount: Decimal
        due: _dt.date
        placed: _dt.datetime
        ref: uuid.UUID
        active: bool
        tier: Tier
        meta: dict[str, Any]


def declare(db: DataFlow) -> None:
    @db.model
    class BenchFrameItem:
        name: str = field(max_length=64)
        category: str
        qty: int
        price: float
        active: bool
        placed: _dt.datetime
        due: _dt.date
        rank: int


# --- PostgreSQL ----------------------------------------------------------------------------------
async def bench_postgres(frame: pl.DataFrame, repeat: int, read_batch: int) -> list[Result]:
    db = DataFlow(PG_URL, name="bench_frames_pg")
    declare(db)
    await db.initialize()
    await db.drop_tables()
    await db.initialize()
    raw_table = "bench_frames_raw"
    conn = await asyncpg.connect(PG_URL)
    ddl = (await conn.fetchval(
        "SELECT 'CREATE TABLE IF NOT EXISTS bench_frames_raw (LIKE bench_frame_item INCLUDING ALL)'"))
    await conn.execute("DROP TABLE IF EXISTS bench_frames_raw")
    await conn.execute(ddl)
    n = frame.height
    results: list[Result] = []

    async def reset() -> None:
        await conn.execute("TRUNCATE bench_frame_item, bench_frames_raw RESTART IDENTITY")

    async def ours_create() -> None:
        res = await db.frames.create("BenchFrameItem", frame)
        assert res.status == "ok" and res.written["BenchFrameItem"] == n

    async def raw_create() -> None:
        now = _dt.datetime.now(_dt.UTC)
        stamped = frame.with_columns(pl.lit(now).alias("created_at"),
                                     pl.lit(now).alias("updated_at"))
        async with conn.transaction():
            await conn.copy_records_to_table(raw_table, records=stamped.iter_rows(),
                                             columns=list(WRITE_COLUMNS))

    results.append(await measure(f"validated create {n:,} rows x 8 columns (PostgreSQL)",
                                 ours_create, raw_create, repeat, setup=reset, target=0.7,
                                 note="raw: binary COPY of the frame's rows"))
    await reset()
    await ours_create()
    await raw_create()
    cols = ", ".join(f'"{c}"' for c in ("id", *WRITE_COLUMNS))

    async def ours_read() -> None:
        got, _ = await db.frames.read("BenchFrameItem", batch_size=read_batch)
        assert got.height == n

    async def raw_read() -> None:
        rows = await conn.fetch(f"SELECT {cols} FROM {raw_table} ORDER BY id")
        got = pl.DataFrame([tuple(r) for r in rows], schema=["id", *WRITE_COLUMNS], orient="row")
        assert got.height == n

    results.append(await measure(f"read {n:,} rows into a frame (PostgreSQL)", ours_read,
                                 raw_read, repeat, target=0.8,
                                 note=f"batch_size={read_batch:,}; raw: fetch + pl.DataFrame"))
    adbc = _adbc("adbc_driver_postgresql.dbapi", PG_URL)
    if adbc is not None:
        def adbc_fetch() -> pl.DataFrame:
            with adbc.cursor() as cur:
                cur.execute(f"SELECT {cols} FROM {raw_table} ORDER BY id")
                got = pl.from_arrow(cur.fetch_arrow_table())
            assert isinstance(got, pl.DataFrame)
            return got

        async def adbc_read() -> None:
            assert (await asyncio.to_thread(adbc_fetch)).height == n

        results.append(await measure(f"read {n:,} rows into a frame (PostgreSQL, vs ADBC)",
                                     ours_read, adbc_read, repeat, target=None,
                                     note="raw: adbc-driver-postgresql fetch_arrow_table + "
                                     "pl.from_arrow, on a worker thread"))

        def adbc_load() -> None:
            now = _dt.datetime.now(_dt.UTC)
            stamped = frame.with_columns(pl.lit(now).alias("created_at"),
                                         pl.lit(now).alias("updated_at"))
            with adbc.cursor() as cur:
                cur.adbc_ingest(raw_table, stamped.to_arrow(), mode="append")

        async def adbc_create() -> None:
            await asyncio.to_thread(adbc_load)

        results.append(await measure(
            f"validated create {n:,} rows x 8 columns (PostgreSQL, vs ADBC)", ours_create,
            adbc_create, repeat, setup=reset, target=None,
            note="raw: adbc-driver-postgresql adbc_ingest of the frame's Arrow table, "
            "unvalidated"))
        adbc.close()
    await conn.execute("DROP TABLE IF EXISTS bench_frames_raw")
    await conn.close()
    await db.drop_tables()
    await db.close()
    return results


# --- SQLite --------------------------------------------------------------------------------------
async def bench_sqlite(frame: pl.DataFrame, repeat: int, read_batch: int, workdir: Path
                       ) -> list[Result]:
    path = workdir / "frames.db"
    db = DataFlow(f"sqlite:///{path}", name="bench_frames_sqlite")
    declare(db)
    await db.initialize()
    raw_path = workdir / "raw.db"
    raw = sqlite3.connect(raw_path, isolation_level=None, check_same_thread=False)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    src = sqlite3.connect(path)
    ddl = src.execute("SELECT sql FROM sqlite_master WHERE name = 'bench_frame_item'").fetchone()[0]
    src.close()
    raw.execute(ddl.replace("bench_frame_item", "bench_frames_raw", 1))
    n = frame.height
    results: list[Result] = []
    marks = ", ".join("?" for _ in WRITE_COLUMNS)
    insert = f"INSERT INTO bench_frames_raw ({', '.join(WRITE_COLUMNS)}) VALUES ({marks})"

    async def reset() -> None:
        await db.express.bulk_delete("BenchFrameItem", confirmed=True)
        raw.execute("DELETE FROM bench_frames_raw")

    async def ours_create() -> None:
        res = await db.frames.create("BenchFrameItem", frame)
        assert res.status == "ok" and res.written["BenchFrameItem"] == n

    def raw_load() -> None:
        now = _dt.datetime.now(_dt.UTC).isoformat(sep=" ")
        stamped = frame.with_columns(
            pl.col("placed").dt.strftime("%Y-%m-%d %H:%M:%S%.6f+00:00"),
            pl.col("due").cast(pl.String), pl.lit(now).alias("created_at"),
            pl.lit(now).alias("updated_at"))
        raw.execute("BEGIN")
        raw.executemany(insert, stamped.iter_rows())
        raw.execute("COMMIT")

    async def raw_create() -> None:
        await asyncio.to_thread(raw_load)  # as aiosqlite runs it: on a worker thread

    results.append(await measure(f"validated create {n:,} rows x 8 columns (SQLite)",
                                 ours_create, raw_create, repeat, setup=reset, target=0.7,
                                 note="raw: executemany of the frame's rows, one transaction"))
    await reset()
    await ours_create()
    await raw_create()
    cols = ", ".join(("id", *WRITE_COLUMNS))

    def raw_fetch() -> pl.DataFrame:
        rows = raw.execute(f"SELECT {cols} FROM bench_frames_raw ORDER BY id").fetchall()
        return pl.DataFrame(rows, schema=["id", *WRITE_COLUMNS], orient="row")

    async def ours_read() -> None:
        got, _ = await db.frames.read("BenchFrameItem", batch_size=read_batch)
        assert got.height == n

    async def raw_read() -> None:
        got = await asyncio.to_thread(raw_fetch)
        assert got.height == n

    results.append(await measure(f"read {n:,} rows into a frame (SQLite)", ours_read, raw_read,
                                 repeat, target=0.8,
                                 note=f"batch_size={read_batch:,}; raw: fetchall + pl.DataFrame "
                                 "(text dates left as text)"))
    adbc = _adbc("adbc_driver_sqlite.dbapi", str(raw_path))
    if adbc is not None:
        def adbc_fetch() -> pl.DataFrame:
            with adbc.cursor() as cur:
                cur.execute(f"SELECT {cols} FROM bench_frames_raw ORDER BY id")
                got = pl.from_arrow(cur.fetch_arrow_table())
            assert isinstance(got, pl.DataFrame)
            return got

        async def adbc_read() -> None:
            assert (await asyncio.to_thread(adbc_fetch)).height == n

        results.append(await measure(f"read {n:,} rows into a frame (SQLite, vs ADBC)",
                                     ours_read, adbc_read, repeat, target=None,
                                     note="raw: adbc-driver-sqlite fetch_arrow_table + "
                                     "pl.from_arrow (text dates left as text)"))

        def adbc_load() -> None:
            now = _dt.datetime.now(_dt.UTC).isoformat(sep=" ")
            stamped = frame.with_columns(
                pl.col("placed").dt.strftime("%Y-%m-%d %H:%M:%S%.6f+00:00"),
                pl.col("due").cast(pl.String), pl.lit(now).alias("created_at"),
                pl.lit(now).alias("updated_at"))
            with adbc.cursor() as cur:
                cur.adbc_ingest("bench_frames_raw", stamped.to_arrow(), mode="append")

        async def adbc_create() -> None:
            await asyncio.to_thread(adbc_load)

        results.append(await measure(
            f"validated create {n:,} rows x 8 columns (SQLite, vs ADBC)", ours_create,
            adbc_create, repeat, setup=reset, target=None,
            note="raw: adbc-driver-sqlite adbc_ingest of the frame's Arrow table, unvalidated"))
        adbc.close()
    raw.close()
    await db.close()
    return results


def _adbc(module: str, uri: str) -> Any:
    """An ADBC DB-API connection, or None (with a note) when the driver is not installed."""
    import importlib

    try:
        dbapi = importlib.import_module(module)
    except ImportError:
        print(f"  ({module} not installed: its comparison is skipped)", flush=True)
        return None
    # autocommit: a read must not leave a transaction open (its lock would hold TRUNCATE)
    return dbapi.connect(uri, autocommit=True)


# --- MariaDB / MySQL (reads) ---------------------------------------------------------------------
async def bench_mysql_read(frame: pl.DataFrame, repeat: int, read_batch: int) -> list[Result]:
    import aiomysql

    from dataflow.adapter import DatabaseURL

    db = DataFlow(MYSQL_URL, name="bench_frames_mysql")
    declare(db)
    await db.initialize()
    await db.drop_tables()
    await db.initialize()
    n = frame.height
    assert (await db.frames.create("BenchFrameItem", frame)).status == "ok"
    url = DatabaseURL.parse(MYSQL_URL)
    conn = await aiomysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306,
                                  user=url.username or "root", password=url.password or "",
                                  db=url.database)
    cols = ", ".join(f"`{c}`" for c in ("id", *WRITE_COLUMNS))

    async def ours_read() -> None:
        got, _ = await db.frames.read("BenchFrameItem", batch_size=read_batch)
        assert got.height == n

    async def raw_read() -> None:
        async with conn.cursor() as cur:
            await cur.execute(f"SELECT {cols} FROM bench_frame_item ORDER BY id")
            rows = await cur.fetchall()
        got = pl.DataFrame(rows, schema=["id", *WRITE_COLUMNS], orient="row")
        assert got.height == n

    result = await measure(f"read {n:,} rows into a frame (MariaDB)", ours_read, raw_read,
                           repeat, target=0.8,
                           note=f"batch_size={read_batch:,}; raw: aiomysql fetchall + pl.DataFrame")
    conn.close()

    await db.drop_tables()
    await db.close()
    return [result]


# --- validation alone and memory -------------------------------------------------------------------
def bench_validation(frame: pl.DataFrame, repeat: int, label: str = "typed",
                     model: str = "BenchFrameItem") -> Result:
    db = DataFlow("sqlite://:memory:", name=f"bench_frames_rules_{label}")
    declare(db)
    declare_all_types(db)
    spec = db.get_model(model)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        aligned = align(spec, frame, op="create", missing="default", extra="drop", tenant=None)
        checked = check_rows(spec, aligned.frame, nul_in_text=True)
        best = min(best, time.perf_counter() - t0)
        assert checked.errors.height == 0
    values = frame.height * frame.width
    rate = values / best
    res = Result(f"validation alone, {frame.height:,} rows x {frame.width} columns ({label})", best,
                 note=f"{rate / 1e6:.1f} M values/s (target >= 5 M values/s)")
    res.target = None
    print(f"  {res.name}: {best * 1000:.1f} ms = {rate / 1e6:.1f} M values/s", flush=True)
    return res


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """The same frame with every column as text (as read from a CSV without type inference);
    aware timestamps in ISO 8601 with an explicit UTC offset."""
    stamps = [c for c, d in frame.schema.items() if isinstance(d, pl.Datetime)]
    return frame.with_columns(
        *[pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00") for c in stamps],
        pl.exclude(stamps).cast(pl.String))


def bench_per_column(n: int, repeat: int) -> list[Result]:
    """Validation alone, one column at a time (each of the 9-type frame's columns and the
    8-column frame's text columns), typed and as text: where the time goes per type."""
    db = DataFlow("sqlite://:memory:", name="bench_frames_rules_columns")
    declare(db)
    declare_all_types(db)
    cases: list[tuple[str, str, pl.DataFrame]] = []
    every = make_all_types(n)
    items = make_frame(n).select("name", "category")
    for model, frame in (("BenchFrameAllTypes", every), ("BenchFrameItem", items)):
        spec = db.get_model(model)
        text = as_text(frame)
        for column in frame.columns:
            kind = spec.fields[column].ltype.value
            cases.append((model, f"{column} ({kind}, {frame.schema[column]})",
                          frame.select(column)))
            if text.schema[column] != frame.schema[column]:
                cases.append((model, f"{column} ({kind}, as text)", text.select(column)))
    out = []
    for model, label, one in cases:
        spec = db.get_model(model)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            checked = check_rows(spec, one, nul_in_text=True)  # (one column: no contract)
            best = min(best, time.perf_counter() - t0)
            assert checked.errors.height == 0, checked.errors.head()
        rate = one.height / best
        res = Result(f"validation alone, {one.height:,} values of {label}", best,
                     note=f"{rate / 1e6:.1f} M values/s")
        print(f"  {label:<40} {best * 1000:9.1f} ms  {rate / 1e6:8.1f} M values/s", flush=True)
        out.append(res)
    return out


def _rss(key: str) -> int:
    """``VmRSS`` / ``VmHWM`` (peak) of this process, in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_probe(backend: str, n: int, workdir: str) -> dict[str, float]:
    """Run in a fresh process: the peak RSS growth of one validated create."""
    frame = make_frame(n)
    size = frame.estimated_size()
    url = PG_URL if backend == "postgres" else f"sqlite:///{workdir}/memory.db"

    async def run() -> float:
        db = DataFlow(url, name="bench_frames_memory")
        declare(db)
        await db.initialize()
        await db.drop_tables()
        await db.initialize()
        await db.express.count("BenchFrameItem")  # pools, codecs and statements warmed up
        before = _rss("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        res = await db.frames.create("BenchFrameItem", frame)
        peak = _rss("VmHWM")
        assert res.status == "ok"
        await db.drop_tables()
        await db.close()
        return float(peak - before)

    growth = asyncio.run(run())
    return {"frame_bytes": float(size), "peak_growth_bytes": growth}


def bench_memory(backend: str, n: int, workdir: Path) -> Result:
    out = subprocess.run([sys.executable, __file__, "--memory-probe", backend, "--n", str(n),
                          "--workdir", str(workdir)], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = data["peak_growth_bytes"] / data["frame_bytes"]
    label = "PostgreSQL" if backend == "postgres" else "SQLite"
    res = Result(f"peak memory of validated create {n:,} rows ({label})", ratio, unit="x",
                 note=f"frame {data['frame_bytes'] / 2**20:.0f} MiB, peak RSS growth "
                 f"{data['peak_growth_bytes'] / 2**20:.0f} MiB (target <= 3x)")
    print(f"  {res.name}: {ratio:.2f}x the frame ({res.note})", flush=True)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--read-batch", type=int, default=100_000)
    parser.add_argument("--backend", choices=("postgres", "sqlite", "mysql", "both", "all"),
                        default="both")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--only", choices=("validation", "memory"),
                        help="validation: validation alone (no database); memory: the peak "
                        "memory probes only")
    parser.add_argument("--per-column", action="store_true",
                        help="with validation: the time per column type, typed and as text")
    parser.add_argument("--memory-probe", choices=("postgres", "sqlite"))
    parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, args.n, args.workdir)))
        return
    print_header(f"db.frames, {args.n:,} rows")
    frame = make_frame(args.n)
    print(f"  frame: {frame.height:,} rows x {frame.width} columns, "
          f"{frame.estimated_size() / 2**20:.0f} MiB", flush=True)
    backends = {"both": ("postgres", "sqlite"), "all": ("postgres", "sqlite", "mysql")
                }.get(args.backend, (args.backend,))
    results: list[Result] = []
    if args.only != "memory":
        every = make_all_types(args.n)
        results += [bench_validation(frame, args.repeat),
                    bench_validation(as_text(frame), args.repeat, "all text, coerced"),
                    bench_validation(every, args.repeat, "9 types", "BenchFrameAllTypes"),
                    bench_validation(as_text(every), args.repeat,
                                     "9 types, all text, coerced", "BenchFrameAllTypes")]
        del every
        if args.per_column:
            results += bench_per_column(args.n, args.repeat)
    if args.only == "validation":
        for r in results:
            print(f"- {r.name}: {r.ours * 1000:.1f} ms, {r.note}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for backend in backends:
            if args.only == "memory":
                if backend != "mysql":
                    results.append(bench_memory(backend, args.n, work))
                continue
            if backend == "postgres":
                results += asyncio.run(bench_postgres(frame, args.repeat, args.read_batch))
            elif backend == "mysql":
                results += asyncio.run(bench_mysql_read(frame, args.repeat, args.read_batch))
                continue
            else:
                results += asyncio.run(bench_sqlite(frame, args.repeat, args.read_batch, work))
            results.append(bench_memory(backend, args.n, work))
    print_table([r for r in results if r.raw is not None])
    if args.markdown:
        print(markdown_table([r for r in results if r.raw is not None]))
        for r in results:
            if r.raw is None:
                print(f"- {r.name}: {r.note}")


if __name__ == "__main__":
    main()
