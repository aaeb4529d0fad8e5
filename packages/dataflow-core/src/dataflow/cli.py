"""The ``dataflow`` console command.

    dataflow --version
    dataflow demo [--rows 100000] [--db sqlite:///path.db] [--no-progress]
    dataflow inspect module:db [--json]
    dataflow validate module:db
    dataflow migrate module:db (--plan | --apply [--allow-destructive])

The commands themselves are in ``dataflow.commands`` (typer and rich, the ``[cli]`` extra).

``demo`` runs a realistic scenario on embedded SQLite (models, a bulk import with a
progress bar, filtered queries, an upsert, a workflow, a rolled-back transaction)
and prints a short summary. Progress goes to stderr; the summary to stdout.
"""

from __future__ import annotations

import asyncio
import enum
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TextIO

from .errors import DataFlowError

#: exit codes of every ``dataflow`` command
EXIT_OK = 0  # done; nothing wrong found; nothing left to migrate
EXIT_ERROR = 1  # a DataFlow error, or problems found by validate
EXIT_USAGE = 2  # bad arguments, or a target that does not import
EXIT_PENDING = 3  # migrate --plan: additive steps are pending
EXIT_REFUSED = 4  # migrate: destructive steps, refused without --allow-destructive


class OrderStatus(enum.Enum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


class _Demo:
    """Builds the models on one DataFlow instance and runs the scenario step by step."""

    def __init__(self, url: str, rows: int, out: TextIO, err: TextIO, progress: bool) -> None:
        self.url = url
        self.rows = rows
        self.out = out
        self.err = err
        self.progress = progress
        self.timings: list[tuple[str, float]] = []
        self.facts: dict[str, Any] = {}

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        print(f"-> {title}", file=self.err, flush=True)
        t0 = time.perf_counter()
        yield
        self.timings.append((title, time.perf_counter() - t0))

    @contextmanager
    def progress_bar(self, label: str) -> Iterator[Callable[[int, int], None]]:
        """A rich progress bar on stderr fed by ``on_progress(done, total)`` callbacks."""
        if not self.progress:
            yield lambda done, total: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn

        # redrawn on each callback (one per batch), not by rich's refresh thread, which
        # would take the GIL from the import it reports on ten times a second
        with Progress(TextColumn(f"   {label}"), BarColumn(), TaskProgressColumn(),
                      MofNCompleteColumn(), console=Console(file=self.err),
                      auto_refresh=False) as bar:
            task = bar.add_task(label, total=None)

            def show(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, refresh=True)

            yield show

    async def run(self) -> None:
        from . import DataFlow, field
        from .workflow import AsyncLocalRuntime, WorkflowBuilder

        t_start = time.perf_counter()
        db = DataFlow(self.url, name="dataflow_demo")
        try:
            @db.model
            class Customer:
                name: str
                email: str
                country: str = "US"
                vip: bool = False

            @db.model
            class Product:
                sku: str = field(unique=True)
                title: str
                price: Decimal
                stock: int = 0
                tags: list = []  # type: ignore[type-arg]

            @db.model
            class Order:
                customer_id: int
                product_id: int
                quantity: int
                total: Decimal
                status: OrderStatus = OrderStatus.PENDING
                meta: dict = {}  # type: ignore[type-arg]

            await self._scenario(db, AsyncLocalRuntime, WorkflowBuilder)
        finally:
            await db.close()
        self.facts["total_seconds"] = time.perf_counter() - t_start

    async def _scenario(self, db: Any, runtime_cls: Any, builder_cls: Any) -> None:
        ex = db.express
        rng = random.Random(42)
        countries = ["US", "DE", "FR", "JP", "BR", "IN", "GB"]

        with self.step("create tables (automatic migration)"):
            plan = await db.initialize()
            self.facts["migration_steps"] = len(plan.steps)

        n_customers = max(10, min(1_000, self.rows // 100))
        n_products = max(10, min(200, self.rows // 500))
        with self.step(f"seed {n_customers:,} customers and {n_products} products"):
            await ex.bulk_create("Customer", [
                {"name": f"Customer {i}", "email": f"c{i}@example.com",
                 "country": countries[i % len(countries)], "vip": i % 10 == 0}
                for i in range(n_customers)])
            await ex.bulk_create("Product", [
                {"sku": f"SKU-{i:05d}", "title": f"Product {i}",
                 "price": Decimal(rng.randint(100, 50_000)) / 100, "stock": rng.randint(0, 500),
                 "tags": ["demo", f"cat{i % 5}"]}
                for i in range(n_products)])
        prices = {p["id"]: p["price"] for p in await ex.list("Product")}
        product_ids = list(prices)
        statuses = list(OrderStatus)

        # the orders an import would read from a file: made before the import is timed
        with self.step(f"generate {self.rows:,} orders"):
            customers = [1 + c for c in rng.choices(range(n_customers), k=self.rows)]
            orders = []
            for i in range(self.rows):
                pid = product_ids[i % len(product_ids)]
                qty = 1 + i % 5
                orders.append({
                    "customer_id": customers[i], "product_id": pid, "quantity": qty,
                    "total": prices[pid] * qty, "status": statuses[i % len(statuses)],
                    "meta": {"channel": "web" if i % 2 else "store", "batch": i // 10_000}})

        with self.step(f"bulk import {self.rows:,} orders"):
            with self.progress_bar("orders") as show:
                result = await ex.bulk_create("Order", orders, batch_size=5_000, on_progress=show)
            self.facts["imported"] = result["inserted"]

        with self.step("filtered queries"):
            big_paid = await ex.count("Order", {"status": OrderStatus.PAID.value,
                                                "quantity": {"$gte": 4}})
            top = await ex.list("Order", {"status": {"$in": ["paid", "shipped"]},
                                          "quantity": {"$gt": 2}},
                                order_by=["-quantity", "id"], limit=5)
            de_or_vip = await ex.count("Customer", {"$or": [{"country": "DE"}, {"vip": True}]})
            named = await ex.list("Customer", {"name": {"$like": "Customer 1%"},
                                               "country": {"$ne": "US"}}, order_by="name", limit=3)
            not_cancelled = await ex.count("Order", {"status": {"$nin": ["cancelled"]}})
            self.facts["paid_qty_ge_4"] = big_paid
            self.facts["top_orders"] = [o["id"] for o in top]
            self.facts["de_or_vip_customers"] = de_or_vip
            self.facts["named_sample"] = [c["name"] for c in named]
            self.facts["not_cancelled"] = not_cancelled

        with self.step("upsert a product"):
            first = await ex.upsert("Product", {"sku": "SKU-00000", "title": "Product 0 (renamed)",
                                                "price": Decimal("9.99")}, conflict_on="sku")
            new = await ex.upsert("Product", {"sku": "SKU-NEW", "title": "Brand new",
                                              "price": Decimal("19.90"), "stock": 5},
                                  conflict_on="sku")
            self.facts["upsert_updated_title"] = first["title"]
            self.facts["upsert_new_id"] = new["id"]
            self.facts["products"] = await ex.count("Product")

        with self.step("workflow: new customer places an order"):
            wf = builder_cls()
            wf.add_node("CustomerCreateNode", "customer", {"name": "Workflow Wendy",
                                                          "email": "wendy@example.com", "vip": True})
            wf.add_node("OrderCreateNode", "order", {"product_id": product_ids[0], "quantity": 2,
                                                     "total": prices[product_ids[0]] * 2,
                                                     "status": "paid"})
            wf.add_connection("customer", "record.id", "order", "customer_id")
            wf.add_node("OrderCountNode", "count", {})
            wf.add_connection("customer", "record.id", "count", "filter.customer_id")
            results, run_id = await runtime_cls().execute_workflow_async(wf.build())
            self.facts["workflow_customer_id"] = results["customer"]["record"]["id"]
            self.facts["workflow_order_id"] = results["order"]["record"]["id"]
            self.facts["workflow_orders_of_customer"] = results["count"]["count"]
            self.facts["workflow_run_id"] = run_id

        with self.step("transaction rolled back on purpose"):
            before = await ex.count("Order")
            stock_before = (await ex.read("Product", product_ids[0]))["stock"]
            try:
                async with db.transaction():
                    await ex.bulk_create("Order", orders[:100])
                    await ex.update("Product", product_ids[0], {"stock": 0})
                    raise _Rollback
            except _Rollback:
                pass
            after = await ex.count("Order")
            stock_after = (await ex.read("Product", product_ids[0]))["stock"]
            self.facts["rollback_orders_before"] = before
            self.facts["rollback_orders_after"] = after
            self.facts["rollback_stock_kept"] = stock_before == stock_after
            self.facts["rollback_clean"] = before == after and stock_before == stock_after

        self.facts["orders"] = await ex.count("Order")
        self.facts["customers"] = await ex.count("Customer")

    def summary(self) -> str:
        f = self.facts
        imported_step = next(t for name, t in self.timings if name.startswith("bulk import"))
        rate = f["imported"] / imported_step if imported_step > 0 else 0.0
        lines = [
            "DataFlow demo summary",
            f"  database:            {self.url}",
            f"  customers:           {f['customers']:,}",
            f"  products:            {f['products']:,}",
            f"  orders:              {f['orders']:,}",
            f"  imported:            {f['imported']:,} orders in {imported_step:.2f} s "
            f"({rate:,.0f} rows/s)",
            f"  paid, qty >= 4:      {f['paid_qty_ge_4']:,}",
            f"  not cancelled:       {f['not_cancelled']:,}",
            f"  DE or VIP customers: {f['de_or_vip_customers']:,}",
            f"  top orders:          {f['top_orders']}",
            f"  upsert:              updated title {f['upsert_updated_title']!r}, "
            f"new product id {f['upsert_new_id']}",
            f"  workflow:            customer {f['workflow_customer_id']} -> order "
            f"{f['workflow_order_id']} ({f['workflow_orders_of_customer']} order(s))",
            f"  rollback:            orders before {f['rollback_orders_before']:,}, after "
            f"{f['rollback_orders_after']:,}, stock update undone: {f['rollback_stock_kept']} -> "
            f"{'nothing remained' if f['rollback_clean'] else 'LEAKED ROWS'}",
            "  timings:",
        ]
        lines += [f"    {name:<42} {t * 1000:9.1f} ms" for name, t in self.timings]
        lines.append(f"  total:               {f['total_seconds']:.2f} s")
        return "\n".join(lines)


class _Rollback(Exception):
    """Raised inside the demo transaction to roll it back."""


def _demo(db_url: str | None, rows: int, no_progress: bool) -> int:
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    url = db_url
    if url is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="dataflow-demo-")
        url = f"sqlite:///{os.path.join(tmpdir.name, 'demo.db')}"
    if rows < 0:
        print("dataflow demo: --rows must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    demo = _Demo(url, rows, sys.stdout, sys.stderr, progress=not no_progress)
    try:
        asyncio.run(demo.run())
    except DataFlowError as exc:
        print(f"dataflow demo failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    print(demo.summary(), flush=True)
    return EXIT_OK if demo.facts.get("rollback_clean") else EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dataflow`` console script: the exit code (see ``commands``)."""
    try:
        from .commands import run
    except ImportError as exc:  # typer / rich are the [cli] extra
        print(f"dataflow: the command line needs typer and rich ({exc.name} is missing). Fix: "
              "install dataflow-core's [cli] extra from its path, e.g. "
              'pip install "./packages/dataflow-core[cli]".', file=sys.stderr)
        return EXIT_ERROR
    return run(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
