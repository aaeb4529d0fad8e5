"""Shared timing harness for the DataFlow benchmarks (SQLite, Postgres, MySQL, ...).

Plain standard library; no dependency on DataFlow itself, so every backend bench can import it with
``sys.path`` set to ``bench/`` (or by running ``python bench/bench_<backend>.py`` from the repo root,
which puts ``bench/`` on the path automatically).

API (all times in seconds)::

    from harness import Result, measure, measure_import, print_header, print_table, markdown_table

    r = await measure(
        "bulk insert 100k (express)",
        ours=lambda: express_bulk_insert(),     # zero-arg callable returning a fresh awaitable
        raw=lambda: raw_bulk_insert(),          # same work with the raw driver
        repeat=3,                               # best-of-N for each side
        setup=lambda: reset_tables(),           # optional: awaited (or called) before EVERY run, untimed
        target=0.8,                             # optional: ratio threshold to mark PASS/FAIL
    )
    r.ratio        # raw_time / ours_time; >= 1.0 means DataFlow is at least as fast as the raw driver

    imp = measure_import("python -c 'import dataflow'", "import dataflow", repeat=7)   # best-of subprocess

    print_table([r, ...])            # aligned text table on stdout
    markdown_table([r, ...])         # the same as a Markdown table (for bench/RESULTS.md)

Runs alternate ours/raw (ours, raw, ours, raw, ...) so drift (thermal, page cache) hits both sides equally.
The best (minimum) time of each side is used: it is the least noisy estimator for a deterministic workload.
"""

from __future__ import annotations

import inspect
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Result",
    "machine_note",
    "markdown_table",
    "measure",
    "measure_import",
    "print_header",
    "print_table",
    "time_async",
]

AsyncFactory = Callable[[], Awaitable[Any]]
Setup = Callable[[], Any] | None


@dataclass
class Result:
    """One workload's outcome. ``ratio`` = raw_time / ours_time (>= 1.0: we are as fast as raw)."""

    name: str
    ours: float
    raw: float | None = None
    target: float | None = None
    unit: str = "s"
    note: str = ""
    samples_ours: list[float] = field(default_factory=list)
    samples_raw: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.raw is None or self.ours <= 0:
            return None
        return self.raw / self.ours

    @property
    def passed(self) -> bool | None:
        """True/False against ``target`` (a ratio threshold, or for raw-less results an upper bound)."""
        if self.target is None:
            return None
        if self.raw is not None:
            r = self.ratio
            return r is not None and r >= self.target
        return self.ours <= self.target

    def row(self) -> list[str]:
        ratio = self.ratio
        verdict = {None: "", True: "PASS", False: "FAIL"}[self.passed]
        tgt = ""
        if self.target is not None:
            tgt = f">= {self.target:.2f}x" if self.raw is not None else f"<= {_fmt(self.target, self.unit)}"
        return [
            self.name,
            _fmt(self.ours, self.unit),
            "" if self.raw is None else _fmt(self.raw, self.unit),
            "" if ratio is None else f"{ratio:.2f}x",
            tgt,
            verdict,
        ]


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value >= 1:
            return f"{value:.3f} s"
        return f"{value * 1000:.1f} ms"
    return f"{value:.1f} {unit}"


async def _maybe_await(x: Any) -> None:
    if inspect.isawaitable(x):
        await x


async def time_async(factory: AsyncFactory, setup: Setup = None) -> float:
    """Run ``setup`` (untimed), then time one awaited ``factory()``; return seconds."""
    if setup is not None:
        await _maybe_await(setup())
    t0 = time.perf_counter()
    await factory()
    return time.perf_counter() - t0


async def measure(
    name: str,
    ours: AsyncFactory,
    raw: AsyncFactory | None = None,
    repeat: int = 3,
    *,
    setup: Setup = None,
    target: float | None = 0.8,
    note: str = "",
    quiet: bool = False,
    warmup: int = 0,
) -> Result:
    """Time ``ours`` against ``raw`` (best of ``repeat`` each, interleaved) and print one line.

    ``ours`` / ``raw`` are zero-argument callables returning a *new* awaitable per call.
    ``setup`` (sync or async, optional) runs before every single run and is not timed.
    ``warmup``: untimed runs of each side first (interleaved too), e.g. so the first reads
    of freshly loaded pages -- which write their visibility hints -- count on neither side.
    Returns a :class:`Result`; ``result.ratio`` = raw/ours.
    """
    for _ in range(warmup):
        await time_async(ours, setup)
        if raw is not None:
            await time_async(raw, setup)
    s_ours: list[float] = []
    s_raw: list[float] = []
    for _ in range(max(1, repeat)):
        s_ours.append(await time_async(ours, setup))
        if raw is not None:
            s_raw.append(await time_async(raw, setup))
    res = Result(
        name=name,
        ours=min(s_ours),
        raw=min(s_raw) if s_raw else None,
        target=target if raw is not None else None,
        note=note,
        samples_ours=s_ours,
        samples_raw=s_raw,
    )
    if not quiet:
        _print_line(res)
    return res


def measure_import(
    name: str, statement: str = "import dataflow", repeat: int = 7, *, target: float | None = 0.15,
    python: str | None = None,
) -> Result:
    """Best-of-``repeat`` wall time of ``python -c <statement>`` in a fresh subprocess (includes startup).

    Also reports, as ``note``, the bare interpreter start-up time (``python -c pass``) for context.
    """
    exe = python or sys.executable
    env = dict(os.environ)

    def run(stmt: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([exe, "-c", stmt], check=True, env=env)
        return time.perf_counter() - t0

    run(statement)  # warm the page cache / pyc files
    samples = [run(statement) for _ in range(max(1, repeat))]
    bare = min(run("pass") for _ in range(max(1, repeat)))
    res = Result(name=name, ours=min(samples), target=target, samples_ours=samples,
                 note=f"bare interpreter {bare * 1000:.0f} ms")
    _print_line(res)
    return res


_HEAD = ["workload", "dataflow", "raw", "ratio", "target", ""]


def _print_line(r: Result) -> None:
    cells = r.row()
    extra = f"  ({r.note})" if r.note else ""
    print(f"  {cells[0]:<44} ours {cells[1]:>11}  raw {cells[2]:>11}  {cells[3]:>7}  {cells[5]}{extra}",
          flush=True)


def print_header(title: str) -> None:
    print(f"\n== {title} ==  ({machine_note()})", flush=True)


def print_table(results: list[Result]) -> None:
    rows = [_HEAD] + [r.row() for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def markdown_table(results: list[Result]) -> str:
    """The results as a Markdown table (paste under your backend's section in bench/RESULTS.md)."""
    lines = ["| " + " | ".join(h or "result" for h in _HEAD) + " |",
             "|" + "---|" * len(_HEAD)]
    for r in results:
        cells = r.row()
        if r.note:
            cells[0] = f"{cells[0]} ({r.note})"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_note() -> str:
    """One line describing the machine: Python, OS, CPU count."""
    cpu = platform.processor() or platform.machine()
    return (f"Python {platform.python_version()} on {platform.system()} {platform.release()} "
            f"({cpu}, {os.cpu_count()} CPUs)")
