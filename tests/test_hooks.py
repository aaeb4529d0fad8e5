"""One test per hookspec (test_hook_<name>), plus a meta-test that keeps them in step."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dataflow
from dataflow import hookimpl, hookspecs, plugins
from dataflow.adapter import DatabaseURL
from dataflow.errors import AdapterNotFoundError
from dataflow.pool import ServerInfo, default_pool_size


@pytest.fixture
def inline_plugin() -> Iterator[Callable[[object], None]]:
    """Register plugin objects for one test; unregister them in teardown."""
    added: list[object] = []

    def add(plugin: object) -> None:
        plugins.register(plugin)
        added.append(plugin)

    yield add
    for plugin in added:
        plugins.unregister(plugin)


def hook_names() -> list[str]:
    return [n for n, f in vars(hookspecs).items() if n.startswith("dataflow_") and callable(f)]


def test_every_hook_has_its_own_test() -> None:
    module = sys.modules[__name__]
    missing = [n for n in hook_names() if not hasattr(module, f"test_hook_{n}")]
    assert missing == []


def test_every_hookspec_is_typed_and_documented() -> None:
    for name in hook_names():
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and fn.__doc__.strip(), name
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty, name
        for p in sig.parameters.values():
            assert p.annotation is not inspect.Parameter.empty, (name, p.name)


def test_hook_dataflow_register_adapters(inline_plugin: Callable[[object], None]) -> None:
    from dataflow_sqlite.adapter import SQLiteAdapter

    class Aliased:
        @hookimpl
        def dataflow_register_adapters(self, register: Callable[[str, Any], None]) -> None:
            register("litefile", SQLiteAdapter)

    with pytest.raises(AdapterNotFoundError) as err:
        dataflow.DataFlow("litefile://:memory:")
    assert "sqlite" in str(err.value)  # lists what is installed
    inline_plugin(Aliased())
    db = dataflow.DataFlow("litefile://:memory:")
    assert isinstance(db.adapter, SQLiteAdapter)


def test_hook_dataflow_dialect_compiler(inline_plugin: Callable[[object], None]) -> None:
    from dataflow_sqlite.dialect import SQLiteCompiler

    class Shouting(SQLiteCompiler):
        name = "shouting"

    class Override:
        @hookimpl(tryfirst=True)
        def dataflow_dialect_compiler(self, dialect: str) -> Any:
            return Shouting() if dialect == "sqlite" else None

    assert type(plugins.dialect_compiler("sqlite")) is SQLiteCompiler
    inline_plugin(Override())
    assert isinstance(plugins.dialect_compiler("sqlite"), Shouting)
    assert isinstance(dataflow.DataFlow("sqlite://:memory:").adapter.compiler, Shouting)  # type: ignore[attr-defined]
    assert plugins.dialect_compiler("no-such-dialect") is None


async def test_hook_dataflow_node_types(inline_plugin: Callable[[object], None]) -> None:
    from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder

    class Echo:
        type_name = "EchoNode"

        def __init__(self, db: Any) -> None:
            self.db = db

        async def run(self, params: dict[str, Any]) -> dict[str, Any]:
            return {"echo": params["value"], "db": self.db.name}

    class Contributes:
        @hookimpl
        def dataflow_node_types(self, db: Any, register: Callable[[str, Any], None]) -> None:
            if db.name == "hooked":
                register("EchoNode", Echo)

    inline_plugin(Contributes())
    db = dataflow.DataFlow("sqlite://:memory:", name="hooked")
    try:
        wf = WorkflowBuilder().add_node("EchoNode", "e", {"value": 42})
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
        assert results["e"] == {"echo": 42, "db": "hooked"}
    finally:
        await db.close()


def test_hook_dataflow_pool_size(inline_plugin: Callable[[object], None]) -> None:
    server = ServerInfo(max_connections=100, reserved_connections=3)
    assert plugins.pool_size("postgresql", server, 2) == default_pool_size(server, 2) == 38
    assert plugins.pool_size("sqlite", server, 2) == 1  # dataflow-sqlite answers first

    class Fixed:
        @hookimpl(tryfirst=True)
        def dataflow_pool_size(self, adapter: str, server: ServerInfo, worker_count: int) -> int | None:
            return 7 if adapter == "postgresql" else None

    inline_plugin(Fixed())
    assert plugins.pool_size("postgresql", server, 2) == 7
    assert plugins.pool_size("mysql", server, 4) == default_pool_size(server, 4)


def test_hook_dataflow_source_connectors(inline_plugin: Callable[[object], None]) -> None:
    def make_s3(**config: Any) -> dict[str, Any]:
        return {"kind": "s3-test", **config}

    class Sources:
        @hookimpl
        def dataflow_source_connectors(self, register: Callable[[str, Any], None]) -> None:
            register("s3-test", make_s3)

    assert "s3-test" not in plugins.source_connectors()
    inline_plugin(Sources())
    factory = plugins.source_connectors()["s3-test"]
    assert factory(url="https://example.invalid") == {"kind": "s3-test", "url": "https://example.invalid"}


def test_hook_dataflow_instance_methods(inline_plugin: Callable[[object], None]) -> None:
    def greet(db: Any, who: str) -> str:
        return f"{db.name} greets {who}"

    def shadow(db: Any) -> str:
        return "never called"

    class Methods:
        @hookimpl
        def dataflow_instance_methods(self, register: Callable[[str, Any], None]) -> None:
            register("greet", greet)
            register("transaction", shadow)  # DataFlow's own methods win

    db = dataflow.DataFlow("sqlite://:memory:", name="greeter")
    assert not hasattr(db, "greet")
    with pytest.raises(AttributeError):
        db.greet  # noqa: B018
    inline_plugin(Methods())
    assert db.greet("you") == "greeter greets you"
    assert db.transaction().__class__.__name__ == "Transaction"
    with pytest.raises(AttributeError):
        db._private  # noqa: B018  (underscored names never reach plugins)


def test_default_pool_policy_clamps() -> None:
    assert default_pool_size(ServerInfo(max_connections=10_000), 1) == 50
    assert default_pool_size(ServerInfo(max_connections=5, reserved_connections=4), 8) == 1
    assert default_pool_size(ServerInfo(max_connections=None), 1) >= 2


def test_url_parsing_rules() -> None:
    assert DatabaseURL.parse("sqlite:///app.db").database == "app.db"
    assert DatabaseURL.parse("sqlite:////abs/app.db").database == "/abs/app.db"
    u = DatabaseURL.parse("postgresql://us%40r:p%23w@h:5433/db?sslmode=off")
    assert (u.username, u.password, u.host, u.port, u.database) == ("us@r", "p#w", "h", 5433, "db")
    assert u.query == {"sslmode": "off"}
    assert "p#w" not in u.redacted() or u.password is None


def test_every_hook_is_documented_with_its_signature() -> None:
    """ARCHITECTURE.md's hook table names each spec with its exact parameters (datasette's
    test_docs idea): a renamed or new parameter fails here until the docs follow."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "ARCHITECTURE.md").read_text()
    for name in hook_names():
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"`{name}({params})`" in text, f"{name}({params}) is not documented"
