"""Single operations and bulk update/delete by filter against the physical limit: the raw
driver on ONE persistent connection (and, for context, a pooled raw connection per statement).

    .venv/bin/python bench/bench_single.py --backend postgres [--ops 1000] [--repeat 5]
    .venv/bin/python bench/bench_single.py --backend sqlite
    .venv/bin/python bench/bench_single.py --backend mysql

Workloads (both sides on identical tables built from DataFlow's DDL, the same rows): ``--ops``
creates with an auto id, creates with an explicit id, reads by id, updates of one field by id,
deletes by id; bulk updates and bulk deletes by filter over 100,000 rows (ten statements a
run, one per category, ~3,300 rows each). Raw
single writes return the stored row where DataFlow does (``RETURNING``; on MySQL the INSERT
alone, as DataFlow's create is one INSERT there). Each run of explicit-id creates takes a fresh
range of ids on both sides (reusing the keys a setup has just deleted would make whichever side
runs first insert over not-yet-purged index entries). Every workload runs once on each side
untimed (warm-up), then ``--repeat`` interleaved timed runs. Ratio = raw time / DataFlow time;
the table gives the best and the worst ratio of the interleaved runs.

Updates by id on MySQL/MariaDB: there is no ``UPDATE ... RETURNING``, so the raw work that gives
a caller what DataFlow's update returns -- the row as this update left it, not as a concurrent
writer changed it since -- is the UPDATE and a SELECT of the row in one transaction. The target
line, "updates by id", sends that as one round trip (``START TRANSACTION; UPDATE ...; SELECT
...; COMMIT``, the fastest way a raw user can write it); "(raw: BEGIN, UPDATE, SELECT, COMMIT)"
is the same work in four round trips, and "(raw: UPDATE alone, no row back)" is context only
(less work than DataFlow's update: no target).

What each side does, where it is not the same work: a DataFlow create with an explicit id also
moves the key's identity sequence past that id (PostgreSQL: one more column of the same
INSERT's RETURNING list, a ``setval`` when the id is beyond the sequence; MySQL and SQLite need
nothing) so later generated ids do not collide; the raw INSERT leaves the sequence where it is,
which a program mixing explicit and generated ids could not do (PostgreSQL adds a line whose
raw INSERT moves the sequence the same way). Deletes by id are the same work on both sides:
neither returns the deleted row (``express.delete`` answers True or False from the row count),
and bulk delete and bulk update by filter are one statement each with the row count back.
DataFlow's side also validates every input, sets ``created_at`` / ``updated_at`` and decodes
each returned row to the declared types; the raw side binds the row as given with two
timestamps of its own, and turns the returned record into a dict.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import os
import sys
import tempfile
import time
from typing import Any

from harness import Result, machine_note, print_header
from harness import measure as _measure

from dataflow import DataFlow

COLS = ("name", "category", "price", "qty", "active", "created_at", "updated_at")


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"name": f"item-{i}", "category": f"c{i % 20}", "price": (i % 1000) / 10.0,
             "qty": i % 97, "active": i % 3 != 0} for i in range(start, start + n)]


async def measure(*args: Any, **kwargs: Any) -> Result:
    """:func:`harness.measure` with one untimed run of each side first: the first reads of
    freshly loaded pages write their visibility hints, and the first statements warm the
    server's and the driver's caches -- on neither side part of the per-operation cost."""
    return await _measure(*args, warmup=1, **kwargs)


class RawSide:
    """The raw statements of one backend on one connection (``pooled``: a pool per statement)."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        self.conn: Any = None
        self.pool: Any = None
        mark = {"postgres": "$", "mysql": "%s", "sqlite": "?"}[backend]
        self.q = '"' if backend != "mysql" else "`"
        t = f"{self.q}raw_single_item{self.q}"
        self.table = t

        def m(i: int) -> str:
            return f"${i}" if mark == "$" else mark

        cols = ", ".join(COLS)
        marks = ", ".join(m(i + 1) for i in range(len(COLS)))
        ret = f" RETURNING id, {cols}" if backend != "mysql" else ""
        self.insert = f"INSERT INTO {t} ({cols}) VALUES ({marks}){ret}"
        marks_id = ", ".join(m(i + 1) for i in range(len(COLS) + 1))
        self.insert_id = f"INSERT INTO {t} (id, {cols}) VALUES ({marks_id}){ret}"
        self.read = f"SELECT id, {cols} FROM {t} WHERE id = {m(1)}"
        upd_ret = f" RETURNING id, {cols}" if backend != "mysql" else ""
        self.update = f"UPDATE {t} SET qty = {m(1)}, updated_at = {m(2)} WHERE id = {m(3)}{upd_ret}"
        self.delete = f"DELETE FROM {t} WHERE id = {m(1)}"
        # MySQL: the UPDATE and the read-back of the row, one transaction, one round trip
        self.update_read = f"START TRANSACTION; {self.update}; {self.read}; COMMIT"
        self.bulk_update = (f"UPDATE {t} SET qty = {m(1)}, updated_at = {m(2)} "
                            f"WHERE category = {m(3)} AND active = {m(4)}")
        self.bulk_delete = f"DELETE FROM {t} WHERE category = {m(1)} AND active = {m(2)}"

    async def open(self) -> None:
        if self.backend == "postgres":
            import asyncpg

            self.conn = await asyncpg.connect(self.url)
            self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4)
        elif self.backend == "mysql":
            import aiomysql

            from dataflow.adapter import DatabaseURL

            u = DatabaseURL.parse(self.url)
            from pymysql.constants import CLIENT  # type: ignore[import-untyped]

            kw = dict(host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
                      password=u.password or "", db=u.database, autocommit=True,
                      client_flag=CLIENT.FOUND_ROWS | CLIENT.MULTI_STATEMENTS)
            self.conn = await aiomysql.connect(**kw)
            self.pool = await aiomysql.create_pool(minsize=1, maxsize=4, **kw)
        else:
            import aiosqlite

            self.conn = await aiosqlite.connect(self.url, isolation_level=None)
            for p in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"):
                await self.conn.execute(p)

    async def close(self) -> None:
        if self.backend == "postgres":
            await self.conn.close()
            await self.pool.close()
        elif self.backend == "mysql":
            self.conn.close()
            self.pool.close()
            await self.pool.wait_closed()
        else:
            await self.conn.close()

    async def one(self, sql: str, params: tuple[Any, ...], *, pooled: bool = False) -> Any:
        """One statement; the first row as a dict when it returns rows."""
        if self.backend == "postgres":
            if pooled:
                async with self.pool.acquire() as c:
                    row = await c.fetchrow(sql, *params)
            else:
                row = await self.conn.fetchrow(sql, *params)
            return None if row is None else dict(row)
        if self.backend == "mysql":
            if pooled:
                async with self.pool.acquire() as c, c.cursor() as cur:
                    await cur.execute(sql, params)
                    return await cur.fetchone() if cur.description else None
            async with self.conn.cursor() as cur:
                await cur.execute(sql, params)
                row = await cur.fetchone() if cur.description else None
            return row
        async with self.conn.execute(sql, params) as cur:
            row = await cur.fetchone()
            if row is not None and cur.description:
                return dict(zip([d[0] for d in cur.description], row, strict=True))
        return None

    async def update_read_one_trip(self, params: tuple[Any, ...]) -> Any:
        """MySQL: ``START TRANSACTION; UPDATE; SELECT; COMMIT`` in one round trip; the row."""
        async with self.conn.cursor() as cur:
            await cur.execute(self.update_read, (*params, params[-1]))
            await cur.nextset()  # the UPDATE's result
            await cur.nextset()  # the SELECT's
            row = await cur.fetchone()
            await cur.nextset()  # COMMIT's
        return row

    async def update_read_four_trips(self, params: tuple[Any, ...]) -> Any:
        """MySQL: BEGIN, UPDATE, SELECT, COMMIT, one round trip each; the row."""
        await self.conn.begin()
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(self.update, params)
                await cur.execute(self.read, (params[-1],))
                row = await cur.fetchone()
        except BaseException:
            await self.conn.rollback()
            raise
        await self.conn.commit()
        return row

    async def ddl(self, sql: str) -> None:
        if self.backend == "mysql":
            async with self.conn.cursor() as cur:
                await cur.execute(sql)
        elif self.backend == "postgres":
            await self.conn.execute(sql)
        else:
            await self.conn.execute(sql)

    def ts(self) -> Any:
        now = _dt.datetime.now(_dt.UTC)
        if self.backend == "sqlite":
            return now.isoformat(sep=" ", timespec="microseconds")
        if self.backend == "mysql":
            return now.replace(tzinfo=None)
        return now

    def values(self, r: dict[str, Any]) -> tuple[Any, ...]:
        ts = self.ts()
        active = r["active"] if self.backend != "sqlite" else int(r["active"])
        return (r["name"], r["category"], r["price"], r["qty"], active, ts, ts)


