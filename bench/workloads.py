"""The standard workloads of the backend benches (bench_sqlite, bench_postgres, bench_mysql,
bench_mongo): one five-column model, the same rows, the same operations, DataFlow against the
raw driver. Each backend script keeps only what is its own: how it connects, resets and runs
the raw baselines (subclassing :class:`ItemBench`), which node variants and targets it
reports (:class:`Plan`), and anything extra it measures.

    class Bench(ItemBench):
        async def open(self): ...  /  async def close(self): ...
        async def reset(self, keep=0): ...            # empty both sides, load ``keep`` rows
        async def raw_bulk(self, rows): ...
        async def raw_single_inserts(self, rows): ...
        async def raw_reads(self, ids): ...
        async def raw_filtered(self, times): ...
        async def raw_upsert(self, rows): ...

    results = await run_bench(bench, PLAN)           # open, the five workloads, close
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from harness import Result, machine_note, markdown_table, measure, print_table

from dataflow import DataFlow
from dataflow.workflow import AsyncLocalRuntime, Workflow, WorkflowBuilder

#: the workloads, in the order they run and are reported
WORKLOADS = ("bulk", "single", "reads", "lists", "upsert")
FULL_SIZES = {"bulk": 100_000, "single": 1_000, "reads": 1_000, "lists": 100, "upsert": 100_000}
QUICK_SIZES = {"bulk": 10_000, "single": 300, "reads": 300, "lists": 20, "upsert": 10_000}
#: the filtered list: three operators, a two-key order, a page of 100
LIST_ORDER = ["-price", "name"]
LIST_LIMIT = 100


def make_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"name": f"item-{i}", "category": f"c{i % 20}", "price": (i % 1000) / 10.0,
         "qty": i % 97, "active": i % 3 != 0}
        for i in range(start, start + n)
    ]


def list_filter(k: int) -> dict[str, Any]:
    """The filter of the ``k``-th list: ``category = c<k % 20> AND price >= 50 AND active``."""
    return {"category": f"c{k % 20}", "price": {"$gte": 50.0}, "active": True}


def read_ids(n: int, table_rows: int) -> list[int]:
    """``n`` ids spread over a table of ``table_rows`` rows (ids 1..table_rows)."""
    return [(i * 7919) % table_rows + 1 for i in range(n)]


def upsert_rows(n: int) -> list[dict[str, Any]]:
    """``n`` rows with explicit ids over a table of ``n`` rows: half update, half insert."""
    return [{"id": i + 1 + n // 2, **r} for i, r in enumerate(make_rows(n, 7))]


def declare_item(db: DataFlow, name: str) -> str:
    """Declare the bench model (five plain columns) under ``name``; returns the name."""
    cls = type(name, (), {
        "__annotations__": {"name": str, "category": str, "price": float, "qty": int, "active": bool},
        "qty": 0, "active": True, "__module__": __name__,
    })
    db.model(cls)
    return name


@dataclass
class Plan:
    """What a backend reports: the bulk baseline's name, the node variants, the targets."""

    #: what the raw bulk insert is, in the workload name (" vs COPY"), or ""
    bulk_vs: str = ""
    #: workloads also run through a workflow node
    nodes: frozenset[str] = frozenset()
    #: ratio targets per workload (the rest: 0.8)
    targets: dict[str, float] = field(default_factory=dict)
    #: the reads and lists run on a table of at least this many rows
    min_table_rows: int = 0
    #: ... and of at least the bulk workload's rows
    table_follows_bulk: bool = True

    def target(self, workload: str) -> float:
        return self.targets.get(workload, 0.8)


