"""The plugin manager: lazy, once-only entry-point loading and a typed facade.

Entry points in the ``dataflow.plugins`` group are loaded the first time a hook is
needed (never at ``import dataflow``). ``DATAFLOW_DISABLE_PLUGIN_AUTOLOAD=1`` stops
autoloading (register plugins by hand with :func:`register`);
``DATAFLOW_BLOCK_PLUGINS=a,b`` skips named entry points.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import pluggy

from . import hookspecs
from .errors import AdapterNotFoundError, ExtensionNotInstalledError, PluginError

if TYPE_CHECKING:
    from .adapter import Adapter
    from .core import DataFlow
    from .pool import ServerInfo
    from .sql.compiler import SQLCompiler

ENTRY_POINT_GROUP = "dataflow.plugins"
#: which distribution provides which URL scheme, for "install X" hints
KNOWN_ADAPTER_PACKAGES = {
    "sqlite": "dataflow-sqlite",
    "postgresql": "dataflow-postgres",
    "postgres": "dataflow-postgres",
    "mysql": "dataflow-mysql",
    "mariadb": "dataflow-mysql",
    "mongodb": "dataflow-mongo",
}
#: which distribution contributes which DataFlow method, for "install X" hints
KNOWN_METHOD_PACKAGES = {
    "source": "dataflow-fabric",
    "product": "dataflow-fabric",
    "start": "dataflow-fabric",
    "stop": "dataflow-fabric",
    "documents": "dataflow-mongo",
}

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_loaded = False


def manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with specs and core defaults (entry points not loaded)."""
    global _pm
    with _lock:
        if _pm is None:
            from .pool import DefaultPoolPolicy

            pm = pluggy.PluginManager("dataflow")
            pm.add_hookspecs(hookspecs)
            pm.register(DefaultPoolPolicy(), name="dataflow.default_pool_policy")
            _pm = pm
        return _pm


def load() -> pluggy.PluginManager:
    """Load entry-point plugins once (unless disabled) and check every impl has a spec."""
    global _loaded
    pm = manager()
    with _lock:
        if _loaded:
            return pm
        _loaded = True
        if os.environ.get("DATAFLOW_DISABLE_PLUGIN_AUTOLOAD", "").lower() not in ("1", "true", "yes"):
            blocked = {b.strip() for b in os.environ.get("DATAFLOW_BLOCK_PLUGINS", "").split(",")}
            for name in blocked - {""}:
                pm.set_blocked(name)
            try:
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            except Exception as exc:  # a broken third-party plugin must say who it is
                raise PluginError(f"loading a {ENTRY_POINT_GROUP} entry point failed: {exc!r}") from exc
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"a plugin implements a hook DataFlow does not define: {exc}") from exc
    return pm


def register(plugin: object, name: str | None = None) -> str | None:
    """Register a plugin object or module by hand (tests, apps with autoload off)."""
    return manager().register(plugin, name=name)


def unregister(plugin: object | None = None, name: str | None = None) -> None:
    manager().unregister(plugin=plugin, name=name)


def reset_for_tests() -> None:
    """Forget loaded plugins so the next :func:`load` starts over."""
    global _pm, _loaded
    with _lock:
        _pm = None
        _loaded = False


# --- the typed facade: one function per hook -----------------------------------------
def adapters() -> dict[str, type[Adapter]]:
    found: dict[str, type[Adapter]] = {}

    def add(scheme: str, cls: type[Adapter]) -> None:
        found.setdefault(scheme.lower(), cls)

    load().hook.dataflow_register_adapters(register=add)
    return found


def adapter_for(scheme: str) -> type[Adapter]:
    available = adapters()
    cls = available.get(scheme.lower())
    if cls is None:
        installed = ", ".join(sorted(available)) or "none"
        package = KNOWN_ADAPTER_PACKAGES.get(scheme.lower())
        hint = (
            f"install {package} from this repository (pip install ./packages/{package})"
            if package
            else "install an adapter package that registers this scheme"
        )
        raise AdapterNotFoundError(
            f"no adapter for URL scheme '{scheme}'. Installed adapters: {installed}.",
            fix=f"{hint}, or use one of the installed schemes.",
        )
    return cls


def dialect_compiler(dialect: str) -> SQLCompiler | None:
    result: SQLCompiler | None = load().hook.dataflow_dialect_compiler(dialect=dialect)
    return result


def node_types(db: DataFlow) -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}

    def add(type_name: str, factory: Callable[..., Any]) -> None:
        found[type_name] = factory

    load().hook.dataflow_node_types(db=db, register=add)
    return found


def pool_size(adapter: str, server: ServerInfo, worker_count: int) -> int:
    result: int = load().hook.dataflow_pool_size(
        adapter=adapter, server=server, worker_count=worker_count
    )
    return result


def source_connectors() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}

    def add(kind: str, factory: Callable[..., Any]) -> None:
        found[kind] = factory

    load().hook.dataflow_source_connectors(register=add)
    return found


def instance_methods() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}

    def add(name: str, function: Callable[..., Any]) -> None:
        found.setdefault(name, function)

    load().hook.dataflow_instance_methods(register=add)
    return found


def missing_instance_method(name: str) -> NoReturn:
    """Raise for ``db.<name>`` that no plugin contributes: what to install, when we know."""
    package = KNOWN_METHOD_PACKAGES.get(name)
    if package is None:
        raise AttributeError(f"'DataFlow' object has no attribute {name!r}")
    raise ExtensionNotInstalledError(
        f"db.{name}() is provided by {package}, which is not installed.",
        fix=f"install it from this repository: pip install ./packages/{package}",
        package=package,
    )
