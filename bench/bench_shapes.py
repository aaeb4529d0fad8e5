"""Bulk loads of the shapes users have, DataFlow vs the raw driver's fastest load of the same rows.

    .venv/bin/python bench/bench_shapes.py --backend postgres [--quick] [--repeat 5] [--markdown]
    .venv/bin/python bench/bench_shapes.py --backend sqlite
    .venv/bin/python bench/bench_shapes.py --backend mysql

Shapes: the plain five-column row with an auto id (the main benches' shape), the same rows with
explicit int ids, str ids and UUID ids, a rich row (Decimal, Enum, dict and list JSON, a pydantic
model, date, Optional datetime, a foreign key, a soft-delete tombstone) and a tenant-scoped row;
each through ``express.bulk_create`` with the default batch size and with ``batch_size=1000``, and
through the BulkCreateNode (default and ``batch_size=1000``).

Raw baselines (same run, same server, a table built from DataFlow's own DDL under another name):
  * PostgreSQL: one asyncpg connection, ``copy_records_to_table`` (binary COPY) of tuples built
    from the same dicts (enum -> its value, JSON -> text, as the columns need);
  * SQLite: one aiosqlite connection, ``executemany`` in one transaction, values as DataFlow
    stores them (ISO text for datetimes, text for Decimal / UUID);
  * MySQL / MariaDB: one aiomysql connection, ``cursor.executemany`` (which aiomysql folds
    into multi-row INSERTs) in one transaction.
Raw validates nothing; DataFlow validates every value. Ratio = raw time / DataFlow time.
Every workload runs once on each side untimed (warm-up), then reports the best and the worst
of the timed repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import enum
import json
import os
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from typing import Any

from harness import Result, machine_note, measure, print_header
from pydantic import BaseModel

from dataflow import DataFlow, field
from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder

PLAIN = ("name", "category", "price", "qty", "active")


class Status(enum.Enum):
    NEW = "new"
    PAID = "paid"
    SHIPPED = "shipped"


class Meta(BaseModel):
    source: str
    score: int


def plain_rows(n: int) -> list[dict[str, Any]]:
    return [{"name": f"item-{i}", "category": f"c{i % 20}", "price": (i % 1000) / 10.0,
             "qty": i % 97, "active": i % 3 != 0} for i in range(n)]


def rich_rows(n: int, customers: int) -> list[dict[str, Any]]:
    day = _dt.date(2026, 1, 1)
    at = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
    statuses = list(Status)
    return [{"sku": f"sku-{i}", "price": Decimal(i % 10_000) / 100, "status": statuses[i % 3],
             "attrs": {"color": "red", "size": i % 5}, "tags": ["a", f"t{i % 7}"],
             "meta": Meta(source="web", score=i % 10),
             "ordered_on": day + _dt.timedelta(days=i % 300),
             "shipped_at": None if i % 4 == 0 else at + _dt.timedelta(minutes=i),
             "customer_id": i % customers + 1} for i in range(n)]


def declare(db: DataFlow, tenant_db: DataFlow) -> None:
    @db.model
    class ShapeItem:
        name: str
        category: str
        price: float
        qty: int = 0
        active: bool = True

    @db.model
    class ShapeStrItem:
        id: str
        name: str
        category: str
        price: float
        qty: int = 0
        active: bool = True

    @db.model
    class ShapeUuidItem:
        id: uuid.UUID
        name: str
        category: str
        price: float
        qty: int = 0
        active: bool = True

    @db.model
    class ShapeCustomer:
        name: str

    @db.model
    class ShapeOrder:
        sku: str
        price: Decimal
        status: Status
        attrs: dict  # type: ignore[type-arg]
        tags: list  # type: ignore[type-arg]
        meta: Meta
        ordered_on: _dt.date
        shipped_at: _dt.datetime | None = None
        customer_id: int = field(foreign_key=ShapeCustomer)
        __dataflow__ = {"soft_delete": True}

    @tenant_db.model
    class ShapeTenantItem:
        name: str
        category: str
        price: float
        qty: int = 0
        active: bool = True


# --- raw drivers ---------------------------------------------------------------------------
class Raw:
    """One raw connection; ``load(table, columns, tuples)`` is the driver's fastest bulk load."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ddl(self, sql: str) -> None: ...
    async def load(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None: ...
    def encode(self, value: Any) -> Any:
        return value


class RawPostgres(Raw):
    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    async def open(self) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(self.url)

    async def close(self) -> None:
        await self.conn.close()

    async def ddl(self, sql: str) -> None:
        await self.conn.execute(sql)

    async def load(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        async with self.conn.transaction():
            await self.conn.copy_records_to_table(table, records=rows, columns=list(columns))

    def encode(self, value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, BaseModel):
            return value.model_dump_json()
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return value


class RawSQLite(Raw):
    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: Any = None

    async def open(self) -> None:
        import aiosqlite

        self.conn = await aiosqlite.connect(self.path, isolation_level=None)
        for p in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"):
            await self.conn.execute(p)

    async def close(self) -> None:
        await self.conn.close()

    async def ddl(self, sql: str) -> None:
        await self.conn.execute(sql)

    async def load(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" for _ in columns)
        await self.conn.execute("BEGIN")
        await self.conn.executemany(
            f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks})', rows)
        await self.conn.execute("COMMIT")

    def encode(self, value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return str(value.value)
        if isinstance(value, BaseModel):
            return value.model_dump_json()
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        if isinstance(value, _dt.datetime):
            return value.isoformat(sep=" ", timespec="microseconds")
        if isinstance(value, _dt.date):
            return value.isoformat()
        if isinstance(value, (Decimal, uuid.UUID)):
            return str(value)
        return value


class RawMySQL(Raw):
    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    async def open(self) -> None:
        import aiomysql

        from dataflow.adapter import DatabaseURL

        u = DatabaseURL.parse(self.url)
        self.conn = await aiomysql.connect(host=u.host or "127.0.0.1", port=u.port or 3306,
                                           user=u.username or "root", password=u.password or "",
                                           db=u.database, autocommit=True)

    async def close(self) -> None:
        self.conn.close()

    async def ddl(self, sql: str) -> None:
        async with self.conn.cursor() as cur:
            await cur.execute(sql)

    async def load(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("%s" for _ in columns)
        await self.conn.begin()
        async with self.conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO `{table}` ({', '.join(columns)}) VALUES ({marks})", rows)
        await self.conn.commit()

    def encode(self, value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return str(value.value)
        if isinstance(value, BaseModel):
            return value.model_dump_json()
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        if isinstance(value, _dt.datetime):
            return value.astimezone(_dt.UTC).replace(tzinfo=None)
        if isinstance(value, uuid.UUID):
            return str(value)
        return value


# --- the bench -----------------------------------------------------------------------------
class Bench:
    def __init__(self, backend: str, n: int, repeat: int, workdir: str) -> None:
        self.backend = backend
        self.n = n
        self.repeat = repeat
        if backend == "postgres":
            url = os.environ.get("DATAFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
            self.raw: Raw = RawPostgres(url)
        elif backend == "mysql":
            url = os.environ.get("DATAFLOW_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
            self.raw = RawMySQL(url)
        else:
            url = f"sqlite:///{workdir}/ours.db"
            self.raw = RawSQLite(f"{workdir}/raw.db")
        self.db = DataFlow(url, name="bench_shapes")
        self.tenant_db = DataFlow(url, name="bench_shapes_tenant", multi_tenant=True)
        declare(self.db, self.tenant_db)
        self.runtime = AsyncLocalRuntime()
        self.tables: list[str] = []

    def raw_table(self, model: str) -> str:
        return "raw_" + self.db.get_model(model).table if model != "ShapeTenantItem" else (
            "raw_" + self.tenant_db.get_model(model).table)

    async def open(self) -> None:
        for db in (self.db, self.tenant_db):
            await db.drop_tables()
        await self.db.initialize()
        await self.tenant_db.initialize()
        await self.raw.open()
        compiler = self.db.adapter.compiler  # type: ignore[attr-defined]
        for db in (self.db, self.tenant_db):
            for spec in db.models.values():
                raw = "raw_" + spec.table
                self.tables.append(raw)
                await self.raw.ddl(compiler.drop_table(raw))
                # the raw table: DataFlow's DDL under another name, no foreign keys (raw COPY
                # into the referencing table would check them too; both sides load the same
                # valid ids, so the constraint check is a server cost both pay or neither)
                for sql in compiler.create_table(spec, []):
                    await self.raw.ddl(sql.replace(compiler.quote(spec.table), compiler.quote(raw))
                                       .replace(spec.table + "_", raw + "_"))
        async with self.tenant_db.tenant("acme"):
            pass
        customers = [{"name": f"cust-{i}"} for i in range(100)]
        await self.db.express.bulk_create("ShapeCustomer", customers)

    async def close(self) -> None:
        compiler = self.db.adapter.compiler  # type: ignore[attr-defined]
        for raw in self.tables:
            await self.raw.ddl(compiler.drop_table(raw))
        await self.raw.close()
        for db in (self.db, self.tenant_db):
            await db.drop_tables()
            await db.close()

    async def truncate(self) -> None:
        """Empty every loaded table before each run, on both sides: TRUNCATE where the server
        has it (a DELETE leaves 100,000 dead rows per run for autovacuum / purge to clean up
        while a later run is being timed), SQLite's DELETE without WHERE otherwise."""
        compiler = self.db.adapter.compiler  # type: ignore[attr-defined]
        empty = "DELETE FROM" if self.backend == "sqlite" else "TRUNCATE TABLE"
        for db in (self.db, self.tenant_db):
            adapter: Any = db.adapter
            for spec in db.models.values():
                if spec.name == "ShapeCustomer":
                    continue
                sql = f"{empty} {compiler.quote(spec.table)}"
                await adapter.run(adapter.execute, sql, ())
                await self.raw.ddl(f"{empty} {compiler.quote('raw_' + spec.table)}")

    def raw_tuples(self, spec: Any, rows: list[dict[str, Any]], extra: dict[str, Any]
                   ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """The rows as the driver's tuples, as a hand-written loader builds them: one tuple
        expression per shape, a conversion only on the columns that need one."""
        ts = _dt.datetime.now(_dt.UTC)
        stamps = {"created_at": self.raw.encode(ts), "updated_at": self.raw.encode(ts),
                  "deleted_at": None, **extra}
        keys = tuple(rows[0].keys())
        columns = (*keys, *(c for c in spec.fields if c in stamps))
        env: dict[str, Any] = {"_enc": self.raw.encode,
                               "_tail": tuple(stamps[c] for c in columns[len(keys):])}
        items = []
        for k in keys:
            sample = next((r[k] for r in rows if r[k] is not None), None)
            if self.raw.encode(sample) is sample:
                items.append(f"r[{k!r}]")
            else:
                items.append(f"(None if (v := r[{k!r}]) is None else _enc(v))")
        exec(f"def build(rows):\n    return [({', '.join(items)},) + _tail for r in rows]", env)
        return columns, env["build"](rows)

    async def one(self, label: str, model: str, rows: list[dict[str, Any]], *,
                  batch_size: int | None = None, node: bool = False, tenant: bool = False,
                  target: float = 0.8) -> Result:
        db = self.tenant_db if tenant else self.db
        spec = db.get_model(model)
        extra = {"tenant_id": "acme"} if tenant else {}

        async def ours() -> None:
            options: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
            if tenant:
                async with db.tenant("acme"):
                    out = await db.express.bulk_create(model, rows, **options)
            elif node:
                wf = WorkflowBuilder().add_node(f"{model}BulkCreateNode", "op",
                                                {"data": rows, **options}).build()
                results, _ = await self.runtime.execute_workflow_async(wf)
                out = results["op"]
            else:
                out = await db.express.bulk_create(model, rows, **options)
            assert out["inserted"] == len(rows), out

        async def raw() -> None:
            columns, tuples = self.raw_tuples(spec, rows, extra)
            await self.raw.load("raw_" + spec.table, columns, tuples)

        return await measure(f"{label} {len(rows):,}", ours, raw, self.repeat,
                             setup=self.truncate, target=target, warmup=1)

    async def run(self) -> list[Result]:
        n = self.n
        out: list[Result] = []
        plain = plain_rows(n)
        with_ids = [{"id": i + 1, **r} for i, r in enumerate(plain)]
        str_ids = [{"id": f"k-{i:08d}", **r} for i, r in enumerate(plain)]
        uuid_ids = [{"id": uuid.UUID(int=i + 1), **r} for i, r in enumerate(plain)]
        rich = rich_rows(n, 100)
        out.append(await self.one("plain, auto id", "ShapeItem", plain))
        out.append(await self.one("plain, auto id, batch_size=1000", "ShapeItem", plain,
                                  batch_size=1000))
        out.append(await self.one("plain, auto id (node, batch_size=1000)", "ShapeItem", plain,
                                  batch_size=1000, node=True))
        out.append(await self.one("explicit int ids", "ShapeItem", with_ids))
        out.append(await self.one("explicit str ids", "ShapeStrItem", str_ids))
        out.append(await self.one("explicit UUID ids", "ShapeUuidItem", uuid_ids))
        out.append(await self.one("tenant-scoped", "ShapeTenantItem", plain, tenant=True))
        out.append(await self.one("rich model", "ShapeOrder", rich))
        out.append(await self.one("rich model, batch_size=1000", "ShapeOrder", rich,
                                  batch_size=1000))
        out.append(await self.one("rich model (node)", "ShapeOrder", rich, node=True))
        out.append(await self.one("rich model (node, batch_size=1000)", "ShapeOrder", rich,
                                  batch_size=1000, node=True))
        return out


def spread(r: Result) -> str:
    """Best and worst ratio of the interleaved runs (worst = slowest ours / fastest raw pairing
    of the same repeat)."""
    pairs = [raw / ours for ours, raw in zip(r.samples_ours, r.samples_raw, strict=False)]
    return f"{min(pairs):.2f}x" if pairs else ""


def table(results: list[Result]) -> str:
    lines = ["| workload | dataflow (best) | raw (best) | ratio best | ratio worst run | target |",
             "|---|---|---|---|---|---|"]
    for r in results:
        cells = r.row()
        lines.append(f"| {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {spread(r)} | "
                     f"{cells[4]} |")
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory() as workdir:
        bench = Bench(args.backend, 10_000 if args.quick else args.rows, args.repeat, workdir)
        await bench.open()
        try:
            return await bench.run()
        finally:
            await bench.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("postgres", "sqlite", "mysql"), default="postgres")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10,000 rows (smoke check)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per side (default 5)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = ap.parse_args()
    print_header(f"DataFlow bulk shapes on {args.backend} vs the raw driver")
    results = asyncio.run(amain(args))
    print()
    print(table(results))
    if args.markdown:
        print(f"\n{time.strftime('%Y-%m-%d')} -- {machine_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
