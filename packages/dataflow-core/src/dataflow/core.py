"""The :class:`DataFlow` instance: models, an adapter, schema state and transactions."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import random
import threading
import types
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from . import plugins
from .errors import (
    ClosedError,
    ConnectionLostError,
    IntegrityError,
    MigrationFailedError,
    MigrationRefusedError,
    TransactionConflictError,
    TransactionError,
    UnknownModelError,
    UnsupportedError,
    did_you_mean,
)
from .interrupts import uninterrupted
from .migrations import Plan, dependency_order
from .model import ModelSpec, build_model_spec, resolve_foreign_keys

if TYPE_CHECKING:
    from .adapter import Adapter, TableInfo
    from .express import Express, ExpressSync
    from .frames import Frames, FramesSync
    from .inspector import Inspector
    from .observe import Observer
    from .query.builder import QueryBuilder

T = TypeVar("T")
C = TypeVar("C", bound=type)
#: ``listener(models)``: called with the names of the models a committed write touched
WriteListener = Callable[[frozenset[str]], None]
log = logging.getLogger("dataflow")

_names = itertools.count(1)
#: attempts of a restartable operation whose transaction the database aborted (DF-904)
CONFLICT_RETRIES = 5
#: attempts of a migration that failed while another one changed the same schema
MIGRATION_RETRIES = 3
_live: weakref.WeakValueDictionary[str, DataFlow] = weakref.WeakValueDictionary()
_live_lock = threading.Lock()


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def live_instances() -> list[DataFlow]:
    """Every DataFlow instance not yet closed or collected (for node lookup)."""
    with _live_lock:
        return list(_live.values())


class _Tx:
    """One database transaction: its connection and what its blocks share."""

    __slots__ = ("_names", "conn", "dropped", "ended", "failure", "loop", "pending", "written")

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.loop = loop
        #: the outermost block has ended: nothing may use the connection any more
        self.ended = False
        #: (block, reason) once the transaction can no longer commit what it was asked to
        self.failure: tuple[_Scope, str] | None = None
        #: the adapter closed the connection (the server rolled the transaction back)
        self.dropped = False
        self._names = itertools.count(1)
        #: the newest statement savepoint, left to be released with the next SAVEPOINT in
        #: one round trip (or by COMMIT); any RELEASE / ROLLBACK TO of it or an older one
        #: ends it
        self.pending: str | None = None
        #: models written inside this transaction, announced to write listeners after commit
        self.written: set[str] = set()

    def savepoint_name(self) -> str:
        """A name no other savepoint of this transaction uses (siblings never collide)."""
        return f"df_sp_{next(self._names)}"

    async def open_savepoint(self, adapter: Adapter, name: str) -> None:
        """SAVEPOINT ``name``, releasing the pending statement savepoint on the way."""
        pending, self.pending = self.pending, None
        if pending is None:
            await adapter.savepoint(self.conn, name)
        else:
            await adapter.release_and_savepoint(self.conn, pending, name)

    def fail(self, scope: _Scope, reason: str, *, dropped: bool = False) -> None:
        self.dropped = self.dropped or dropped
        if self.failure is None:
            self.failure = (scope, reason)


class _Scope:
    """A block of a transaction: the outermost one, or a nested (savepoint) one.

    ``busy`` is held by each statement of the block and, for its whole life, by a nested
    block opened in it: statements and sibling nested blocks take turns, so one block's
    savepoint never covers (and never releases or rolls back) another's work.
    """

    __slots__ = ("busy", "ended", "parent", "savepoint", "tx")

    def __init__(self, tx: _Tx, savepoint: str | None, parent: _Scope | None) -> None:
        self.tx = tx
        self.savepoint = savepoint
        self.parent = parent
        self.busy = asyncio.Lock()
        self.ended = False

    def covers(self, other: _Scope) -> bool:
        """``other`` is this block or nested (at any depth) inside it."""
        scope: _Scope | None = other
        while scope is not None:
            if scope is self:
                return True
            scope = scope.parent
        return False

    def check_usable(self) -> None:
        tx = self.tx
        if self.ended or tx.ended:
            raise TransactionError(
                "this 'db.transaction()' block has already ended; a task started inside it "
                "outlived it and tried to use its connection.",
                fix="await such tasks inside the block, or start them outside it so they run "
                "on their own connection.")
        if tx.failure is not None:
            raise TransactionError(
                f"the transaction can no longer be used: {tx.failure[1]}",
                fix="let the block end (it rolls back) and run it again.")


class Transaction:
    """``async with db.transaction():`` -- a transaction, or a savepoint when nested.

    A cancellation or error anywhere in the block rolls it back and returns the connection
    clean; the cancellation (or error) is then re-raised.

    In sync code, ``with db.transaction():`` runs the same block on the sync API's
    background loop: ``express_sync`` calls and ``LocalRuntime`` runs made in the block (in
    its thread) join it.
    """

    def __init__(self, db: DataFlow) -> None:
        self._db = db
        self._token: contextvars.Token[_Scope | None] | None = None
        self._scope: _Scope | None = None
        self._context: contextvars.Context | None = None
        self._binding: contextvars.Token[Any] | None = None

    def __enter__(self) -> Transaction:
        from . import portal

        if self._context is not None:
            raise TransactionError("this transaction block is already open.",
                                   fix="call db.transaction() again for another block.")
        # the caller's context (tenant) and an enclosing sync block's transaction
        context = portal.context_for_call()
        portal.call(self.__aenter__(), context=context)
        self._context = context  # __aexit__ must run where __aenter__ set the variable
        self._binding = portal.bind(self._db._tx_var, self._scope)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        from . import portal

        assert self._context is not None and self._binding is not None
        portal.unbind(self._binding)
        context, self._context = self._context, None
        portal.call(self.__aexit__(exc_type, exc, tb), context=context)

    async def __aenter__(self) -> Transaction:
        db = self._db
        await db._ensure_ready()
        adapter = db.adapter
        parent = db._tx_var.get()
        loop = asyncio.get_running_loop()
        if parent is not None and parent.tx.loop is loop and not (parent.ended or parent.tx.ended):
            if not adapter.capabilities.savepoints:
                raise UnsupportedError(
                    f"{adapter.capabilities.name} cannot nest transactions (no savepoints)."
                )
            tx = parent.tx
            await parent.busy.acquire()  # sibling nested blocks take turns
            name = tx.savepoint_name()
            try:
                parent.check_usable()
                await tx.open_savepoint(adapter, name)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError) and not tx.dropped:
                    undone = await db._undo(tx.conn, exc, name)
                    if undone != "undone":
                        tx.fail(parent, "a nested block was cancelled while it opened",
                                dropped=undone == "dropped")
                parent.busy.release()
                raise
            self._scope = _Scope(tx, name, parent)
            self._token = db._tx_var.set(self._scope)
            return self
        if not adapter.capabilities.transactions:
            raise UnsupportedError(f"{adapter.capabilities.name} has no transactions.")
        conn = await adapter.acquire()
        try:
            await adapter.begin(conn)
        except BaseException as exc:
            await uninterrupted(db._undo_and_release(conn, exc))
            raise
        self._scope = _Scope(_Tx(conn, loop), None, None)
        self._token = db._tx_var.set(self._scope)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope = self._scope
        assert scope is not None and self._token is not None
        try:
            if scope.savepoint is None:
                await uninterrupted(self._end(scope, exc))
            else:
                await uninterrupted(self._end_nested(scope, exc))
        finally:
            self._db._tx_var.reset(self._token)
        tx = scope.tx
        if scope.savepoint is None and tx.written and exc is None:
            # committed; announced from the caller's context, where the block is gone
            self._db._announce_writes(frozenset(tx.written))

    async def _end(self, scope: _Scope, exc: BaseException | None) -> None:
        db = self._db
        adapter = db.adapter
        tx = scope.tx
        tx.ended = True  # statements still waiting for the connection are refused
        async with scope.busy:  # statements in flight (tasks started inside) finish first
            pass
        if exc is None and tx.failure is None:
            try:
                await adapter.commit(tx.conn)
            except BaseException as commit_exc:
                await db._undo_and_release(tx.conn, commit_exc)
                raise
            await adapter.release(tx.conn)
            return
        if tx.dropped:
            await adapter.release(tx.conn)
        else:
            await db._undo_and_release(tx.conn, exc)
        if exc is None and tx.failure is not None:
            raise TransactionError(
                f"the transaction was rolled back, nothing of it was committed: {tx.failure[1]}",
                fix="find the cause in the message, then run the block again.")

    async def _end_nested(self, scope: _Scope, exc: BaseException | None) -> None:
        db = self._db
        adapter = db.adapter
        tx = scope.tx
        parent = scope.parent
        assert parent is not None and scope.savepoint is not None
        try:
            scope.ended = True
            async with scope.busy:
                pass
            if tx.dropped or tx.ended:
                return
            tx.pending = None  # newer than this block's savepoint: ended with it below
            failure = tx.failure
            own_failure = failure is not None and scope.covers(failure[0])
            if exc is None and failure is None:
                await adapter.release_savepoint(tx.conn, scope.savepoint)
                return
            if failure is not None and not own_failure:
                return  # an outer failure: the outermost block rolls back and says so
            undone = await db._undo(tx.conn, exc, scope.savepoint)
            if undone != "undone":
                tx.fail(parent, "a nested block could not be rolled back",
                        dropped=undone == "dropped")
                return
            if own_failure:
                tx.failure = None  # rolled back to before it: the transaction is usable
                if exc is None:
                    assert failure is not None
                    raise TransactionError(
                        f"the nested block was rolled back: {failure[1]}",
                        fix="the outer transaction is still usable; run the block again.")
        finally:
            parent.busy.release()


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
        strict: bool = False,
        echo: bool = False,
        monitoring: bool = False,
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
        #: strict mode: models must declare their key, values are never converted implicitly
        #: (naive datetimes, floats for Decimals, text for dates and UUIDs are refused)
        self.strict = strict
        adapter_cls = plugins.adapter_for(self.url.scheme.split("+")[0])
        self.adapter: Adapter = adapter_cls(self.url, pool_size=pool_size, **adapter_options)
        #: echo=True logs each statement (parameters redacted), monitoring=True makes
        #: OpenTelemetry spans per statement and per node (dataflow.observe)
        self._observer: Observer | None = None
        if echo or monitoring:
            from . import observe

            self._observer = observe.Observer(self, echo=echo, monitoring=monitoring)
        self._models: dict[str, ModelSpec] = {}
        self._ready_models: set[str] = set()
        self._init_error: BaseException | None = None
        self._init_lock: asyncio.Lock | None = None
        self._init_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._tx_var: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
            f"dataflow_tx_{self.name}", default=None
        )
        self._tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"dataflow_tenant_{self.name}", default=None
        )
        self._express: Express | None = None
        self._express_sync: ExpressSync | None = None
        self._write_listeners: list[WriteListener] = []
        self._frames: Frames | None = None
        self._frames_sync: FramesSync | None = None
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
        scope = self._tx_var.get()
        if scope is not None:
            scope.tx.written.add(model)
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
        strict = spec.options.get("strict", self.strict)
        if not isinstance(strict, bool):
            from .errors import ModelDefinitionError

            raise ModelDefinitionError(f"__dataflow__['strict'] must be True or False, got "
                                       f"{strict!r:.40}.", model=spec.name,
                                       fix='use __dataflow__ = {"strict": True}.')
        if strict:
            spec.options["strict"] = True
            if "id" not in getattr(cls, "__annotations__", {}):
                from .errors import ModelDefinitionError

                raise ModelDefinitionError(
                    "strict mode needs an explicit primary key; none is declared.",
                    model=spec.name, field="id",
                    fix="declare it: `id: int` (generated), `id: UUID` (generated) or `id: str` "
                    "(given by the caller).")
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
        if "query_builder" not in vars(cls):  # User.query_builder(): same compiler as list()
            # weak: the class (kept by the compilers' caches) must not keep a dropped
            # instance alive, or it would still count among live instances for node lookup
            ref, name = weakref.ref(self), spec.name

            def query_builder() -> QueryBuilder:
                from .query import builder

                db = ref()
                if db is None:
                    raise ClosedError(f"the DataFlow instance of model {name!r} no longer exists.",
                                      fix="keep a reference to the DataFlow instance while its "
                                      "models are in use.")
                return builder.QueryBuilder(db, name)

            cls.query_builder = staticmethod(query_builder)  # type: ignore[attr-defined]
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

    @property
    def frames_sync(self) -> FramesSync:
        """``db.frames``, blocking (runs on the sync API's background loop)."""
        if self._frames_sync is None:
            from .frames import FramesSync

            self._frames_sync = FramesSync(self.frames)
        return self._frames_sync

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
        scope = self._tx_var.get()
        return scope is not None and not (scope.ended or scope.tx.ended)

    def pool_stats(self) -> dict[str, Any]:
        return self.adapter.pool_stats()

    # --- running statements -------------------------------------------------------------
    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Call ``fn(conn, *args)`` in the current transaction, or on a fresh connection."""
        scope = self._tx_var.get()
        if scope is not None:  # an ended block refuses (DF-801): never a silent fresh connection
            return await self._in_transaction(scope, fn, args, False)
        if self._closed:
            self._reopen()
        return await self.adapter.run(fn, *args)

    async def _in_transaction(self, scope: _Scope, fn: Callable[..., Awaitable[T]],
                              args: tuple[Any, ...], atomic: bool) -> T:
        """``fn`` inside the caller's transaction block ``scope``.

        Under its own savepoint when it has several statements (``atomic``) or when a failed
        statement would abort the whole transaction on this backend (no
        ``statement_rollback``): a caught error then leaves the transaction usable. Where
        neither a savepoint nor the backend can undo the part that failed, the transaction
        is marked failed and its block's end raises instead of committing.
        """
        adapter = self.adapter
        caps = adapter.capabilities
        tx = scope.tx
        async with scope.busy:
            scope.check_usable()
            conn = tx.conn
            if caps.savepoints and (atomic or not caps.statement_rollback):
                name = tx.savepoint_name()
                try:
                    await tx.open_savepoint(adapter, name)
                    result = await fn(conn, *args)
                except BaseException as exc:
                    undone = await self._undo(conn, exc, name)
                    if undone != "undone":
                        tx.fail(scope, f"an operation could not be rolled back alone "
                                f"({_why(exc)})", dropped=undone == "dropped")
                    raise
                tx.pending = name  # released with the next SAVEPOINT, or by COMMIT
                return result
            try:
                return await fn(conn, *args)
            except asyncio.CancelledError:
                usable = await uninterrupted(adapter.interrupted(conn))
                tx.fail(scope, "a statement was interrupted by a cancellation, and this backend "
                        "cannot undo it alone", dropped=not usable)
                raise
            except BaseException as exc:
                if atomic or not caps.statement_rollback or isinstance(
                        exc, (TransactionConflictError, ConnectionLostError)):
                    tx.fail(scope, f"an operation failed and could not be undone alone "
                            f"({_why(exc)})", dropped=isinstance(exc, ConnectionLostError))
                raise

    async def _undo(self, conn: Any, exc: BaseException | None,
                    savepoint: str | None = None) -> str:
        """Roll back what an operation that raised ``exc`` left on ``conn`` (to ``savepoint``
        if given), to the end even if cancelled again: ``"undone"``; ``"dropped"`` when the
        adapter closed the connection instead (the server rolls its transaction back);
        ``"failed"`` when the rollback itself failed (e.g. a cancellation that landed after
        the savepoint was released)."""
        adapter = self.adapter

        async def undo() -> str:
            if isinstance(exc, asyncio.CancelledError) and not await adapter.interrupted(conn):
                return "dropped"
            try:
                if savepoint is None:
                    await adapter.rollback(conn)
                else:
                    await adapter.rollback_to_savepoint(conn, savepoint)
                    await adapter.release_savepoint(conn, savepoint)
            except Exception:
                return "failed"
            return "undone"

        return await uninterrupted(undo())

    async def _undo_and_release(self, conn: Any, exc: BaseException | None) -> None:
        try:
            await self._undo(conn, exc)
        finally:
            await uninterrupted(self.adapter.release(conn))

    async def _run_atomic(self, fn: Callable[..., Awaitable[T]], *args: Any,
                          restartable: bool = False) -> T:
        """Like :meth:`_run`, but all of ``fn``'s statements commit or roll back together.

        ``restartable``: ``fn`` keeps no state across calls, so when DataFlow owns the
        transaction and the database aborts it to break a deadlock (DF-904: everything
        rolled back), it is run again, up to ``CONFLICT_RETRIES`` times; and once more after
        a DF-902 the adapter marked ``rerun_safe`` (it repaired the cause once the
        transaction had rolled back, e.g. PostgreSQL's key sequence left behind its rows).
        Inside the caller's transaction the error propagates: the caller's block is the unit
        to retry.
        """
        adapter = self.adapter
        scope = self._tx_var.get()
        if scope is not None:
            return await self._in_transaction(scope, fn, args, True)
        if self._closed:
            self._reopen()

        async def atomic(conn: Any) -> T:
            try:
                await adapter.begin(conn)
                result = await fn(conn, *args)
                await adapter.commit(conn)
            except BaseException as exc:
                await self._undo(conn, exc)
                raise
            return result

        if not restartable:
            return await adapter.run(atomic)
        attempts = max(CONFLICT_RETRIES, adapter.conflict_retries)
        repaired = False
        for attempt in range(attempts):
            try:
                return await adapter.run(atomic)
            except IntegrityError as exc:
                if repaired or not exc.details.get("rerun_safe") or attempt == attempts - 1:
                    raise
                repaired = True  # nothing was written and the cause is gone: once more
            except TransactionConflictError:
                if attempt == attempts - 1:
                    raise
                # let the transaction that won go on first; a backend whose transactions fail
                # at once on a conflict (instead of waiting for the lock) also backs off, with
                # jitter, so many writers of one record do not collide again in lockstep
                backoff = adapter.conflict_backoff * 2 ** min(attempt, 6)
                await asyncio.sleep(random.uniform(0, backoff) if backoff else 0)
        raise AssertionError("unreachable")

    # --- schema -----------------------------------------------------------------------
    async def initialize(self, *, allow_destructive: bool | None = None) -> Plan:
        """Create or migrate tables for every model now; returns the applied plan.

        An explicit call retries after an earlier failure; implicit first use does not.
        """
        if self._closed:
            self._reopen()
        self._init_error = None
        self._ready_models.clear()
        return await self._migrate(allow_destructive)

    async def _ensure_ready(self) -> None:
        if self._closed:
            self._reopen()
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
                plan = await self._apply_converging(pending, allow_destructive)
            except BaseException as exc:
                self._init_error = exc
                raise
            self._ready_models.update(m.name for m in pending)
            self.last_plan = plan
            return plan

    async def _apply_converging(self, models: list[ModelSpec],
                                allow_destructive: bool | None) -> Plan:
        """:meth:`_apply`, planned and run again when it failed because someone else
        migrated the same database meanwhile: another process, or this instance on another
        event loop (both planned "create table" on an empty database; the second CREATE met
        "already exists"). That shows as fewer steps left in a fresh plan than this attempt
        left behind; otherwise the failure is this migration's own and is raised."""
        adapter = self.adapter
        for attempt in range(MIGRATION_RETRIES):
            try:
                return await self._apply(models, allow_destructive)
            except MigrationFailedError as exc:
                if attempt == MIGRATION_RETRIES - 1:
                    raise
                live = await adapter.run(adapter.introspect, [m.table for m in models])
                fresh = adapter.plan_migration(models, live)
                if not fresh:
                    return Plan()  # the other migration did all of it
                if len(fresh.steps) >= exc.details.get("steps_left", 0):
                    raise
        raise AssertionError("unreachable")

    def _refuse_undeclared_key_actions(self, models: list[ModelSpec]) -> None:
        """A foreign-key action the adapter does not declare (``fk_cascade``, ``fk_set_null``,
        ``fk_restrict``) is refused before anything is sent to the database (DF-501)."""
        caps = self.adapter.capabilities
        needs = {"cascade": "fk_cascade", "set null": "fk_set_null", "restrict": "fk_restrict"}
        for spec in models:
            for fk in spec.foreign_keys:
                capability = needs[fk.on_delete]
                if not caps.supports(capability):
                    others = [a for a, c in needs.items() if caps.supports(c)]
                    raise UnsupportedError(
                        f"{caps.name} cannot enforce on_delete={fk.on_delete!r} on "
                        f"{spec.name}.{fk.column} (capability {capability} not declared). "
                        "Nothing was sent to the database.",
                        model=spec.name, field=fk.column,
                        fix=(f"declare on_delete as one of {', '.join(map(repr, others))}, or "
                             "delete the children in your own code first.") if others else
                        "drop the foreign_key= declaration and check the reference in your own code.")

    def _refuse_referenced_update(self, spec: ModelSpec, op: str) -> None:
        """Without ``update_referenced_parent``, writing to a model that other models reference
        (updates, upserts, soft deletes) is refused before anything is sent (DF-501)."""
        caps = self.adapter.capabilities
        if caps.update_referenced_parent:
            return
        children = [f"{m.name}.{fk.column}" for m in self._models.values() for fk in m.foreign_keys
                    if fk.target_table == spec.table or fk.target.split(".")[0] == spec.name]
        if children:
            raise UnsupportedError(
                f"{caps.name} cannot {op} {spec.name} rows: {', '.join(children)} reference "
                "it, and the backend refuses updates to referenced rows (capability "
                "update_referenced_parent not declared). Nothing was sent to the database.",
                model=spec.name,
                fix="keep mutable data in a model that nothing references, or use an adapter "
                "that declares update_referenced_parent.")

    async def plan(self) -> Plan:
        """The migration plan for every model, without applying it."""
        if self._closed:
            self._reopen()
        resolve_foreign_keys(self._models)
        live = await self.adapter.run(self.adapter.introspect, [m.table for m in self._models.values()])
        return self.adapter.plan_migration(list(self._models.values()), live)

    async def _apply(self, models: list[ModelSpec], allow_destructive: bool | None) -> Plan:
        adapter = self.adapter
        resolve_foreign_keys(self._models)
        self._refuse_undeclared_key_actions(models)
        live: dict[str, TableInfo] = await adapter.run(adapter.introspect, [m.table for m in models])
        plan = adapter.plan_migration(models, live)
        if not plan:
            return plan
        if self.existing_schema_mode:
            # the tables are used as they are: a model naming a table or a column the
            # database lacks would fail on first use, so it is refused now (indexes and
            # constraints the database lacks are left as they are)
            unmatched = [s for s in plan.steps if s.kind in ("create_table", "add_column")]
            if unmatched or plan.destructive:
                raise MigrationRefusedError(
                    "existing_schema_mode=True uses the tables as they are, and the models do "
                    f"not match them; nothing was changed:\n{plan.render()}",
                    plan=plan,
                    fix="make the models match the tables (db.register_schema_as_models() declares "
                    "them from the tables), or create what is missing yourself, or construct "
                    "DataFlow without existing_schema_mode to let it migrate.",
                )
            return plan
        if not self.auto_migrate:
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

        steps_done = 0

        async def run_steps(conn: Any) -> None:
            nonlocal steps_done
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
                steps_done += 1

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
                steps_done = 0
            else:
                done = "; ".join(applied) or "none"
            raise MigrationFailedError(
                f"migration failed at statement {len(applied) + 1} ({exc}).\nPlan:\n"
                f"{plan.render()}\nApplied: {done}.",
                fix="fix the cause, then call await db.initialize() again.",
                plan=plan, steps_left=len(plan.steps) - steps_done,
            ) from exc
        return plan

    async def drop_tables(self) -> None:
        """Drop every model's table (test teardown, demos). Irreversible."""
        if self._closed:
            self._reopen()
        adapter = self.adapter
        ordered, _ = dependency_order(list(self._models.values()))
        for m in reversed(ordered):  # referencing tables before the tables they reference
            await adapter.run(adapter.drop_table, m.table)
        self._ready_models.clear()

    # --- existing databases ------------------------------------------------------------
    def inspect(self) -> Inspector:
        """Models (fields, indexes, constraints), nodes (parameters, outputs) and, with
        ``.workflow(wf)``, a workflow's connections, order and parameter sources."""
        from .inspector import Inspector

        return Inspector(self)

    async def discover_schema(self, tables: list[str] | None = None) -> dict[str, TableInfo]:
        """The live tables (all, or ``tables``): columns, types, nullability, keys, defaults,
        foreign keys and indexes, as the adapter reads them from the catalog."""
        if not self.adapter.capabilities.schema_discovery:
            raise UnsupportedError(f"{self.adapter.capabilities.name} cannot read a live schema.")
        if self._closed:
            self._reopen()
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
        """Close every connection, on whichever event loop opened it (pools of loops that
        have ended are closed at the socket). Works from any loop; the instance reopens on
        its next use or ``initialize()``."""
        if self._closed:
            return
        self._closed = True
        self._ready_models.clear()  # the schema is checked again on reopening
        with _live_lock:
            if _live.get(self.name) is self:
                del _live[self.name]
        await self.adapter.close()

    def _reopen(self) -> None:
        """Make a closed instance usable again; connections open lazily on first use."""
        with _live_lock:
            other = _live.get(self.name)
            if other is not None and other is not self:
                raise ClosedError(
                    f"DataFlow {self.name!r} is closed, and another live instance now has its "
                    "name, so it cannot reopen.",
                    fix="close the other instance, or give one of them another name.")
            _live[self.name] = self
        self._closed = False
        self._init_error = None
        self._ready_models.clear()

    async def __aenter__(self) -> DataFlow:
        await self._ensure_ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def close_sync(self) -> None:
        """``close()`` from sync code (through the sync API's background loop)."""
        from . import portal

        portal.call(self.close())
