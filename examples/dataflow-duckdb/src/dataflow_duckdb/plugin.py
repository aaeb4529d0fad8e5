from collections.abc import Callable
from typing import Any

from dataflow import hookimpl


@hookimpl
def dataflow_register_adapters(register: Callable[[str, Any], None]) -> None:
    from .adapter import DuckDBAdapter

    register("duckdb", DuckDBAdapter)


@hookimpl
def dataflow_dialect_compiler(dialect: str) -> Any:
    if dialect == "duckdb":
        from .dialect import DuckDBCompiler

        return DuckDBCompiler()
    return None
