"""Models from an existing database: a discovered table becomes a :class:`ModelSpec`.

Column types come from the adapter's introspection (``ColumnInfo.ltype``); server-side
defaults stay server-side (an insert that omits the column lets the database fill it);
``created_at`` / ``updated_at`` timestamp columns are managed as on DataFlow's own tables.
"""

from __future__ import annotations

import datetime as _dt
import re
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .errors import UnsupportedError
from .model import IDENTIFIER, MANAGED_TIMESTAMPS, FieldSpec, LogicalType, ModelSpec

if TYPE_CHECKING:
    from .adapter import TableInfo

PYTHON_TYPES: dict[LogicalType, Any] = {
    LogicalType.STR: str,
    LogicalType.INT: int,
    LogicalType.FLOAT: float,
    LogicalType.BOOL: bool,
    LogicalType.DATETIME: _dt.datetime,
    LogicalType.DATE: _dt.date,
    LogicalType.DECIMAL: Decimal,
    LogicalType.UUID: uuid.UUID,
    LogicalType.JSON: dict,
    LogicalType.ENUM: str,
}


def model_name_for(table: str) -> str:
    """``customer_order`` -> ``CustomerOrder`` (the inverse of the table-name rule)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"_+", table) if part) or table


def model_from_table(info: TableInfo, name: str | None = None) -> ModelSpec:
    """A model for a discovered table; columns of unknown type are left out."""
    model = name or model_name_for(info.name)
    pk = [c for c in info.columns.values() if c.primary_key]
    if len(pk) != 1 or pk[0].name != "id" or pk[0].ltype not in (
            LogicalType.INT, LogicalType.STR, LogicalType.UUID):
        raise UnsupportedError(
            f"table '{info.name}' has no single int, str or UUID primary key named 'id'.",
            model=model,
            fix="register a view with an 'id' key, or declare the model by hand.",
        )
    unique_single = {tuple(i["columns"]) for i in info.indexes
                     if i.get("unique") and not i.get("primary") and not i.get("where")}
    fields: dict[str, FieldSpec] = {}
    for col in info.columns.values():
        if col.ltype is None or col.ltype is LogicalType.ENUM or not IDENTIFIER.match(col.name):
            continue
        f = FieldSpec(col.name, col.ltype, PYTHON_TYPES[col.ltype], nullable=col.nullable)
        if col.primary_key:
            f.primary_key = True
            f.nullable = False
            if col.default is not None:
                f.auto_increment = col.ltype is LogicalType.INT
                f.generated_uuid = col.ltype is LogicalType.UUID
                if col.ltype is LogicalType.STR:
                    f.server_default = col.default
        elif col.name in MANAGED_TIMESTAMPS and col.ltype is LogicalType.DATETIME:
            f.managed = True
        elif col.default is not None:
            f.server_default = col.default
        f.unique = (col.name,) in unique_single and not col.primary_key
        fields[col.name] = f
    fields = {"id": fields.pop("id"), **fields}
    unique_together = [g for g in unique_single if len(g) > 1 and all(c in fields for c in g)]
    cls = type(model, (), {"__tablename__": info.name, "__module__": __name__})
    return ModelSpec(model, info.name, fields, cls, unique_together, [],
                     {"discovered": True})
