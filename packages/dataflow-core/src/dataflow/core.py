"""The :class:`DataFlow` instance: models, an adapter, schema state and transactions."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import threading
import types
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from . import plugins
from .errors import (
    ClosedError,
    MigrationFailedError,
    MigrationRefusedError,
    TransactionConflictError,
    UnknownModelError,
    UnsupportedError,
    did_you_mean,
)
from .migrations import Plan, dependency_order, plan_migration
from .model import ModelSpec, build_model_spec, resolve_foreign_keys

if TYPE_CHECKING:
    from .adapter import Adapter, TableInfo
    from .express import Express, ExpressSync
    from .frames import Frames

T = TypeVar("T")
C = TypeVar("C", bound=type)
#: ``listener(models)``: called with the names of the models a committed write touched
WriteListener = Callable[[frozenset[str]], None]
log = logging.getLogger("dataflow")

_names = itertools.count(1)
#: attempts of a restartable operation whose transaction the database aborted (DF-904)
CONFLICT_RETRIES = 5
_live: weakref.WeakValueDictionary[str, DataFlow] = weakref.WeakValueDictionary()
_live_lock = threading.Lock()


def live_instances() -> list[DataFlow]:
    """Every DataFlow instance not yet closed or collected (for node lookup)."""
    with _live_lock:
        return list(_live.values())


class _Tx:
    """The connection and savepoint depth of the current transaction (per task context)."""

    __slots__ = ("conn", "depth", "failed", "lock", "loop", "written")

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.depth = 0
        self.lock = asyncio.Lock()
        self.loop = loop
        self.failed = False
        #: models written inside this transaction, announced to write listeners after commit
        self.written: set[str] = set()


class Transaction:
    """``async with db.transaction():`` -- a transaction, or a savepoint when nested."""

    def __init__(self, db: DataFlow) -> None:
        self._db = db
        self._token: contextvars.Token[_Tx | None] | None = None
        self._savepoint: str | None = None
        self._tx: _Tx | None = None

    async def __aenter__(self) -> Transaction:
        db = self._db
        await db._ensure_ready()
        adapter = db.adapter
        current = db._tx_var.get()
        if current is not None and current.loop is asyncio.get_running_loop():
            if not adapter.capabilities.savepoints:
                raise UnsupportedError(
                    f"{adapter.capabilities.name} cannot nest transactions (no savepoints)."
                )
            current.depth += 1
            self._savepoint = f"df_sp_{current.depth}"
            async with current.lock:
                await adapter.savepoint(current.conn, self._savepoint)
            self._tx = current
            return self
        if not adapter.capabilities.transactions:
            raise UnsupportedError(f"{adapter.capabilities.name} has no transactions.")
        conn = await adapter.acquire()
        try:
            await adapter.begin(conn)
        except BaseException:
            await adapter.release(conn)
            raise
        self._tx = _Tx(conn, asyncio.get_running_loop())
        self._token = db._tx_var.set(self._tx)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx = self._tx
        assert tx is not None
        adapter = self._db.adapter
        if self._savepoint is not None:
            try:
                async with tx.lock:
                    if exc_type is None:
                        await adapter.release_savepoint(tx.conn, self._savepoint)
                    else:
                        await adapter.rollback_to_savepoint(tx.conn, self._savepoint)
                        await adapter.release_savepoint(tx.conn, self._savepoint)
            finally:
                tx.depth -= 1
            return
        try:
            if exc_type is None:
                await adapter.commit(tx.conn)
            else:
                await adapter.rollback(tx.conn)
        finally:
            assert self._token is not None
            self._db._tx_var.reset(self._token)
            await adapter.release(tx.conn)
        if exc_type is None and tx.written:
            self._db._announce_writes(frozenset(tx.written))


class TenantScope:
    """Binds a tenant for a block; usable with ``async with`` and ``with``."""

    def __init__(self, var: contextvars.ContextVar[str | None], tenant_id: str) -> None:
        self._var = var
        self.tenant_id = tenant_id
        self._tokens: list[contextvars.Token[str | None]] = []

    def __enter__(self) -> TenantScope:
        self._tokens.append(self._var.set(self.tenant_id))
        return self

    def __exit__(self, *exc: object) -> None:
        self._var.reset(self._tokens.pop())

    async def __aenter__(self) -> TenantScope:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


class DataFlow:
    """A database, its models and their operations.

    ``DataFlow()`` uses ``$DATABASE_URL`` or, without it, an in-memory SQLite database
    shared by all of this instance's connections. The URL scheme picks the adapter
    through the plugin registry.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        name: str | None = None,
        auto_migrate: bool = True,
        multi_tenant: bool = False,
        pool_size: int | None = None,
        allow_destructive_migrations: bool = False,
        existing_schema_mode: bool = False,
        **adapter_options: Any,
    ) -> None:
        from .adapter import DatabaseURL

        url = url or os.environ.get("DATABASE_URL") or "sqlite://:memory:"
        self.url = DatabaseURL.parse(url)
        self.name = name or f"dataflow_{next(_names)}"
        self.auto_migrate = auto_migrate
        self.multi_tenant = multi_tenant
        self.allow_destructive_migrations = allow_destructive_migrations
        self.existing_schema_mode = existing_schema_mode
        adapter_cls = plugins.adapter_for(self.url.scheme.split("+")[0])
        self.adapter: Adapter = adapter_cls(self.url, pool_size=pool_size, **adapter_options)
        self._models: dict[str, ModelSpec] = {}
        self._ready_models: set[str] = set()
        self._init_error: BaseException | None = None
        self._init_lock: asyncio.Lock | None = None
        self._init_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._tx_var: contextvars.ContextVar[_Tx | None] = contextvars.ContextVar(
            f"dataflow_tx_{self.name}", default=None
        )
        self._tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"dataflow_tenant_{self.name}", default=None
        )
        self._express: Express | None = None
        self._express_sync: ExpressSync | None = None
        self._write_listeners: list[WriteListener] = []
        self._frames: Frames | None = None
        self.last_plan: Plan | None = None
        with _live_lock:
            if self.name in _live:
                raise ValueError(f"a live DataFlow instance is already named {self.name!r}")
            _live[self.name] = self

    def __repr__(self) -> str:
        return f"DataFlow(name={self.name!r}, url={self.url.redacted()!r})"

    def __getattr__(self, name: str) -> Any:
        """Methods that extensions contribute through the ``dataflow_instance_methods`` hook."""
        if name.startswith("_"):
            raise AttributeError(f"'DataFlow' object has no attribute {name!r}")
        method = plugins.instance_methods().get(name)
        if method is None:
            plugins.missing_instance_method(name)
        return types.MethodType(method, self)

    # --- change notification ------------------------------------------------------------
    def on_write(self, listener: WriteListener) -> Callable[[], None]:
        """Call ``listener(models)`` after each committed express or node write.

        Outside a transaction the listener runs when the write returns; inside
        ``db.transaction()`` once the outermost block commits (never on rollback). It runs
        in the writer's thread and must not block (hand work to a loop or a queue);
        its exceptions are logged, never raised into the writer. Returns a function that
        removes the listener.
        """
        self._write_listeners.append(listener)

        def remove() -> None:
            if listener in self._write_listeners:
                self._write_listeners.remove(listener)

        return remove

    def _wrote(self, model: str) -> None:
        """A write to ``model`` returned: announce it now, or when its transaction commits."""
        if not self._write_listeners:
            return
        tx = self._tx_var.get()
        if tx is not None:
            tx.written.add(model)
        else:
            self._announce_writes(frozenset((model,)))

    def _announce_writes(self, models: frozenset[str]) -> None:
        for listener in list(self._write_listeners):
            try:
                listener(models)
            except Exception:
                log.exception("write listener %r failed", listener)

    # --- models -----------------------------------------------------------------------
    def model(self, cls: C) -> C:
        """Class decorator: register ``cls`` as a model of this instance."""
        spec = build_model_spec(cls, tenant_scoped=self.multi_tenant)
        for other in self._models.values():
            if other.table == spec.table and other.name != spec.name:
                from .errors import ModelDefinitionError

                raise ModelDefinitionError(
                    f"table '{spec.table}' is already used by model {other.name}.",
                    model=spec.name,
                    fix="set __tablename__ on one of them.",
                )
        # foreign keys: checked against their targets now where those are declared, and
        # at first use (DF-201) for targets declared later
        resolve_foreign_keys({**self._models, spec.name: spec}, [spec], require=False)
        self._models[spec.name] = spec
        resolve_foreign_keys(self._models, [m for m in self._models.values()
                                            if any(fk.target == spec.name for fk in m.foreign_keys)],
                             require=False)
        self._ready_models.discard(spec.name)
        self._init_error = None  # a changed model deserves a fresh migration attempt
        cls.__dataflow_model__ = spec  # type: ignore[attr-defined]
        from .nodes import invalidate_node_cache

        invalidate_node_cache()
        return cls

    @property
    def models(self) -> dict[str, ModelSpec]:
        return dict(self._models)

    def get_model(self, model: str | type | ModelSpec) -> ModelSpec:
        if isinstance(model, ModelSpec):
            return model
        name = model if isinstance(model, str) else getattr(model, "__name__", repr(model))
        spec = self._models.get(name)
        if spec is None:
            raise UnknownModelError(
                f"no model named {name!r:.80} in DataFlow {self.name!r}."
                f"{did_you_mean(str(name), self._models)}",
                fix=f"decorate the class with @db.model; known models: "
                f"{', '.join(self._models) or 'none'}.",
            )
        return spec

    # --- APIs -------------------------------------------------------------------------
    @property
    def express(self) -> Express:
        if self._express is None:
            from .express import Express

            self._express = Express(self)
        return self._express

    @property
    def express_sync(self) -> ExpressSync:
        if self._express_sync is None:
            from .express import ExpressSync

            self._express_sync = ExpressSync(self)
        return self._express_sync

    @property
    def frames(self) -> Frames:
        """Validated bulk create / update / read over Polars frames (``[frames]`` extra)."""
        if self._frames is None:
            from .frames import Frames

            self._frames = Frames(self)
        return self._frames

    def transaction(self) -> Transaction:
        """``async with db.transaction():`` -- express calls and nodes inside join it."""
        return Transaction(self)

    def tenant(self, tenant_id: str) -> TenantScope:
        """Bind the current tenant: ``async with db.tenant("acme"):`` (or plain ``with``).

        The binding lives in a context variable, so it follows ``await``, tasks created
        inside the block, workflows, and the sync API called from inside it.
        """
        from .errors import ValidationError

        if not isinstance(tenant_id, str) or not tenant_id:
            raise ValidationError(f"tenant id must be a non-empty str, got {tenant_id!r:.60}.",
                                  field="tenant_id")
        try:
            tenant_id.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(
                f"tenant id {tenant_id!r:.60} is not valid Unicode text (a lone surrogate).",
                field="tenant_id", fix="decode the tenant id properly before binding it.") from None
        if "\x00" in tenant_id:
            raise ValidationError("tenant id holds a NUL character (\\x00), which not every "
                                  "backend can store.", field="tenant_id",
                                  fix="remove the NUL from the tenant id.")
        return TenantScope(self._tenant_var, tenant_id)

    def current_tenant(self) -> str | None:
        return self._tenant_var.get()

    def in_transaction(self) -> bool:
        return self._tx_var.get() is not None

    def pool_stats(self) -> dict[str, Any]:
        return self.adapter.pool_stats()

    # --- running statements -------------------------------------------------------------
    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Call ``fn(conn, *args)`` in the current transaction, or on a fresh connection."""
        tx = self._tx_var.get()
        if tx is not None:
            async with tx.lock:
                return await fn(tx.conn, *args)
        if self._closed:
            raise ClosedError(f"DataFlow {self.name!r} is closed.", fix="create a new instance.")
        return await self.adapter.run(fn, *args)

    async def _run_atomic(self, fn: Callable[..., Awaitable[T]], *args: Any,
                          restartable: bool = False) -> T:
        """Like :meth:`_run`, but all of ``fn``'s statements commit or roll back together.

        ``restartable``: ``fn`` keeps no state across calls, so when DataFlow owns the
        transaction and the database aborts it to break a deadlock (DF-904: everything
        rolled back), it is run again, up to ``CONFLICT_RETRIES`` times. Inside the
        caller's transaction the error propagates: the caller's block is the unit to retry.
        """
        adapter = self.adapter
        tx = self._tx_var.get()
        if tx is not None:
            async with tx.lock:
                if not adapter.capabilities.savepoints:
                    return await fn(tx.conn, *args)
                tx.depth += 1
                name = f"df_sp_{tx.depth}"
                await adapter.savepoint(tx.conn, name)
                try:
                    result = await fn(tx.conn, *args)
                except BaseException:
                    await adapter.rollback_to_savepoint(tx.conn, name)
                    await adapter.release_savepoint(tx.conn, name)
                    raise
                finally:
                    tx.depth -= 1
                await adapter.release_savepoint(tx.conn, name)
                return result

        async def atomic(conn: Any) -> T:
            await adapter.begin(conn)
            try:
                result = await fn(conn, *args)
            except BaseException:
                await adapter.rollback(conn)
                raise
            await adapter.commit(conn)
            return result

        if not restartable:
            return await adapter.run(atomic)
        for attempt in range(CONFLICT_RETRIES):
            try:
                return await adapter.run(atomic)
            except TransactionConflictError:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                await asyncio.sleep(0)  # let the transaction that won go on first
        raise AssertionError("unreachable")

    # --- schema -----------------------------------------------------------------------
    async def initialize(self, *, allow_destructive: bool | None = None) -> Plan:
        """Create or migrate tables for every model now; returns the applied plan.

        An explicit call retries after an earlier failure; implicit first use does not.
        """
        self._init_error = None
        self._ready_models.clear()
        return await self._migrate(allow_destructive)

    async def _ensure_ready(self) -> None:
        if self._closed:
            raise ClosedError(f"DataFlow {self.name!r} is closed.", fix="create a new instance.")
        if len(self._ready_models) == len(self._models):
            return
        if self._init_error is not None:
            raise self._init_error
        await self._migrate(None)

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._init_lock is None or self._init_loop is not loop:
            self._init_lock = asyncio.Lock()
            self._init_loop = loop
        return self._init_lock

    async def _migrate(self, allow_destructive: bool | None) -> Plan:
        async with self._lock():
            pending = [m for n, m in self._models.items() if n not in self._ready_models]
            if not pending:
                return Plan()
            try:
                plan = await self._apply(pending, allow_destructive)
            except BaseException as exc:
                self._init_error = exc
                raise
            self._ready_models.update(m.name for m in pending)
            self.last_plan = plan
            return plan

    async def plan(self) -> Plan:
        """The migration plan for every model, without applying it."""
        compiler = getattr(self.adapter, "compiler", None)
        resolve_foreign_keys(self._models)
        live = await self.adapter.run(self.adapter.introspect, [m.table for m in self._models.values()])
        return plan_migration(list(self._models.values()), live, compiler)  # type: ignore[arg-type]

    async def _apply(self, models: list[ModelSpec], allow_destructive: bool | None) -> Plan:
        adapter = self.adapter
        resolve_foreign_keys(self._models)
        live: dict[str, TableInfo] = await adapter.run(adapter.introspect, [m.table for m in models])
        compiler = getattr(adapter, "compiler", None)
        plan = plan_migration(models, live, compiler)  # type: ignore[arg-type]
        if not plan:
            return plan
        if self.existing_schema_mode or not self.auto_migrate:
            missing = [s for s in plan.steps if s.kind == "create_table"]
            if missing or plan.destructive:
                raise MigrationRefusedError(
                    "the database schema does not match the models and automatic migration "
                    f"is off:\n{plan.render()}",
                    plan=plan,
                    fix="migrate the database, or construct DataFlow with auto_migrate=True.",
                )
            return plan
        allow = self.allow_destructive_migrations if allow_destructive is None else allow_destructive
        if plan.destructive and not allow:
            raise MigrationRefusedError(
                f"refusing a migration with destructive or incompatible steps:\n{plan.render()}",
                plan=plan,
                fix="review the plan, then call await db.initialize(allow_destructive=True) "
                "or construct DataFlow(..., allow_destructive_migrations=True).",
            )
        # refuse up front, before any DDL, the steps this backend cannot do at all
        caps = adapter.capabilities
        impossible = [
            s for s in plan.steps
            if (s.kind == "drop_column" and not caps.drop_column)
            or (s.kind == "alter_column" and s.reason.startswith("type ")
                and not caps.alter_column_type)
        ]
        if impossible:
            raise UnsupportedError(
                f"{caps.name} cannot apply "
                f"{'; '.join(s.describe() for s in impossible)}. Nothing was applied. "
                f"Plan:\n{plan.render()}",
                model=impossible[0].model.name,
                fix="keep the column in the model, or migrate the table by hand "
                "(export, drop, let DataFlow recreate it).",
            )
        applied: list[str] = []
        transactional = adapter.capabilities.transactional_ddl

        async def run_steps(conn: Any) -> None:
            for step in plan.steps:
                if step.sql:
                    for sql in step.sql:
                        await adapter.apply_ddl(conn, [sql])
                        applied.append(sql)
                else:
                    apply_step = getattr(adapter, "apply_step", None)
                    if apply_step is None:
                        raise UnsupportedError(
                            f"{adapter.capabilities.name} cannot apply: {step.describe()}."
                        )
                    await apply_step(conn, step)
                    applied.append(step.describe())

        async def run_in_transaction(conn: Any) -> None:
            await adapter.begin(conn)
            try:
                await run_steps(conn)
            except BaseException:
                await adapter.rollback(conn)
                raise
            await adapter.commit(conn)

        needs_own_tx = any(not s.sql for s in plan.steps)  # table rebuilds manage their own
        try:
            await adapter.run(run_in_transaction if transactional and not needs_own_tx else run_steps)
        except Exception as exc:
            if transactional and not needs_own_tx:
                done = "none (the migration ran in one transaction and was rolled back)"
            else:
                done = "; ".join(applied) or "none"
            raise MigrationFailedError(
                f"migration failed at statement {len(applied) + 1} ({exc}).\nPlan:\n"
                f"{plan.render()}\nApplied: {done}.",
                fix="fix the cause, then call await db.initialize() again.",
            ) from exc
        return plan

    async def drop_tables(self) -> None:
        """Drop every model's table (test teardown, demos). Irreversible."""
        adapter = self.adapter
        ordered, _ = dependency_order(list(self._models.values()))
        for m in reversed(ordered):  # referencing tables before the tables they reference
            await adapter.run(adapter.drop_table, m.table)
        self._ready_models.clear()

    # --- existing databases ------------------------------------------------------------
    async def discover_schema(self, tables: list[str] | None = None) -> dict[str, TableInfo]:
        """The live tables (all, or ``tables``): columns, types, nullability, keys, defaults,
        foreign keys and indexes, as the adapter reads them from the catalog."""
        if not self.adapter.capabilities.schema_discovery:
            raise UnsupportedError(f"{self.adapter.capabilities.name} cannot read a live schema.")
        return await self.adapter.run(self.adapter.introspect, tables)

    async def register_schema_as_models(self, tables: list[str] | None = None) -> list[str]:
        """Turn discovered tables into models (with all their nodes); returns the model names.

        The models mirror the live tables, so they need no migration and issue no DDL.
        """
        from .discovery import model_from_table
        from .nodes import invalidate_node_cache

        found = await self.discover_schema(tables)
        missing = sorted(set(tables or ()) - set(found))
        if missing:
            raise UnknownModelError(f"no table named {', '.join(missing)} in the database.")
        names = []
        for info in found.values():
            spec = model_from_table(info)
            self._models[spec.name] = spec
            self._ready_models.add(spec.name)
            names.append(spec.name)
        invalidate_node_cache()
        return names

    # --- lifecycle --------------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _live_lock:
            if _live.get(self.name) is self:
                del _live[self.name]
        await self.adapter.close()

    async def __aenter__(self) -> DataFlow:
        await self._ensure_ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def close_sync(self) -> None:
        from . import portal

        portal.call(self.close())
