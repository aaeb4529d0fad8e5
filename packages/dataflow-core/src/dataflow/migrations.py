"""The migrations planner: compare models with the live schema, classify each step.

Additive steps (new table, new nullable column or column with a default, new index)
apply automatically. Destructive or incompatible steps (column dropped, type changed,
required column without a default, nullability tightened) are refused with the
printed plan unless the caller opts in with ``allow_destructive=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .model import FieldSpec, ForeignKey, ModelSpec

if TYPE_CHECKING:
    from .adapter import TableInfo
    from .sql.compiler import SQLCompiler


@dataclass
class Step:
    """One change: ``kind`` is create_table, add_column, drop_column, alter_column,
    add_foreign_key or alter_foreign_key."""

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
    compiler: SQLCompiler | None,
    type_of: object = None,
) -> Plan:
    """Steps that bring ``live`` tables in line with ``models``.

    Tables are created parents first (foreign keys). In a reference cycle, the key that
    closes it is added after both tables exist, where the backend can ALTER one in.
    Without a SQL ``compiler`` (a document store) the steps carry no SQL: the adapter
    applies each one with ``apply_step``, and foreign keys are the adapter's to refuse.
    """
    plan = Plan()
    ordered, cyclic = dependency_order(models)
    deferred = ({id(fk) for fk in cyclic}
                if compiler is not None and compiler.alter_add_foreign_key else set())
    closing: list[Step] = []
    for model in ordered:
        table = live.get(model.table)
        if table is None:
            now = [fk for fk in model.foreign_keys if id(fk) not in deferred]
            if compiler is None:
                plan.steps.append(Step("create_table", model))
                continue
            plan.steps.append(Step("create_table", model, sql=compiler.create_table(model, now)))
            closing += [_add_foreign_key(model, fk, compiler) for fk in model.foreign_keys
                        if id(fk) in deferred]
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
                                       sql=compiler.drop_column(model, name) if compiler else []))
        if compiler is not None:
            plan.steps += _foreign_key_steps(model, table, compiler)
    plan.steps += closing
    return plan


def dependency_order(models: list[ModelSpec]) -> tuple[list[ModelSpec], list[ForeignKey]]:
    """``models`` with every referenced model before the models referencing it, and the
    foreign keys that close a reference cycle (self-references are not cycles)."""
    by_name = {m.name: m for m in models}
    order: list[ModelSpec] = []
    state: dict[str, int] = {}
    cyclic: list[ForeignKey] = []

    def visit(m: ModelSpec) -> None:
        state[m.name] = 1
        for fk in m.foreign_keys:
            target = by_name.get(fk.target)
            if target is None or target is m:
                continue
            seen = state.get(target.name)
            if seen == 1:
                cyclic.append(fk)
            elif seen is None:
                visit(target)
        state[m.name] = 2
        order.append(m)

    for m in models:
        if m.name not in state:
            visit(m)
    return order, cyclic


_SAME_ACTION = {"NO ACTION": "RESTRICT"}


def _foreign_key_steps(model: ModelSpec, table: TableInfo, compiler: SQLCompiler) -> list[Step]:
    steps = []
    live = {fk.get("column"): fk for fk in table.foreign_keys}
    for fk in model.foreign_keys:
        found = live.get(fk.column)
        if found is None:
            steps.append(_add_foreign_key(model, fk, compiler))
            continue
        action = str(found.get("on_delete") or "NO ACTION").upper()
        if _SAME_ACTION.get(action, action) != fk.action:
            steps.append(_add_foreign_key(model, fk, compiler, replace=found))
    return steps


def _add_foreign_key(model: ModelSpec, fk: ForeignKey, compiler: SQLCompiler,
                     replace: dict[str, object] | None = None) -> Step:
    """Add (or, with ``replace``, change) a foreign key on an existing table. The database
    checks the existing rows; a backend without ALTER TABLE ADD CONSTRAINT rebuilds the
    table instead, which is destructive (opt-in) and done by ``adapter.apply_step``."""
    reason = f"{fk.name}: {fk.column} -> {fk.target_table}.{fk.target_field} ON DELETE {fk.action}"
    kind = "add_foreign_key"
    if replace is not None:
        kind = "alter_foreign_key"
        reason += f", was ON DELETE {replace.get('on_delete')}"
    if not compiler.alter_add_foreign_key:
        return Step(kind, model, fk.column, destructive=True,
                    reason=f"{reason}; {compiler.name} has no ALTER TABLE ADD CONSTRAINT: "
                    "the table is rebuilt")
    sql = compiler.add_foreign_key(model, fk)
    if replace is not None:
        old = str(replace.get("name") or fk.name)
        sql = [compiler.drop_foreign_key(model, old), *sql]
    return Step(kind, model, fk.column, reason=reason, sql=sql)


def _add_column(model: ModelSpec, f: FieldSpec, compiler: SQLCompiler | None) -> Step:
    if compiler is None:  # the adapter fills existing records itself (apply_step)
        if f.nullable or f.managed or (f.has_default and f.default_factory is None):
            return Step("add_column", model, f.name)
        return Step("add_column", model, f.name, destructive=True,
                    reason="required column without a default: existing rows have no value")
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
