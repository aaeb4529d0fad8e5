"""The ``dataflow`` commands, on typer and rich (the ``[cli]`` extra; imported only by the
console script, never by ``import dataflow``).

``TARGET`` is ``module:attribute`` naming a :class:`~dataflow.DataFlow` (or a function
returning one), imported with the current directory on ``sys.path``. Exit codes are the
``EXIT_*`` constants of :mod:`dataflow.cli`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .cli import EXIT_ERROR, EXIT_OK, EXIT_PENDING, EXIT_REFUSED, EXIT_USAGE, _demo
from .errors import DataFlowError, MigrationRefusedError

app = typer.Typer(name="dataflow", help="DataFlow command line.", add_completion=False,
                  no_args_is_help=True)
out = Console()
err = Console(stderr=True)


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _version(value: bool) -> None:
    if value:
        print(f"dataflow {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False
          ) -> None:
    """DataFlow command line."""


def load_target(target: str) -> tuple[Any, Any]:
    """``module:attr`` -> (the DataFlow instance, its module)."""
    from .core import DataFlow

    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        err.print(f"dataflow: target {target!r} is not module:attribute (e.g. app.models:db).")
        raise _Exit(EXIT_USAGE)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        err.print(f"dataflow: cannot import {module_name!r}: {exc}")
        raise _Exit(EXIT_USAGE) from exc
    value = getattr(module, attr, None)
    if callable(value) and not isinstance(value, DataFlow):
        value = value()
    if not isinstance(value, DataFlow):
        err.print(f"dataflow: {target} is not a DataFlow instance "
                  f"(got {type(value).__name__}).")
        raise _Exit(EXIT_USAGE)
    return value, module


@app.command()
def demo(rows: Annotated[int, typer.Option(help="orders to import")] = 100_000,
         db: Annotated[str | None, typer.Option(help="database URL (default: a temporary "
                                                     "SQLite file)")] = None,
         no_progress: Annotated[bool, typer.Option("--no-progress",
                                                   help="no progress bar on stderr")] = False
         ) -> None:
    """Run a realistic scenario on embedded SQLite and print a summary."""
    raise _Exit(_demo(db, rows, no_progress))


@app.command()
def inspect(target: str, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False
            ) -> None:
    """Models (fields, indexes, constraints) and nodes (parameters, outputs) of TARGET."""
    db, _ = load_target(target)
    info = db.inspect()
    if as_json:
        print(json.dumps(info.as_dict(), indent=2, default=str))
        return
    for model in info.models().values():
        table = Table(title=f"{model.name} (table {model.table})")
        for column in ("field", "type", "null", "key", "unique", "index", "default", "references"):
            table.add_column(column)
        for f in model.fields.values():
            key = "pk" + (" gen" if f.generated else "") if f.primary_key else (
                "managed" if f.managed else "")
            table.add_row(f.name, f.type + (f"({f.max_length})" if f.max_length else ""),
                          "yes" if f.nullable else "", key, "yes" if f.unique else "",
                          "yes" if f.index else "", f.default or "", f.references or "")
        out.print(table)
        for name, text in {**{n: f"index ({', '.join(c)})" for n, c in model.indexes.items()},
                           **model.constraints}.items():
            out.print(f"  {name}: {text}")
    nodes = Table(title="nodes")
    nodes.add_column("node")
    nodes.add_column("parameters")
    nodes.add_column("outputs")
    for node in info.nodes().values():
        nodes.add_row(node.type_name, ", ".join(node.parameters or ("(any)",)),
                      ", ".join(node.outputs or ("(undeclared)",)))
    out.print(nodes)


@app.command()
def validate(target: str) -> None:
    """Check TARGET's models (references resolve) and every WorkflowBuilder in its module
    (nodes resolve, connections name real outputs and parameters). Exit 1 on a problem."""
    from .model import resolve_foreign_keys
    from .workflow import WorkflowBuilder

    db, module = load_target(target)
    problems: list[str] = []
    try:
        resolve_foreign_keys(db.models)
    except DataFlowError as exc:
        problems.append(f"models: {exc}")
    workflows = {n: v for n, v in vars(module).items() if isinstance(v, WorkflowBuilder)}
    for name, builder in workflows.items():
        try:
            builder.build()
        except DataFlowError as exc:
            problems.append(f"workflow {name}: {exc}")
    for problem in problems:
        err.print(f"[red]✗[/red] {problem}", markup=True, highlight=False)
    out.print(f"{len(db.models)} model(s), {len(workflows)} workflow(s): "
              f"{len(problems)} problem(s)")
    raise _Exit(EXIT_ERROR if problems else EXIT_OK)


@app.command()
def migrate(target: str,
            plan: Annotated[bool, typer.Option("--plan", help="print the plan, change nothing")] = False,
            apply: Annotated[bool, typer.Option("--apply", help="apply the plan")] = False,
            allow_destructive: Annotated[bool, typer.Option(
                "--allow-destructive", help="with --apply: allow destructive steps")] = False
            ) -> None:
    """Plan (exit 0 nothing to do, 3 additive steps pending, 4 destructive ones) or apply
    (exit 0, or 4 when destructive steps are refused) TARGET's migration."""
    if plan == apply:
        err.print("dataflow migrate: pass exactly one of --plan and --apply.")
        raise _Exit(EXIT_USAGE)
    db, _ = load_target(target)

    async def run() -> int:
        try:
            if plan:
                steps = await db.plan()
                out.print(steps.render() if steps else "nothing to migrate", highlight=False)
                if not steps:
                    return EXIT_OK
                return EXIT_REFUSED if steps.destructive else EXIT_PENDING
            try:
                done = await db.initialize(allow_destructive=allow_destructive)
            except MigrationRefusedError as exc:
                err.print(str(exc), highlight=False)
                return EXIT_REFUSED
            out.print(done.render() if done else "nothing to migrate", highlight=False)
            return EXIT_OK
        finally:
            await db.close()

    raise _Exit(asyncio.run(run()))


def run(argv: list[str]) -> int:
    """Run the command line on ``argv``; returns the exit code."""
    try:
        app(argv, standalone_mode=False)
    except _Exit as done:
        return done.code
    except typer.Exit as done:
        return int(done.exit_code)
    except DataFlowError as exc:
        err.print(f"dataflow: {exc}", highlight=False)
        return EXIT_ERROR
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return EXIT_USAGE
        raise
    return EXIT_OK