class Bench:
    def __init__(self, backend: str, ops: int, repeat: int, workdir: str) -> None:
        self.backend = backend
        self.ops = ops
        self.repeat = repeat
        if backend == "postgres":
            url = os.environ.get("DATAFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
            raw_url = url
        elif backend == "mysql":
            url = os.environ.get("DATAFLOW_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
            raw_url = url
        else:
            url = f"sqlite:///{workdir}/ours.db"
            raw_url = f"{workdir}/raw.db"
        self.db = DataFlow(url, name="bench_single")

        @self.db.model
        class SingleItem:
            name: str
            category: str
            price: float
            qty: int = 0
            active: bool = True

        self.raw = RawSide(backend, raw_url)

    async def open(self) -> None:
        await self.db.drop_tables()
        await self.db.initialize()
        await self.db.express.count("SingleItem")
        await self.raw.open()
        compiler: Any = self.db.adapter.compiler  # type: ignore[attr-defined]
        await self.raw.ddl(compiler.drop_table("raw_single_item"))
        for sql in compiler.create_table(self.db.get_model("SingleItem")):
            await self.raw.ddl(sql.replace(compiler.quote("single_item"), self.raw.table)
                               .replace("single_item_", "raw_single_item_"))

    async def close(self) -> None:
        compiler: Any = self.db.adapter.compiler  # type: ignore[attr-defined]
        await self.raw.ddl(compiler.drop_table("raw_single_item"))
        await self.raw.close()
        await self.db.drop_tables()
        await self.db.close()

    async def reset(self, keep: int = 0) -> None:
        adapter: Any = self.db.adapter
        await adapter.run(adapter.execute, f"DELETE FROM {adapter.compiler.quote('single_item')}", ())
        await self.raw.ddl(f"DELETE FROM {self.raw.table}")
        if keep:
            data = [{"id": i + 1, **r} for i, r in enumerate(rows(keep))]
            await self.db.express.bulk_create("SingleItem", data)
            await self.raw_bulk(data)

    async def raw_bulk(self, data: list[dict[str, Any]]) -> None:
        if self.backend == "postgres":
            ts = self.raw.ts()
            await self.raw.conn.copy_records_to_table(
                "raw_single_item", columns=["id", *COLS],
                records=[(r["id"], r["name"], r["category"], r["price"], r["qty"], r["active"],
                          ts, ts) for r in data])
        elif self.backend == "mysql":
            await self.raw.conn.begin()
            async with self.raw.conn.cursor() as cur:
                await cur.executemany(self.raw.insert_id,
                                      [(r["id"], *self.raw.values(r)) for r in data])
            await self.raw.conn.commit()
        else:
            await self.raw.conn.execute("BEGIN")
            sql = self.raw.insert_id.replace(f" RETURNING id, {', '.join(COLS)}", "")
            await self.raw.conn.executemany(sql, [(r["id"], *self.raw.values(r)) for r in data])
            await self.raw.conn.execute("COMMIT")

    async def run(self) -> list[Result]:
        n, rep, db, raw = self.ops, self.repeat, self.db, self.raw
        ex = db.express
        out: list[Result] = []
        single = rows(n)
        next_range = iter(range(1, 1 << 30))

        def with_ids() -> list[dict[str, Any]]:
            """A fresh id range per run (see the module docstring)."""
            base = 10_000 * (1 + next(next_range))
            return [{"id": base + i, **r} for i, r in enumerate(single)]

        async def ours_create() -> None:
            for r in single:
                await ex.create("SingleItem", r)

        async def raw_create() -> None:
            for r in single:
                await raw.one(raw.insert, raw.values(r))

        async def ours_create_id() -> None:
            data = with_ids()
            for r in data:
                await ex.create("SingleItem", r)

        async def raw_create_id() -> None:
            data = with_ids()
            for r in data:
                await raw.one(raw.insert_id, (r["id"], *raw.values(r)))

        out.append(await measure(f"{n:,} creates, auto id", ours_create, raw_create, rep,
                                 setup=self.reset))
        out.append(await measure(f"{n:,} creates, explicit id", ours_create_id, raw_create_id, rep,
                                 setup=self.reset))
        if self.backend == "postgres":  # the same work: the raw INSERT moves the sequence too
            seq = await raw.conn.fetchval("SELECT pg_get_serial_sequence('raw_single_item', 'id')")
            moving = (f"{raw.insert_id}, CASE WHEN id > COALESCE(pg_sequence_last_value("
                      f"'{seq}'::regclass), 0) THEN setval('{seq}'::regclass, id) END")

            async def raw_create_id_moving() -> None:
                data = with_ids()
                for r in data:
                    await raw.one(moving, (r["id"], *raw.values(r)))

            out.append(await measure(f"{n:,} creates, explicit id (raw: moving the sequence too)",
                                     ours_create_id, raw_create_id_moving, rep, setup=self.reset))
        table = 100_000
        await self.reset(keep=table)
        ids = [(i * 7919) % table + 1 for i in range(n)]

        async def ours_read() -> None:
            for i in ids:
                await ex.read("SingleItem", i)

        async def raw_read() -> None:
            for i in ids:
                await raw.one(raw.read, (i,))

        async def raw_read_pooled() -> None:
            for i in ids:
                await raw.one(raw.read, (i,), pooled=True)

        out.append(await measure(f"{n:,} reads by id", ours_read, raw_read, rep))
        if self.backend != "sqlite":  # SQLite has no pool: one connection is all there is
            out.append(await measure(f"{n:,} reads by id (raw: pool per statement)", ours_read,
                                     raw_read_pooled, rep))

        async def ours_update() -> None:
            for k, i in enumerate(ids):
                await ex.update("SingleItem", i, {"qty": k})

        async def raw_update() -> None:
            for k, i in enumerate(ids):
                await raw.one(raw.update, (k, raw.ts(), i))

        if self.backend != "mysql":  # RETURNING: the raw UPDATE returns the row too
            out.append(await measure(f"{n:,} updates by id", ours_update, raw_update, rep))
        else:
            async def raw_update_one_trip() -> None:
                for k, i in enumerate(ids):
                    await raw.update_read_one_trip((k, raw.ts(), i))

            async def raw_update_four_trips() -> None:
                for k, i in enumerate(ids):
                    await raw.update_read_four_trips((k, raw.ts(), i))

            out.append(await measure(f"{n:,} updates by id", ours_update, raw_update_one_trip, rep))
            out.append(await measure(f"{n:,} updates by id (raw: BEGIN, UPDATE, SELECT, COMMIT)",
                                     ours_update, raw_update_four_trips, rep, target=None))
            out.append(await measure(f"{n:,} updates by id (raw: UPDATE alone, no row back)",
                                     ours_update, raw_update, rep, target=None))
        active = True if self.backend != "sqlite" else 1

        # ten statements a run (one per category): one statement takes ~20-50 ms, short
        # enough that a checkpoint or log flush landing in one side's run decides its ratio
        cats = [f"c{k}" for k in range(10)]

        async def ours_bulk_update() -> None:
            for c in cats:
                await ex.bulk_update("SingleItem", {"category": c, "active": True}, {"qty": 5})

        async def raw_bulk_update() -> None:
            for c in cats:
                await raw.one(raw.bulk_update, (5, raw.ts(), c, active))

        out.append(await measure("bulk update by filter, 10 statements (~3,300 rows each)",
                                 ours_bulk_update, raw_bulk_update, rep))

        async def ours_delete() -> None:
            for i in ids:
                await ex.delete("SingleItem", i)

        async def raw_delete() -> None:
            for i in ids:
                await raw.one(raw.delete, (i,))

        async def reload() -> None:
            await self.reset(keep=table)

        out.append(await measure(f"{n:,} deletes by id", ours_delete, raw_delete, rep, setup=reload))

        async def ours_bulk_delete() -> None:
            for c in cats:
                await ex.bulk_delete("SingleItem", {"category": c, "active": True})

        async def raw_bulk_delete() -> None:
            for c in cats:
                await raw.one(raw.bulk_delete, (c, active))

        out.append(await measure("bulk delete by filter, 10 statements (~3,300 rows each)",
                                 ours_bulk_delete, raw_bulk_delete, rep, setup=reload))
        return out


def table(results: list[Result]) -> str:
    lines = ["| workload | dataflow (best) | raw (best) | ratio best | ratio worst run | target |",
             "|---|---|---|---|---|---|"]
    for r in results:
        cells = r.row()
        pairs = [raw / ours for ours, raw in zip(r.samples_ours, r.samples_raw, strict=False)]
        worst = f"{min(pairs):.2f}x" if pairs else ""
        lines.append(f"| {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {worst} | {cells[4]} |")
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory() as workdir:
        bench = Bench(args.backend, args.ops, args.repeat, workdir)
        await bench.open()
        try:
            return await bench.run()
        finally:
            await bench.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("postgres", "sqlite", "mysql"), default="postgres")
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print_header(f"DataFlow single operations on {args.backend} vs one raw connection")
    results = asyncio.run(amain(args))
    print()
    print(table(results))
    print(f"\n{time.strftime('%Y-%m-%d')} -- {machine_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
