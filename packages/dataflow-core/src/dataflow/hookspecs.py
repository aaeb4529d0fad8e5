"""The plugin hooks of DataFlow, one typed spec each.

Adapters and extensions implement these with ``@dataflow.hookimpl`` in a module
named by a ``dataflow.plugins`` entry point. Core's own defaults are registered as
plugins too, so there is one code path. Hooks that hand back objects take a
``register`` callback instead of returning lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .adapter import Adapter
    from .core import DataFlow
    from .pool import ServerInfo
    from .sql.compiler import SQLCompiler

hookspec = pluggy.HookspecMarker("dataflow")
hookimpl = pluggy.HookimplMarker("dataflow")


@hookspec
def dataflow_register_adapters(register: Callable[[str, type[Adapter]], None]) -> None:
    """Register adapter classes by URL scheme: ``register("sqlite", SQLiteAdapter)``."""


@hookspec(firstresult=True)
def dataflow_dialect_compiler(dialect: str) -> SQLCompiler | None:
    """Who compiles the query AST for ``dialect``? Return a compiler, or None to pass.

    First result wins, so a plugin registered after an adapter can replace or extend
    its compiler (for a server variant, say).
    """


@hookspec
def dataflow_node_types(db: DataFlow, register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Contribute extra workflow node types for ``db``: ``register(type_name, node_factory)``.

    ``node_factory(db)`` returns an object with ``async run(params) -> dict``, ideally with
    ``outputs()`` and ``inputs()`` too (see :class:`dataflow.nodes.Node`): the output shapes
    of the model nodes are the convention (README, "Nodes").
    """


@hookspec(firstresult=True)
def dataflow_pool_size(adapter: str, server: ServerInfo, worker_count: int) -> int | None:
    """How many connections should one worker's pool hold? First answer wins.

    ``server`` carries what the adapter read from the server (``max_connections``,
    reserved connections); core's default policy answers last.
    """


@hookspec
def dataflow_source_connectors(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register source connector factories for the data fabric by kind (``"rest"``, ``"s3"``).

    ``register(kind, factory)``; ``factory(name, config)`` returns a connector. Database
    adapters register ``"database:<scheme>"``: ``factory(db, tables)`` returns a change
    detector (``async signature()``) for sources that are a database of that scheme.
    """


@hookspec
def dataflow_instance_methods(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Contribute methods to every DataFlow instance: ``register(name, function)``.

    ``db.<name>(*args)`` calls ``function(db, *args)``. Names DataFlow defines itself win.
    """
