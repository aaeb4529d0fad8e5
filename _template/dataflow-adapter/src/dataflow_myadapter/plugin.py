from collections.abc import Callable
from typing import Any

from dataflow import hookimpl


@hookimpl
def dataflow_register_adapters(register: Callable[[str, Any], None]) -> None:
    from .adapter import MyAdapter

    register("mydb", MyAdapter)


@hookimpl
def dataflow_dialect_compiler(dialect: str) -> Any:
    if dialect == "myadapter":
        from .dialect import MyCompiler

        return MyCompiler()
    return None
