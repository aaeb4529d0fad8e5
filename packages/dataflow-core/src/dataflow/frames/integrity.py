"""Steps 3 and 4 of the frame pipeline: foreign keys and invalid-row propagation.

A foreign key value must name a row of the parent model's frame in the same call, or a
row already in the database (looked up once per foreign-key column, for the values the
frames do not hold). Then invalidity travels along the foreign-key edges: a child whose
parent row in this call is invalid is invalid (DF-310), and with ``propagate="both"`` a
parent row referenced by an invalid child is invalid too, until nothing changes -- so the
valid rows of every model form a relationally consistent set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import polars as pl

from ..errors import RelatedRowError
from ..model import ForeignKey, ModelSpec
from .rules import INTEGRITY, ROW, Checked

Propagate = Literal["down", "both"]
#: ``lookup(parent model, key field, distinct values)`` -> the values found in the database
Lookup = Callable[[ModelSpec, str, pl.Series], Awaitable[pl.Series]]
RELATED = RelatedRowError.code


@dataclass
class Edge:
    child: str
    fk: ForeignKey
    parent: str
    #: the referenced keys found in the database (not in the parent's frame)
    in_database: pl.Series


def _bad_rows(state: Checked) -> pl.Series:
    return state.errors.get_column(ROW).unique()


def _add(state: Checked, rows: pl.DataFrame, field: str, code: str, message: pl.Expr) -> None:
    new = rows.select(pl.col(ROW), pl.lit(field).alias("field"), pl.lit(code).alias("code"),
                      message.cast(pl.String).alias("message"))
    state.errors = pl.concat([state.errors, new])


async def check_foreign_keys(states: dict[str, Checked], models: dict[str, ModelSpec],
                             lookup: Lookup) -> list[Edge]:
    """Mark rows whose foreign key names no parent (DF-902); return the edges."""
    edges: list[Edge] = []
    for name, state in states.items():
        for fk in state.model.foreign_keys:
            if fk.column not in state.frame.columns:
                continue
            parent_model = models[fk.target]
            values = state.frame.get_column(fk.column).drop_nulls().unique()
            parent = states.get(fk.target)
            if parent is not None and fk.target_field in parent.frame.columns:
                rest = values.filter(~values.is_in(parent.frame.get_column(fk.target_field)
                                                   .drop_nulls().implode()))
            else:
                rest = values
            found = await lookup(parent_model, fk.target_field, rest) if rest.len() else rest.clear()
            edges.append(Edge(name, fk, fk.target, found))
            missing = rest.filter(~rest.is_in(found.implode()))
            if missing.len():
                col = pl.col(fk.column)
                rows = state.frame.filter(col.is_in(missing.implode()))
                _add(state, rows, fk.column, INTEGRITY, pl.concat_str([
                    pl.lit(f"references {fk.target}.{fk.target_field} = "),
                    col.cast(pl.String).str.slice(0, 60),
                    pl.lit(f", which is neither in the {fk.target} frame nor in the database "
                           f"(constraint {fk.name})")]))
    return edges


def propagate(states: dict[str, Checked], edges: list[Edge], mode: Propagate) -> None:
    """Spread invalidity along ``edges`` until it stops changing (see the module docstring)."""
    inner = [e for e in edges if e.parent in states]
    changed = True
    while changed:
        changed = False
        for edge in inner:
            child, parent = states[edge.child], states[edge.parent]
            col, key = edge.fk.column, edge.fk.target_field
            if key not in parent.frame.columns:
                continue
            parent_bad = parent.frame.get_column(ROW).is_in(_bad_rows(parent).implode())
            valid_keys = parent.frame.filter(~parent_bad).get_column(key)
            bad_keys = parent.frame.filter(parent_bad).get_column(key).drop_nulls().unique()
            bad_keys = bad_keys.filter(~bad_keys.is_in(valid_keys.implode())
                                       & ~bad_keys.is_in(edge.in_database.implode()))
            if bad_keys.len():
                rows = child.frame.filter(~pl.col(ROW).is_in(_bad_rows(child).implode())
                                          & pl.col(col).is_in(bad_keys.implode()))
                if rows.height:
                    _add(child, rows, col, RELATED, pl.concat_str([
                        pl.lit(f"its parent {edge.parent} row with {key} = "),
                        pl.col(col).cast(pl.String).str.slice(0, 60),
                        pl.lit(" is invalid in this call")]))
                    changed = True
            if mode != "both":
                continue
            child_bad = child.frame.filter(pl.col(ROW).is_in(_bad_rows(child).implode()))
            refs = child_bad.get_column(col).drop_nulls().unique()
            if refs.len():
                rows = parent.frame.filter(~pl.col(ROW).is_in(_bad_rows(parent).implode())
                                           & pl.col(key).is_in(refs.implode()))
                if rows.height:
                    _add(parent, rows, key, RELATED, pl.concat_str([
                        pl.lit(f"an invalid {edge.child} row references it through "
                               f"{edge.child}.{col} = "),
                        pl.col(key).cast(pl.String).str.slice(0, 60)]))
                    changed = True
