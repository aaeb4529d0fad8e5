"""Optional capabilities, in pairs: where declared the feature works exactly; where not,
the adapter refuses with DF-501 (or keeps the documented fallback). One of each pair
runs on every adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from ...capabilities import Capabilities
from ...errors import FilterError, UnsupportedError
from ...model import field
from ._helpers import MakeDB, names, raises_df, statements_sent

pytestmark = pytest.mark.asyncio

WORDS = ["Apple", "apricot", "Banana", "École", "ÉCOLE", "école", "Straße", None]


async def _words(make_db: MakeDB) -> Any:
    db = make_db()

    @db.model
    class KitWord:
        name: str
        alt: str | None = None

    await db.express.bulk_create("KitWord", [{"name": w or "none", "alt": w} for w in WORDS])
    return db


async def _match(db: Any, flt: dict[str, Any]) -> set[str]:
    return names(await db.express.list("KitWord", flt))


async def _prices(make_db: MakeDB) -> Any:
    db = make_db()

    @db.model
    class KitPrice:
        name: str
        price: Decimal

    await db.express.bulk_create("KitPrice", [
        {"name": "nine", "price": Decimal("9.5")}, {"name": "ten", "price": Decimal("10.25")},
        {"name": "hundred", "price": Decimal("100")}, {"name": "tiny", "price": Decimal("0.001")}])
    return db


@pytest.mark.asyncio
class TestCapabilityDeclaration:
    async def test_capabilities_are_declared_consistently(self, make_db: MakeDB,
                                                          capabilities: Any) -> None:
        assert issubclass(capabilities, Capabilities)
        assert capabilities.name != "base", "name the adapter in its Capabilities class"
        for cap in Capabilities.all_names():
            assert isinstance(capabilities.supports(cap), bool)
        with pytest.raises(AttributeError):
            capabilities.supports("no_such_capability")
        db = make_db()
        assert db.adapter.capabilities is capabilities or issubclass(
            db.adapter.capabilities, capabilities)
        compiler = getattr(db.adapter, "compiler", None)
        if compiler is not None:  # a SQL adapter: its dialect must agree with the declaration
            assert compiler.supports_returning == capabilities.returning
            assert compiler.decimal_ordering == capabilities.decimal_ordering
            assert compiler.unicode_ilike == capabilities.unicode_ilike
            assert (compiler.lock_clause is not None) == capabilities.row_locks
            assert (getattr(compiler, "visit_json_contains", None) is not None
                    ) == capabilities.json_contains
            assert (getattr(compiler, "visit_regex", None) is not None) == capabilities.regex
        if capabilities.savepoints:
            assert capabilities.transactions, "savepoints need transactions"

    async def test_concurrent_tasks_writing_all_succeed(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitConcurrent:
            n: int

        await db.initialize()
        await asyncio.gather(*(db.express.create("KitConcurrent", {"n": i}) for i in range(30)))
        await asyncio.gather(*(db.express.bulk_create("KitConcurrent", [{"n": i}] * 5)
                               for i in range(5)))
        assert await db.express.count("KitConcurrent") == 55


@pytest.mark.asyncio
class TestCapabilityPairs:
    # --- regex ------------------------------------------------------------------------
    @pytest.mark.requires("regex")
    async def test_regex_is_exact(self, make_db: MakeDB) -> None:
        db = await _words(make_db)
        assert await _match(db, {"name": {"$regex": "^ap"}}) == {"apricot"}
        assert await _match(db, {"name": {"$regex": "^ap", "$options": "i"}}) == {"Apple",
                                                                                   "apricot"}
        assert await _match(db, {"name": {"$regex": "^B.n"}}) == {"Banana"}
        assert await _match(db, {"name": {"$regex": "ße$"}}) == {"Straße"}
        assert await _match(db, {"alt": {"$regex": "^[A-Z]"}}) == {"Apple", "Banana", "Straße"}
        assert await _match(db, {"$not": {"alt": {"$regex": "a"}}}) == {
            "Apple", "École", "ÉCOLE", "école", "none"}

    @pytest.mark.requires("regex")
    async def test_regex_classes_are_unicode_as_in_python_re(self, make_db: MakeDB) -> None:
        """The reference is Python's ``re.search`` on the stored text: ``\\w`` and
        ``[[:alpha:]]``-like classes cover every script, case folding covers ``É``/``é``."""
        import re

        db = await _words(make_db)
        every = {w or "none" for w in WORDS}
        for pattern, flags in [(r"^\w+$", ""), (r"^\w{5}$", ""), (r"\W", ""), (r"^é", ""),
                               (r"^école$", "i"), (r"^É", "i"), (r"SSE$", "i")]:
            expected = {w for w in every
                        if re.search(pattern, w, re.IGNORECASE if flags else 0)}
            flt: dict[str, Any] = {"$regex": pattern, **({"$options": flags} if flags else {})}
            assert await _match(db, {"name": flt}) == expected, (pattern, flags)
        # the sanity of the reference itself: these would fail under ASCII-only classes
        assert await _match(db, {"name": {"$regex": r"^\w+$"}}) == every
        assert await _match(db, {"name": {"$regex": r"^\w{5}$"}}) == {"Apple", "École", "ÉCOLE",
                                                                       "école"}

    @pytest.mark.unsupported("regex")
    async def test_regex_is_refused(self, make_db: MakeDB) -> None:
        db = await _words(make_db)
        with raises_df(UnsupportedError, "DF-501"):
            await db.express.list("KitWord", {"name": {"$regex": "^ap"}})

    async def test_invalid_regex_is_a_filter_error(self, make_db: MakeDB) -> None:
        db = await _words(make_db)
        with raises_df(FilterError, "DF-401", "regular expression"):
            await db.express.list("KitWord", {"name": {"$regex": "(unclosed"}})

    # --- JSON containment -----------------------------------------------------------
    async def _docs(self, make_db: MakeDB) -> Any:
        db = make_db()

        @db.model
        class KitDoc:
            name: str
            body: dict[str, Any] = {}
            tags: list[Any] = []

        await db.express.bulk_create("KitDoc", [
            {"name": "a", "body": {"kind": "x", "n": 1, "sub": {"ok": True}}, "tags": ["red", "blue"]},
            {"name": "b", "body": {"kind": "y", "n": 1.0, "list": [1, 2, {"k": "v"}]}, "tags": [1, 2]},
            {"name": "c", "body": {"kind": "x", "n": True, "list": [3]}, "tags": [["red"]]},
        ])
        return db

    @pytest.mark.requires("json_contains")
    async def test_contains_has_postgres_semantics(self, make_db: MakeDB) -> None:
        db = await self._docs(make_db)

        async def names(flt: dict[str, Any]) -> set[str]:
            return {r["name"] for r in await db.express.list("KitDoc", flt)}

        assert await names({"body": {"$contains": {"kind": "x"}}}) == {"a", "c"}
        assert await names({"body": {"$contains": {"sub": {"ok": True}}}}) == {"a"}
        assert await names({"body": {"$contains": {"n": 1}}}) == {"a", "b"}  # 1 == 1.0, not true
        assert await names({"body": {"$contains": {"list": [{"k": "v"}]}}}) == {"b"}
        assert await names({"body": {"$contains": {"list": 3}}}) == set()  # nested scalar vs array
        assert await names({"tags": {"$contains": ["red"]}}) == {"a"}
        assert await names({"tags": {"$contains": "red"}}) == {"a"}  # top-level scalar in array
        assert await names({"tags": {"$contains": [2, 1]}}) == {"b"}
        assert await names({"tags": {"$contains": [["red"]]}}) == {"c"}
        assert await names({"body": {"$contains": {}}}) == {"a", "b", "c"}
        assert await db.express.count("KitDoc", {"$not": {"tags": {"$contains": "red"}}}) == 2

    @pytest.mark.unsupported("json_contains")
    async def test_contains_is_refused(self, make_db: MakeDB) -> None:
        db = await self._docs(make_db)
        with raises_df(UnsupportedError, "DF-501"):
            await db.express.list("KitDoc", {"body": {"$contains": {"kind": "x"}}})

    async def test_contains_needs_a_json_field(self, make_db: MakeDB) -> None:
        db = await self._docs(make_db)
        with raises_df(FilterError, "DF-401", "JSON fields"):
            await db.express.list("KitDoc", {"name": {"$contains": "a"}})

    # --- unicode ilike ----------------------------------------------------------------
    @pytest.mark.requires("unicode_ilike")
    async def test_ilike_folds_unicode(self, make_db: MakeDB) -> None:
        db = await _words(make_db)
        assert await _match(db, {"name": {"$ilike": "école"}}) == {"École", "ÉCOLE", "école"}
        assert await _match(db, {"name": {"$ilike": "%COLE"}}) == {"École", "ÉCOLE", "école"}
        assert await _match(db, {"name": {"$ilike": "STRASSE"}}) == set(), "no ß -> ss folding"
        assert await _match(db, {"name": {"$ilike": "straße"}}) == {"Straße"}

    @pytest.mark.unsupported("unicode_ilike")
    async def test_non_ascii_ilike_is_refused(self, make_db: MakeDB) -> None:
        db = await _words(make_db)
        with raises_df(UnsupportedError, "DF-501", "$ilike"):
            await db.express.list("KitWord", {"name": {"$ilike": "école"}})
        assert await _match(db, {"name": {"$ilike": "APPLE"}}) == {"Apple"}

    # --- decimal ordering -------------------------------------------------------------
    @pytest.mark.requires("decimal_ordering")
    async def test_decimal_comparisons_and_order_are_numeric(self, make_db: MakeDB) -> None:
        db = await _prices(make_db)
        rows = await db.express.list("KitPrice", {"price": {"$gt": Decimal("9.9")}})
        assert names(rows) == {"ten", "hundred"}
        ordered = await db.express.list("KitPrice", order_by="price")
        assert [r["name"] for r in ordered] == ["tiny", "nine", "ten", "hundred"]
        assert await db.express.count("KitPrice", {"price": {"$lte": "10.25"}}) == 3

    @pytest.mark.unsupported("decimal_ordering")
    async def test_decimal_order_is_refused(self, make_db: MakeDB) -> None:
        db = await _prices(make_db)
        with raises_df(UnsupportedError, "DF-501", "Decimal"):
            await db.express.list("KitPrice", {"price": {"$gt": Decimal("9.9")}})
        with raises_df(UnsupportedError, "DF-501", "Decimal"):
            await db.express.list("KitPrice", order_by="-price")
        # equality stays exact
        assert names(await db.express.list("KitPrice", {"price": Decimal("10.25")})) == {"ten"}
        assert names(await db.express.list(
            "KitPrice", {"price": {"$in": [Decimal("100"), Decimal("0.001")]}})) == {
            "hundred", "tiny"}

    # --- NUL in text --------------------------------------------------------------------
    @pytest.mark.requires("nul_in_text")
    async def test_nul_in_text_round_trips(self, make_db: MakeDB) -> None:
        db = await _words(make_db)
        rec = await db.express.create("KitWord", {"name": "a\x00b"})
        back = await db.express.read("KitWord", rec["id"])
        assert back is not None and back["name"] == "a\x00b" and len(back["name"]) == 3
        assert names(await db.express.list("KitWord", {"name": "a\x00b"})) == {"a\x00b"}

    @pytest.mark.unsupported("nul_in_text")
    async def test_nul_in_text_is_refused_before_writing(self, make_db: MakeDB) -> None:
        db = await _words(make_db)
        before = await db.express.count("KitWord")
        with raises_df(UnsupportedError, "DF-501", "KitWord.name", "NUL"):
            await db.express.create("KitWord", {"name": "a\x00b"})
        assert await db.express.count("KitWord") == before

    # --- concurrent writers -------------------------------------------------------------
    @pytest.mark.requires("concurrent_writers", "transactions")
    async def test_two_open_write_transactions_do_not_block(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitWriter:
            who: str

        await db.initialize()
        a_wrote = asyncio.Event()
        b_done = asyncio.Event()

        async def a() -> None:
            async with db.transaction():
                await db.express.create("KitWriter", {"who": "a"})
                a_wrote.set()
                await asyncio.wait_for(b_done.wait(), 20)

        async def b() -> None:
            await a_wrote.wait()
            async with db.transaction():
                await db.express.create("KitWriter", {"who": "b"})
            b_done.set()

        await asyncio.wait_for(asyncio.gather(a(), b()), 30)
        assert {r["who"] for r in await db.express.list("KitWriter")} == {"a", "b"}

    @pytest.mark.unsupported("concurrent_writers")
    async def test_write_transactions_are_serialised(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitWriter:
            who: str

        await db.initialize()
        order: list[str] = []

        async def writer(who: str) -> None:
            async with db.transaction():
                order.append(f"{who}+")
                await db.express.create("KitWriter", {"who": who})
                await asyncio.sleep(0.01)
                order.append(f"{who}-")

        if db.adapter.capabilities.transactions:
            await asyncio.wait_for(asyncio.gather(*(writer(w) for w in "abc")), 30)
            for i in range(0, 6, 2):  # never interleaved: each block ends before the next
                assert order[i][0] == order[i + 1][0]
        else:
            with raises_df(UnsupportedError, "DF-501"):
                await writer("a")
        assert await db.express.count("KitWriter") == len(order) // 2

    # --- schema discovery ---------------------------------------------------------------
    @pytest.mark.requires("schema_discovery")
    async def test_introspection_reports_types_and_nullability(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitShape:
            name: str
            qty: int
            price: Decimal
            note: str | None = None

        await db.initialize()
        spec = db.get_model("KitShape")
        live = (await db.discover_schema([spec.table]))[spec.table]
        assert set(live.columns) == set(spec.fields)
        for fname, f in spec.fields.items():
            col = live.columns[fname]
            assert col.ltype is f.ltype, fname
            if not f.primary_key:
                assert col.nullable == f.nullable, fname
        assert live.columns["id"].primary_key

    @pytest.mark.unsupported("schema_discovery")
    async def test_schema_discovery_is_refused(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitShape:
            name: str

        await db.initialize()
        with raises_df(UnsupportedError, "DF-501", "schema"):
            await db.discover_schema(["kit_shape"])
        # migrations still see the columns they need
        live = await db.adapter.run(db.adapter.introspect, ["kit_shape"])
        assert set(live["kit_shape"].columns) >= {"id", "name", "created_at", "updated_at"}


#: declared-off capabilities and how the kit provokes each: every one must be refused with
#: DF-501 before anything reaches the database
REFUSED_BEFORE_SQL = ("regex", "json_contains", "unicode_ilike", "decimal_ordering", "row_locks",
                      "transactions", "savepoints", "fk_cascade", "fk_set_null", "fk_restrict",
                      "update_referenced_parent")
#: capabilities with no refusal: a fallback that stays exact, or a refusal that needs the live
#: schema first (migration steps are refused before any DDL; see TestMigrationCapabilities)
NOT_A_REFUSAL = {
    "returning": "the adapter reads the rows back by key instead",
    "concurrent_writers": "writers are serialised instead (test_write_transactions_are_serialised)",
    "transactional_ddl": "a failed migration reports the steps applied instead",
    "statement_rollback": "each statement of a transaction runs under a savepoint instead, or a "
                          "transaction with a failed statement is refused at commit",
    "alter_add_foreign_key": "the key reaches a live table by a destructive rebuild instead",
    "schema_discovery": "refused when asked (test_schema_discovery_is_refused)",
    "nul_in_text": "the value is refused before the write (test_nul_in_text_is_refused_before_writing)",
    "drop_column": "refused before any DDL, after reading the live schema",
    "alter_column_type": "refused before any DDL, after reading the live schema",
}


async def _provoke(capability: str, make_db: MakeDB, caps: Any) -> Any:
    """Set up what needs the database, then return a coroutine function that asks for
    ``capability`` (run it under ``statements_sent``)."""
    db = make_db()
    if capability in ("regex", "unicode_ilike", "json_contains", "decimal_ordering", "row_locks"):
        @db.model
        class KitOff:
            name: str
            price: Decimal = Decimal("1")
            body: dict[str, Any] = {}

        await db.initialize()
        ask: Callable[[], Awaitable[Any]] = {
            "regex": lambda: db.express.list("KitOff", {"name": {"$regex": "^a"}}),
            "unicode_ilike": lambda: db.express.list("KitOff", {"name": {"$ilike": "é%"}}),
            "json_contains": lambda: db.express.list("KitOff", {"body": {"$contains": {"a": 1}}}),
            "decimal_ordering": lambda: db.express.list("KitOff", order_by="price"),
            "row_locks": lambda: db.express.read("KitOff", 1, for_update=True),
        }[capability]
        if capability == "row_locks" and caps.transactions:
            async def locked() -> Any:
                async with db.transaction():
                    with statements_sent(db) as sent:
                        try:
                            await ask()
                        finally:
                            assert not sent.calls, f"SQL sent before the refusal: {sent.calls}"
            return db, locked, False
        return db, ask, True
    if capability == "transactions":
        async def begin() -> None:
            async with db.transaction():
                pass
        return db, begin, True
    if capability == "savepoints":
        if not caps.transactions:
            return db, None, True

        async def nested() -> None:
            async with db.transaction():
                with statements_sent(db) as sent:
                    try:
                        async with db.transaction():
                            pass
                    finally:
                        assert not sent.calls, f"SQL sent before the refusal: {sent.calls}"
        return db, nested, False
    if capability in ("fk_cascade", "fk_set_null", "fk_restrict"):
        action = {"fk_cascade": "cascade", "fk_set_null": "set null", "fk_restrict": "restrict"}

        @db.model
        class KitOffParent:
            name: str

        @db.model
        class KitOffChild:
            parent_id: int | None = field(foreign_key="KitOffParent", default=None,
                                          on_delete=action[capability])

        return db, db.initialize, True
    assert capability == "update_referenced_parent"
    if not caps.fk_restrict:
        return db, None, True

    @db.model
    class KitOffOwner:
        name: str

    @db.model
    class KitOffItem:
        owner_id: int = field(foreign_key="KitOffOwner")

    owner = await db.express.create("KitOffOwner", {"name": "o"})
    await db.express.create("KitOffItem", {"owner_id": owner["id"]})
    return db, lambda: db.express.update("KitOffOwner", owner["id"], {"name": "p"}), True


@pytest.mark.asyncio
class TestRefusedCapabilities:
    async def test_every_capability_is_either_refused_or_has_a_fallback(self) -> None:
        assert set(REFUSED_BEFORE_SQL) | set(NOT_A_REFUSAL) == set(Capabilities.all_names())
        assert not set(REFUSED_BEFORE_SQL) & set(NOT_A_REFUSAL)

    @pytest.mark.parametrize("capability", REFUSED_BEFORE_SQL)
    async def test_declared_off_capability_is_refused_before_any_sql(
            self, make_db: MakeDB, capabilities: Any, capability: str) -> None:
        if capabilities.supports(capability):
            pytest.skip(f"{capabilities.name} declares {capability} (its behaviour is tested "
                        "by the 'requires' twin)")
        db, ask, spy_here = await _provoke(capability, make_db, capabilities)
        if ask is None:
            pytest.skip(f"{capability} cannot be asked for without a capability "
                        f"{capabilities.name} lacks")
        with raises_df(UnsupportedError, "DF-501"):
            if spy_here:
                with statements_sent(db) as sent:
                    try:
                        await ask()
                    finally:
                        assert not sent.calls, f"SQL sent before the refusal: {sent.calls}"
            else:
                await ask()
