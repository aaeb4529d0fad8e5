from dataflow.model import FieldSpec, LogicalType
from dataflow.sql.compiler import SQLCompiler


class MyCompiler(SQLCompiler):
    """Override flags and the few methods that differ (see dataflow_sqlite.dialect)."""

    name = "myadapter"
    paramstyle = "qmark"  # or "numeric" ($1) or "format" (%s)

    def column_type(self, f: FieldSpec) -> str:
        return {LogicalType.INT: "INTEGER", LogicalType.STR: "TEXT"}.get(f.ltype, "TEXT")
