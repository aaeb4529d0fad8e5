"""dataflow-mongo's hook implementations, loaded through the ``dataflow.plugins`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataflow import hookimpl


@hookimpl
def dataflow_register_adapters(register: Callable[[str, Any], None]) -> None:
    from .adapter import MongoAdapter

    register("mongodb", MongoAdapter)  # mongodb+srv:// resolves to the same scheme


@hookimpl
def dataflow_node_types(db: Any, register: Callable[[str, Callable[..., Any]], None]) -> None:
    """The eight schemaless document nodes, for instances on MongoDB."""
    from .adapter import MongoAdapter

    if not isinstance(db.adapter, MongoAdapter):
        return
    from .nodes import DOCUMENT_NODES

    for name, cls in DOCUMENT_NODES.items():
        register(name, cls)


def documents(db: Any, collection: str) -> Any:
    """``db.documents("events")``: schemaless documents in a collection of a MongoDB instance."""
    from dataflow.errors import ClosedError, UnsupportedError

    from .adapter import MongoAdapter

    if not isinstance(db.adapter, MongoAdapter):
        raise UnsupportedError(
            f"{db.adapter.capabilities.name} stores no schemaless documents (db.documents).",
            fix="declare a model with @db.model, or use a mongodb:// URL.")
    if db._closed:
        raise ClosedError(f"DataFlow {db.name!r} is closed.", fix="create a new instance.")
    from .documents import DocumentCollection

    return DocumentCollection(db, db.adapter, collection)


@hookimpl
def dataflow_instance_methods(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("documents", documents)
