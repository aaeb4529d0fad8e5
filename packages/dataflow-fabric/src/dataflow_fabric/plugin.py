"""The fabric's plugin: REST, file and database connectors, and db.source/product/start/stop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dataflow import hookimpl
from dataflow.core import DataFlow

from .config import DatabaseSourceConfig, FileSourceConfig, RestSourceConfig, SourceConfig
from .database import DatabaseConnector
from .files import FileConnector
from .products import ProductFunction
from .rest import RestConnector
from .runtime import fabric_of
from .s3 import cloud_connector
from .server import start, stop
from .source import Source
from .streams import stream_connector


def source(db: DataFlow, name: str, config: SourceConfig) -> Source:
    """``db.source("crm", RestSourceConfig(...))``: register an external source."""
    return fabric_of(db).add_source(name, config)


def product(db: DataFlow, name: str, *, mode: str = "materialized", depends_on: Sequence[str] = (),
            ttl: float = 60.0, max_entries: int = 1024, debounce: float = 0.1,
            timeout: float | None = 30.0) -> Callable[[ProductFunction], ProductFunction]:
    """``@db.product("dashboard", depends_on=["User", "crm"])``: declare a data product.

    ``mode``: ``materialized`` (cached, refreshed ``debounce`` seconds after a dependency
    changes), ``parameterized`` (cached per query-parameter combination for ``ttl`` seconds)
    or ``virtual`` (computed per request). ``max_entries`` bounds a product's cache (tenants x
    parameter combinations, least recently used first out); a computation running longer
    than ``timeout`` seconds fails (DF-1103).
    """
    def register(fn: ProductFunction) -> ProductFunction:
        fabric_of(db).add_product(name, fn, mode=mode, depends_on=depends_on, ttl=ttl,
                                  max_entries=max_entries, debounce=debounce, timeout=timeout)
        return fn

    return register


@hookimpl
def dataflow_source_connectors(register: Callable[[str, Callable[..., Any]], None]) -> None:
    def rest(name: str, config: RestSourceConfig) -> RestConnector:
        return RestConnector(name, config)

    def file(name: str, config: FileSourceConfig) -> FileConnector:
        return FileConnector(name, config)

    def database(name: str, config: DatabaseSourceConfig) -> DatabaseConnector:
        return DatabaseConnector(name, config)

    register("rest", rest)
    register("file", file)
    register("database", database)
    register("cloud", cloud_connector)
    register("stream", stream_connector)


@hookimpl
def dataflow_instance_methods(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("source", source)
    register("product", product)
    register("start", start)
    register("stop", stop)
