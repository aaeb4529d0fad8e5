"""The migrations planner: compare models with the live schema, classify each step.

Additive steps (new table, new nullable column or column with a default, new index)
apply automatically. Destructive or incompatible steps (column dropped, type changed,
required column without a default, nullability tightened) are refused with the
printed plan unless the caller opts in with ``allow_destructive=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .model import FieldSpec, ModelSpec

if TYPE_CHECKING:
    from .adapter import TableInfo
    from .sql.compiler import SQLCompiler


@dataclass
class Step:
    """One change: ``kind`` is create_table, add_column, drop_column, alter_column."""

    kind: str
    model: ModelSpec
    column: str | None = None
    destructive: bool = False
    reason: str = ""
    sql: list[str] = field(default_factory=list)

    def describe(self) -> str:
        target = self.model.table + (f".{self.column}" if self.column else "")
        flag = "DESTRUCTIVE " if self.destructive else ""
        text = f"{flag}{self.kind} {target}"
        return f"{text} ({self.reason})" if self.reason else text


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    @property
    def destructive(self) -> list[Step]:
        return [s for s in self.steps if s.destructive]

    def __bool__(self) -> bool:
        return bool(self.steps)

    def render(self) -> str:
        if not self.steps:
            return "  (no changes)"
        return "\n".join(f"  {i + 1}. {s.describe()}" for i, s in enumerate(self.steps))


def plan_migration(
    models: list[ModelSpec],
    live: dict[str, TableInfo],
    compiler: SQLCompiler,
    type_of: object = None,
) -> Plan:
    """Steps that bring ``live`` tables in line with ``models``."""
    plan = Plan()
    for model in models:
        table = live.get(model.table)
        if table is None:
            plan.steps.append(Step("create_table", model, sql=compiler.create_table(model)))
            continue
        for name, f in model.fields.items():
            col = table.columns.get(name)
            if col is None:
                plan.steps.append(_add_column(model, f, compiler))
                continue
            if col.ltype is not None and col.ltype is not f.ltype:
                plan.steps.append(Step(
                    "alter_column", model, name, destructive=True,
                    reason=f"type {col.ltype.value} -> {f.ltype.value}",
                ))
            elif not f.primary_key and col.nullable != f.nullable:
                tightening = col.nullable and not f.nullable
                plan.steps.append(Step(
                    "alter_column", model, name, destructive=tightening,
                    reason="NULL -> NOT NULL" if tightening else "NOT NULL -> NULL",
                ))
        for name in table.columns:
            if name not in model.fields:
                plan.steps.append(Step("drop_column", model, name, destructive=True,
                                       reason="not in the model",
                                       sql=compiler.drop_column(model, name)))
    return plan


def _add_column(model: ModelSpec, f: FieldSpec, compiler: SQLCompiler) -> Step:
    if f.nullable:
        return Step("add_column", model, f.name, sql=compiler.add_column(model, f, None))
    if f.managed:
        default = compiler.literal(f, __import__("datetime").datetime(1970, 1, 1,
                                   tzinfo=__import__("datetime").timezone.utc))
        return Step("add_column", model, f.name, sql=compiler.add_column(model, f, default))
    if f.default is not None and f.has_default and f.default_factory is None:
        return Step("add_column", model, f.name,
                    sql=compiler.add_column(model, f, compiler.literal(f, f.default)))
    return Step("add_column", model, f.name, destructive=True,
                reason="required column without a default: existing rows have no value")