class ItemBench:
    """DataFlow's side of the standard workloads (express and nodes); the raw side and the
    resets are the backend's."""

    def __init__(self, db: DataFlow, model: str, sizes: dict[str, int], repeat: int) -> None:
        self.db = db
        self.model = declare_item(db, model)
        self.sizes = sizes
        self.repeat = repeat
        self.runtime = AsyncLocalRuntime()

    # --- backend hooks ---------------------------------------------------------------------
    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def reset(self, keep: int = 0) -> None:
        raise NotImplementedError

    async def raw_bulk(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def raw_single_inserts(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def raw_reads(self, ids: list[int]) -> None:
        raise NotImplementedError

    async def raw_filtered(self, times: int) -> None:
        raise NotImplementedError

    async def raw_upsert(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def best_raw_upsert(self, rows: list[dict[str, Any]], setup: Callable[[], Awaitable[None]]
                              ) -> tuple[Callable[[list[dict[str, Any]]], Awaitable[None]], str]:
        """The raw upsert to compare with, and a note (a backend with several raw paths
        measures them here and returns the fastest)."""
        return self.raw_upsert, ""

    # --- DataFlow: express -----------------------------------------------------------------
    async def ours_single_inserts(self, rows: list[dict[str, Any]]) -> None:
        create, model = self.db.express.create, self.model
        for r in rows:
            await create(model, r)

    async def ours_reads(self, ids: list[int]) -> None:
        read, model = self.db.express.read, self.model
        for i in ids:
            await read(model, i)

    async def ours_filtered(self, times: int) -> None:
        lst, model = self.db.express.list, self.model
        for k in range(times):
            await lst(model, list_filter(k), order_by=LIST_ORDER, limit=LIST_LIMIT)

    # --- DataFlow: nodes (one workflow per operation, as a service would run them) --------
    async def run_node(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        wf: Workflow = WorkflowBuilder().add_node(f"{self.model}{op}Node", "op", params).build()
        results, _ = await self.runtime.execute_workflow_async(wf)
        out: dict[str, Any] = results["op"]
        return out

    async def node_bulk_insert(self, rows: list[dict[str, Any]]) -> None:
        await self.run_node("BulkCreate", {"data": rows})

    async def node_single_inserts(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            await self.run_node("Create", r)

    async def node_reads(self, ids: list[int]) -> None:
        for i in ids:
            await self.run_node("Read", {"id": i})

    async def node_filtered(self, times: int) -> None:
        for k in range(times):
            await self.run_node("List", {"filter": list_filter(k), "order_by": LIST_ORDER,
                                         "limit": LIST_LIMIT})

    async def node_bulk_upsert(self, rows: list[dict[str, Any]]) -> None:
        await self.run_node("BulkUpsert", {"data": rows})


async def run_standard(bench: ItemBench, plan: Plan) -> list[Result]:
    """The five standard workloads (express, and through nodes where ``plan`` says)."""
    s, rep, db, model = bench.sizes, bench.repeat, bench.db, bench.model
    out: list[Result] = []

    async def both(name: str, workload: str, express: Callable[[], Awaitable[Any]],
                   node: Callable[[], Awaitable[Any]], raw: Callable[[], Awaitable[Any]],
                   setup: Callable[[], Any] | None = None, note: str = "") -> None:
        target = plan.target(workload)
        out.append(await measure(f"{name} (express)", express, raw, rep, setup=setup,
                                 target=target, note=note))
        if workload in plan.nodes:
            out.append(await measure(f"{name} (node)", node, raw, rep, setup=setup, target=target))

    n = s["bulk"]
    bulk = make_rows(n)
    await both(f"bulk insert {n:,}{plan.bulk_vs}", "bulk",
               lambda: db.express.bulk_create(model, bulk), lambda: bench.node_bulk_insert(bulk),
               lambda: bench.raw_bulk(bulk), setup=bench.reset)

    n = s["single"]
    single = make_rows(n)
    await both(f"{n:,} single inserts", "single", lambda: bench.ours_single_inserts(single),
               lambda: bench.node_single_inserts(single), lambda: bench.raw_single_inserts(single),
               setup=bench.reset)

    table_rows = max(s["bulk"] if plan.table_follows_bulk else 0, s["reads"], plan.min_table_rows)
    await bench.reset(keep=table_rows)
    ids = read_ids(s["reads"], table_rows)
    await both(f"{s['reads']:,} reads by id", "reads", lambda: bench.ours_reads(ids),
               lambda: bench.node_reads(ids), lambda: bench.raw_reads(ids))
    n = s["lists"]
    target = plan.target("lists")
    out.append(await measure(
        f"{n} filtered lists, 3 ops + order_by, limit 100 (express)",
        lambda: bench.ours_filtered(n), lambda: bench.raw_filtered(n), rep, target=target))
    if "lists" in plan.nodes:
        out.append(await measure(f"{n} filtered lists (node)", lambda: bench.node_filtered(n),
                                 lambda: bench.raw_filtered(n), rep, target=target))

    n = s["upsert"]
    rows = upsert_rows(n)

    async def upsert_setup() -> None:
        await bench.reset(keep=n)

    raw_upsert, note = await bench.best_raw_upsert(rows, upsert_setup)
    counts: dict[str, Any] = {}

    async def ours_upsert() -> None:
        counts.update(await db.express.bulk_upsert(model, rows))

    await both(f"bulk upsert {n:,} (50% new)", "upsert", ours_upsert,
               lambda: bench.node_bulk_upsert(rows), lambda: raw_upsert(rows), setup=upsert_setup,
               note=note)
    assert counts["inserted"] == n // 2 and counts["updated"] == n - n // 2, counts
    return out


async def run_bench(bench: ItemBench, plan: Plan) -> list[Result]:
    """Open ``bench``, run the standard workloads, close it (also on failure)."""
    await bench.open()
    try:
        return await run_standard(bench, plan)
    finally:
        await bench.close()


# --- command line and report -----------------------------------------------------------------
def arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options every backend bench takes (a script may add its own)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke check)")
    ap.add_argument("--rows", type=int, default=None,
                    help="rows of the bulk insert and bulk upsert workloads (overrides --quick's)")
    ap.add_argument("--ops", type=int, default=None,
                    help="single inserts and reads by id (overrides --quick's)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per side (default 3)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    return ap


def sizes(args: argparse.Namespace, full: dict[str, int] | None = None,
          quick: dict[str, int] | None = None) -> dict[str, int]:
    """The workload sizes the options ask for."""
    chosen = dict((quick or QUICK_SIZES) if args.quick else (full or FULL_SIZES))
    if args.rows is not None:
        chosen["bulk"] = chosen["upsert"] = args.rows
    if args.ops is not None:
        chosen["single"] = chosen["reads"] = args.ops
        chosen["lists"] = max(1, args.ops // 10)
    return chosen


def report(results: list[Result], markdown: bool,
           table: Callable[[list[Result]], str] = markdown_table) -> int:
    """Print the results table (and the Markdown one); name what is below target."""
    print()
    print_table(results)
    if markdown:
        print(f"\n{time.strftime('%Y-%m-%d')} -- {machine_note()}\n")
        print(table(results))
    failed = [r.name for r in results if r.passed is False]
    if failed:
        print(f"\nbelow target: {', '.join(failed)}", file=sys.stderr)
    return 0
