"""PostgreSQL-specific behaviour: dialect, COPY bulk paths, pools, reconnects, migrations.

Every test runs against the real server of ``DATAFLOW_POSTGRES_URL``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import pytest
from pg_support import run_sql

from dataflow import DataFlow, field
from dataflow.errors import (
    BulkValidationError,
    IntegrityError,
    MigrationRefusedError,
    UnsupportedError,
)
from dataflow.pool import ServerInfo
from dataflow_postgres.adapter import UPSERT_COPY_THRESHOLD, PostgresAdapter
from dataflow_postgres.dialect import PostgresCompiler
from dataflow_postgres.plugin import pool_size_for


class Tone(enum.Enum):
    LOW = "low"
    HIGH = "high"


async def _columns(url: str, table: str) -> dict[str, tuple[str, str | None, bool]]:
    rows = await run_sql(
        url, "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
        "pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '' "
        "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
        "AND d.adnum = a.attnum WHERE a.attrelid = $1::regclass AND a.attnum > 0 "
        "AND NOT a.attisdropped", f'"{table}"')
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


# --- dialect ---------------------------------------------------------------------------------
async def test_column_types_are_native(make_db: Any, pg_url: str) -> None:
    db = make_db()

    @db.model
    class PgTyped:
        id: uuid.UUID
        title: str
        code: str = field(max_length=12)
        n: int = 0
        ratio: float = 0.0
        price: Decimal = Decimal("0")
        when: _dt.date | None = None
        doc: dict = {}
        tone: Tone = Tone.LOW
        on: bool = True

    await db.initialize()
    cols = await _columns(pg_url, "pg_typed")
    assert cols["id"][0] == "uuid" and cols["id"][1] == "gen_random_uuid()"
    assert cols["title"][0] == "text"
    assert cols["code"][0] == "character varying(12)"
    assert cols["n"][0] == "bigint"
    assert cols["ratio"][0] == "double precision"
    assert cols["price"][0] == "numeric"
    assert cols["when"][0] == "date"
    assert cols["doc"][0] == "jsonb"
    assert cols["tone"][0] == "text"
    assert cols["on"][0] == "boolean"
    assert cols["created_at"][0] == "timestamp with time zone"
    # the server default fills ids written by other clients
    rows = await run_sql(pg_url, "INSERT INTO pg_typed (title, code, n, ratio, price, doc, tone, \"on\", "
                              "created_at, updated_at) VALUES ('raw', 'c', 1, 1, 1, '{}', 'low', "
                              "true, now(), now()) RETURNING id")
    assert isinstance(rows[0]["id"], uuid.UUID)
    # enum columns are recognised on the next start: no migration planned
    db2 = make_db(auto_migrate=False)
    db2.model(PgTyped)
    assert not await db2.plan()
    record = await db2.express.read("PgTyped", rows[0]["id"])
    assert record is not None and type(record["id"]) is uuid.UUID and record["tone"] is Tone.LOW


async def test_updates_by_id_store_and_return_the_same_when_their_text_is_reused(
        make_db: Any) -> None:
    """An update by id keeps its statement per updated column set: the first update of a set
    is compiled, later ones reuse the text with freshly encoded values -- both store and
    return the same, for every type, and another column set gets its own statement."""
    db = make_db()

    @db.model
    class PgUpd:
        title: str
        price: Decimal = Decimal("0")
        tone: Tone = Tone.LOW
        doc: dict = {}
        when: _dt.datetime | None = None
        n: int = 0

    await db.initialize()
    a = await db.express.create("PgUpd", {"title": "a"})
    b = await db.express.create("PgUpd", {"title": "b"})
    when = _dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=_dt.UTC)
    for rec, n in ((a, 1), (b, 2), (a, 3)):  # one column set: compiled, then reused
        changed = {"price": Decimal(f"{n}.25"), "tone": Tone.HIGH if n % 2 else Tone.LOW,
                   "doc": {"n": n, "tags": ["x", None]}, "when": when if n < 3 else None}
        back = await db.express.update("PgUpd", rec["id"], changed)
        assert back is not None and {k: back[k] for k in changed} == changed
        assert back == await db.express.read("PgUpd", rec["id"])
    other = await db.express.update("PgUpd", b["id"], {"n": 7})  # another column set
    assert other is not None and other["n"] == 7 and other["price"] == Decimal("2.25")
    assert await db.express.update("PgUpd", 10**9, {"n": 1}) is None  # no such row
    assert (await db.express.read("PgUpd", a["id"]))["when"] is None


async def test_integer_ids_are_identity(make_db: Any, pg_url: str) -> None:
    db = make_db()

    @db.model
    class PgSeq:
        name: str

    await db.initialize()
    cols = await _columns(pg_url, "pg_seq")
    assert cols["id"][0] == "bigint" and cols["id"][2] is True
    # explicit ids move the identity past them: the next generated id does not collide
    await db.express.bulk_upsert("PgSeq", [{"id": 500, "name": "explicit"}])
    created = await db.express.create("PgSeq", {"name": "next"})
    assert created["id"] > 500
    await db.express.bulk_create("PgSeq", [{"id": 1000 + i, "name": f"b{i}"} for i in range(100)])
    assert (await db.express.create("PgSeq", {"name": "after"}))["id"] > 1099


async def test_single_creates_with_explicit_ids_move_the_identity_across_rebuilds(
        make_db: Any, pg_url: str) -> None:
    """A create with an explicit id moves the identity sequence in its own statement, which
    names the sequence looked up once per table: it stays right after DataFlow rebuilds the
    table, after another process rebuilds it under the same names, and after the table is
    rebuilt with its sequence under another name (a create on its own looks the sequence up
    again and succeeds; inside a transaction the statement that meets the old name fails,
    DF-coded, the transaction rolls back, and the next create looks the sequence up again)."""
    db = make_db()

    @db.model
    class PgSeqOne:
        name: str

    async def sequence() -> int | None:
        rows = await run_sql(pg_url, "SELECT last_value FROM pg_sequences WHERE format('%I.%I', "
                          "schemaname, sequencename) = pg_get_serial_sequence('pg_seq_one', 'id')")
        return rows[0][0] if rows else None

    await db.initialize()
    for key in (7, 3, 12):  # 3 is below the mark: the sequence never moves back
        assert (await db.express.create("PgSeqOne", {"id": key, "name": f"e{key}"}))["id"] == key
    assert await sequence() == 12
    assert (await db.express.create("PgSeqOne", {"name": "next"}))["id"] == 13

    await db.drop_tables()  # DataFlow rebuilds: a fresh sequence, looked up again
    await db.initialize()
    assert (await db.express.create("PgSeqOne", {"id": 40, "name": "x"}))["id"] == 40
    assert (await db.express.create("PgSeqOne", {"name": "y"}))["id"] == 41

    # another process rebuilds the table: same table and sequence names, new objects
    ddl = ("CREATE TABLE pg_seq_one (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
           "name TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, "
           "updated_at TIMESTAMPTZ NOT NULL)")
    await run_sql(pg_url, "DROP TABLE pg_seq_one")
    await run_sql(pg_url, ddl)
    assert (await db.express.create("PgSeqOne", {"id": 90, "name": "z"}))["id"] == 90
    assert await sequence() == 90
    assert (await db.express.create("PgSeqOne", {"name": "w"}))["id"] == 91

    # rebuilt while the old sequence name was taken: its sequence gets another name
    from dataflow.errors import DatabaseError

    squats = ("pg_seq_one_id_seq", "pg_seq_one_id_seq1")

    async def rebuild_under_another_sequence_name(taken: int) -> None:
        """The table rebuilt while the first ``taken`` sequence names are tables."""
        await run_sql(pg_url, "DROP TABLE pg_seq_one")
        for name in squats[:taken]:
            await run_sql(pg_url, f"CREATE TABLE IF NOT EXISTS {name} (x int)")  # not a sequence
        await run_sql(pg_url, ddl)

    try:
        await rebuild_under_another_sequence_name(1)  # its sequence: pg_seq_one_id_seq1
        # a create on its own: the failed statement wrote nothing, so it is sent again with
        # the sequence looked up anew
        assert (await db.express.create("PgSeqOne", {"id": 200, "name": "alone"}))["id"] == 200
        assert await sequence() == 200
        assert (await db.express.create("PgSeqOne", {"name": "v"}))["id"] == 201

        await rebuild_under_another_sequence_name(2)  # its sequence: pg_seq_one_id_seq2
        # inside a transaction the failed statement aborted it: refused, nothing committed
        with pytest.raises(DatabaseError, match="DF-"):
            async with db.transaction():
                await db.express.create("PgSeqOne", {"id": 300, "name": "stale"})
        assert await db.express.list("PgSeqOne") == []
        assert (await db.express.create("PgSeqOne", {"id": 301, "name": "again"}))["id"] == 301
        assert await sequence() == 301
        assert (await db.express.create("PgSeqOne", {"name": "w"}))["id"] == 302
        assert [r["id"] for r in await db.express.list("PgSeqOne", order_by="id")] == [301, 302]
    finally:
        for name in squats:
            await run_sql(pg_url, f"DROP TABLE IF EXISTS {name}")


def test_compiler_renders_postgres_sql() -> None:
    from dataflow.model import build_model_spec
    from dataflow.query.ast import Select
    from dataflow.query.filters import parse_filter, parse_order_by

    class Doc:
        title: str
        score: float = 0.0

    spec = build_model_spec(Doc)
    c = PostgresCompiler()
    stmt = Select(spec, parse_filter(spec, {"title": {"$ilike": "a%"}, "$or": [
        {"title": {"$regex": "^x"}}, {"title": {"$regex": "y$", "$options": "i"}}],
        "score": {"$gt": 1}}), parse_order_by(spec, ["-score"]), limit=5, offset=10)
    out = c.compile(stmt)
    assert '"title" ILIKE $1' in out.sql
    assert '"title" ~ $2' in out.sql and '"title" ~* $3' in out.sql
    assert '"score" > $4' in out.sql
    assert out.sql.endswith('ORDER BY "score" DESC NULLS LAST LIMIT 5 OFFSET 10')
    assert out.params == ("a%", "^x", "y$", 1.0)
    upsert = c.upsert_sql(spec, ("id", "title"), ("id",), ("title",), 2)
    assert upsert.startswith('INSERT INTO "doc" ("id", "title") VALUES ($1, $2), ($3, $4)')
    assert upsert.endswith('ON CONFLICT ("id") DO UPDATE SET "title" = excluded."title"')
    assert c.insert_sql(spec, ("title",), 1, returning=True).endswith(
        'RETURNING "id", "title", "score", "created_at", "updated_at"')


async def test_indexes_unique_partial_and_gin(make_db: Any, pg_url: str) -> None:
    db = make_db()

    @db.model
    class PgIndexed:
        __dataflow__ = {
            "unique": [("tenant", "slug")],
            "pg_indexes": [{"columns": ["slug"], "unique": True, "where": "active"}],
        }
        tenant: str
        slug: str
        active: bool = True
        tags: dict = field(default_factory=dict, index=True)

    await db.initialize()
    rows = await run_sql(pg_url, "SELECT indexdef FROM pg_indexes WHERE tablename = 'pg_indexed'")
    defs = " | ".join(r[0] for r in rows)
    assert "UNIQUE INDEX" in defs and "(tenant, slug)" in defs
    assert "USING gin (tags)" in defs
    assert "WHERE active" in defs
    await db.express.create("PgIndexed", {"tenant": "a", "slug": "s", "active": False})
    await db.express.create("PgIndexed", {"tenant": "b", "slug": "s", "active": True})
    with pytest.raises(IntegrityError):  # partial unique: one active "s"
        await db.express.create("PgIndexed", {"tenant": "c", "slug": "s", "active": True})


async def test_nul_is_refused_honestly(make_db: Any) -> None:
    db = make_db()

    @db.model
    class PgNul:
        text: str

    with pytest.raises(UnsupportedError, match="NUL"):
        await db.express.create("PgNul", {"text": "a\x00b"})
    assert await db.express.count("PgNul") == 0


# --- bulk ---------------------------------------------------------------------------------------
async def test_bulk_create_copies_large_batches(make_db: Any) -> None:
    db = make_db()

    @db.model
    class PgBulk:
        name: str
        price: Decimal = Decimal("0")
        doc: dict = {}
        tone: Tone = Tone.LOW
        at: _dt.datetime | None = None

    when = _dt.datetime(2024, 5, 1, 12, 0, tzinfo=_dt.UTC)
    rows = [{"name": f"n{i}", "price": Decimal(f"{i}.25"), "doc": {"i": i}, "tone": Tone.HIGH,
             "at": when} for i in range(5000)]
    result = await db.express.bulk_create("PgBulk", rows)
    assert result == {"inserted": 5000, "failed": [], "ok": True}
    got = await db.express.list("PgBulk", {"name": "n4999"})
    assert got[0]["price"] == Decimal("4999.25") and got[0]["doc"] == {"i": 4999}
    assert got[0]["tone"] is Tone.HIGH and got[0]["at"] == when
    # COPY is all-or-nothing inside the bulk call
    with pytest.raises(IntegrityError):
        await db.express.bulk_create("PgBulk", [{"id": 1, "name": "dup"}] + rows[:100])
    assert await db.express.count("PgBulk") == 5000


@pytest.mark.parametrize("size", [10, UPSERT_COPY_THRESHOLD + 500])
async def test_bulk_upsert_counts_are_exact(make_db: Any, size: int) -> None:
    db = make_db()

    @db.model
    class PgUp:
        email: str = field(unique=True)
        score: int = 0

    half = size // 2
    await db.express.bulk_create("PgUp", [{"email": f"u{i}@x", "score": 0} for i in range(half)])
    rows = [{"email": f"u{i}@x", "score": i} for i in range(size)]
    result = await db.express.bulk_upsert("PgUp", rows, conflict_on="email")
    assert (result["inserted"], result["updated"]) == (size - half, half)
    assert await db.express.count("PgUp") == size
    top = await db.express.find_one("PgUp", {"email": f"u{half - 1}@x"})
    assert top is not None and top["score"] == half - 1
    # again: everything exists now
    again = await db.express.bulk_upsert("PgUp", rows, conflict_on="email")
    assert (again["inserted"], again["updated"]) == (0, size)


async def test_bulk_upsert_streams_its_batches_into_one_staging_copy(
        make_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many rows: encoded 2,000 at a time and streamed into one staging COPY (one staging
    table, one INSERT ... SELECT), whatever batch_size; explicit ids move the identity; an
    invalid row or a repeated key in a later batch writes nothing and is named."""
    db = make_db()

    @db.model
    class PgUpStream:
        email: str = field(unique=True)
        score: int = 0

    await db.initialize()
    adapter: Any = db.adapter
    batches: list[int] = []
    staged: list[str] = []
    real_copy = adapter._copy_temp

    async def copy_spy(conn: Any, tmp: str, columns: Any, records: Any) -> None:
        staged.append(tmp)
        await real_copy(conn, tmp, columns, records)

    real_upsert = adapter.upsert_encoded

    async def upsert_spy(conn: Any, stmt: Any, stream: Any) -> Any:
        def counted() -> Any:
            for batch in stream:
                batches.append(len(batch))
                yield batch
        return await real_upsert(conn, stmt, counted())

    monkeypatch.setattr(adapter, "_copy_temp", copy_spy)
    monkeypatch.setattr(adapter, "upsert_encoded", upsert_spy)
    await db.express.bulk_create("PgUpStream", [{"email": f"u{i}@x"} for i in range(0, 9000, 3)])
    rows = [{"id": 20_000 + i, "email": f"e{i}@x", "score": i} for i in range(9000)]
    for i in range(0, 9000, 3):
        rows[i] = {"id": i // 3 + 1, "email": f"u{i}@x", "score": i}
    out = await db.express.bulk_upsert("PgUpStream", rows, conflict_on="email")
    assert (out["inserted"], out["updated"]) == (6000, 3000)
    assert batches == [2000, 2000, 2000, 2000, 1000] and len(staged) == 1
    assert (await db.express.create("PgUpStream", {"email": "next@x"}))["id"] > 28_999
    before = await db.express.count("PgUpStream")
    bad = [dict(r, id=40_000 + n) for n, r in enumerate(rows)]
    bad[8500] = {"id": 50_000, "email": "bad@x", "score": "high"}
    with pytest.raises(BulkValidationError, match="row 8500"):
        await db.express.bulk_upsert("PgUpStream", bad, conflict_on="email", batch_size=5000)
    bad[8500] = {"id": 50_000, "email": "e1@x", "score": 1}  # e1@x is row 1's key too
    with pytest.raises(BulkValidationError, match="repeats"):
        await db.express.bulk_upsert("PgUpStream", bad, conflict_on="email")
    assert await db.express.count("PgUpStream") == before
    assert await db.express.count("PgUpStream", {"id": {"$gte": 40_000}}) == 0


async def test_single_upsert_returns_record_and_counts(make_db: Any) -> None:
    db = make_db()

    @db.model
    class PgOne:
        key: str = field(unique=True)
        value: int = 0

    first = await db.express.upsert("PgOne", {"key": "k", "value": 1}, conflict_on="key")
    second = await db.express.upsert("PgOne", {"key": "k", "value": 2}, conflict_on="key")
    assert first["id"] == second["id"] and second["value"] == 2
    result = await db.express.bulk_upsert("PgOne", [{"key": "k", "value": 3}, {"key": "j"}],
                                          conflict_on="key", _return_rows=True)
    assert (result["inserted"], result["updated"]) == (1, 1)
    assert sorted(r["key"] for r in result["records"]) == ["j", "k"]


# --- pool -------------------------------------------------------------------------------------
def test_pool_policy_shares_the_server() -> None:
    server = ServerInfo(max_connections=100, reserved_connections=3, current_connections=0)
    assert pool_size_for(server, 1) == 50  # 77 usable x 0.8, clamped to core's ceiling
    assert pool_size_for(server, 4) == 19  # (100 - 3) x 0.8 // 4
    busy = ServerInfo(max_connections=100, reserved_connections=3, current_connections=60)
    assert pool_size_for(busy, 2) == 14  # others hold 60: (40 - 3) x 0.8 // 2
    assert pool_size_for(ServerInfo(max_connections=5, reserved_connections=3), 8) == 1


async def test_pool_sizes_from_server_and_overrides(pg_url: str, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    monkeypatch.delenv("DATAFLOW_POOL_SIZE", raising=False)
    monkeypatch.setenv("DATAFLOW_WORKER_COUNT", "4")
    auto = DataFlow(pg_url)
    try:
        await auto.adapter.run(_noop)
        adapter = auto.adapter
        assert isinstance(adapter, PostgresAdapter) and adapter.server is not None
        rows = await run_sql(pg_url, "SELECT current_setting('max_connections')::int")
        assert adapter.server.max_connections == rows[0][0]
        assert auto.pool_stats()["max"] == pool_size_for(adapter.server, 4)
    finally:
        await auto.close()
    explicit = DataFlow(pg_url, pool_size=3)
    try:
        await explicit.adapter.run(_noop)
        assert explicit.pool_stats()["max"] == 3
    finally:
        await explicit.close()
    monkeypatch.setenv("DATAFLOW_POOL_SIZE", "5")
    env = DataFlow(pg_url)
    try:
        await env.adapter.run(_noop)
        stats = env.pool_stats()
        assert stats["max"] == 5 and stats["active"] == 0 and stats["utilization"] == 0.0
    finally:
        await env.close()


async def _noop(conn: Any) -> None:
    await conn.fetchval("SELECT 1")


async def test_pool_stats_report_active_connections(make_db: Any) -> None:
    db = make_db(pool_size=4)

    @db.model
    class PgStat:
        name: str

    await db.initialize()
    seen: list[dict[str, Any]] = []
    async with db.transaction():
        await db.express.create("PgStat", {"name": "a"})
        seen.append(db.pool_stats())
    assert seen[0]["active"] == 1 and seen[0]["max"] == 4 and seen[0]["utilization"] == 0.25
    assert db.pool_stats()["active"] == 0


async def test_reconnects_after_backends_are_terminated(make_db: Any, pg_url: str) -> None:
    app = f"df_reconnect_{uuid.uuid4().hex[:8]}"
    db = make_db(pool_size=4, application_name=app)

    @db.model
    class PgDrop:
        name: str

    await asyncio.gather(*(db.express.create("PgDrop", {"name": f"n{i}"}) for i in range(8)))
    before = await run_sql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        app)
    assert 1 <= before[0][0] <= 4
    killed = await run_sql(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = $1", app)
    assert killed and all(r[0] for r in killed)
    # the next operations reconnect, concurrently too
    assert await db.express.count("PgDrop") == 8
    await asyncio.gather(*(db.express.create("PgDrop", {"name": f"m{i}"}) for i in range(8)))
    assert await db.express.count("PgDrop") == 16
    stats = db.pool_stats()
    assert stats["active"] == 0 and stats["max"] == 4
    after = await run_sql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                       app)
    assert after[0][0] <= 4  # no leaked connections


async def test_terminated_transaction_fails_then_recovers(make_db: Any, pg_url: str) -> None:
    app = f"df_txkill_{uuid.uuid4().hex[:8]}"
    db = make_db(pool_size=2, application_name=app)

    @db.model
    class PgTxDrop:
        name: str

    await db.initialize()
    from dataflow.errors import ConnectionLostError

    with pytest.raises(ConnectionLostError):
        async with db.transaction():
            await db.express.create("PgTxDrop", {"name": "lost"})
            await run_sql(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE application_name = $1", app)
            await db.express.create("PgTxDrop", {"name": "lost too"})
    assert await db.express.count("PgTxDrop") == 0  # the server rolled it back
    assert db.pool_stats()["active"] == 0


async def test_sync_and_async_loops_get_their_own_pools(make_db: Any) -> None:
    db = make_db(pool_size=8)

    @db.model
    class PgLoops:
        name: str

    await db.express.create("PgLoops", {"name": "async"})
    created = await asyncio.to_thread(db.express_sync.create, "PgLoops", {"name": "sync"})
    assert created["name"] == "sync"
    assert await db.express.count("PgLoops") == 2
    assert db.pool_stats()["max"] == 8 + 2  # the sync loop's pool takes a quarter on top


# --- migrations and existing databases -----------------------------------------------------------
async def test_existing_schema_mode_issues_no_ddl(make_db: Any, pg_url: str) -> None:
    await run_sql(pg_url, "DROP TABLE IF EXISTS pg_legacy")
    await run_sql(pg_url, "CREATE TABLE pg_legacy (id bigint PRIMARY KEY, name text NOT NULL)")
    try:
        db = make_db(existing_schema_mode=True, auto_migrate=False)

        @db.model
        class PgMissing:
            name: str

        with pytest.raises(MigrationRefusedError):
            await db.initialize()
        tables = await run_sql(pg_url, "SELECT to_regclass('pg_missing') IS NULL")
        assert tables[0][0] is True
    finally:
        await run_sql(pg_url, "DROP TABLE IF EXISTS pg_legacy")


async def test_two_processes_migrating_together_take_turns(pg_url: str) -> None:
    first, second = DataFlow(pg_url), DataFlow(pg_url)
    try:
        for db in (first, second):
            @db.model
            class PgRace:
                name: str = field(index=True)
                n: int = 0

        await asyncio.gather(first.initialize(), second.initialize())
        await first.express.create("PgRace", {"name": "x"})
        assert await second.express.count("PgRace") == 1
    finally:
        await first.drop_tables()
        await first.close()
        await second.close()


async def test_discover_schema_and_register_models(pg_url: str) -> None:
    ddl = [
        "DROP TABLE IF EXISTS pg_shop_order, pg_shop_customer",
        "CREATE TABLE pg_shop_customer (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "email text NOT NULL UNIQUE, name varchar(80), "
        "signed_up timestamptz NOT NULL DEFAULT now(), credit numeric(10, 2) DEFAULT 0)",
        "CREATE TABLE pg_shop_order (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
        "customer_id bigint NOT NULL REFERENCES pg_shop_customer (id) ON DELETE CASCADE, "
        "total double precision NOT NULL, meta jsonb, created_at timestamptz NOT NULL, "
        "updated_at timestamptz NOT NULL)",
        "CREATE INDEX pg_shop_order_total ON pg_shop_order (total) WHERE total > 100",
    ]
    for sql in ddl:
        await run_sql(pg_url, sql)
    db = DataFlow(pg_url, existing_schema_mode=True, auto_migrate=False)
    try:
        schema = await db.discover_schema()
        customer = schema["pg_shop_customer"]
        assert customer.columns["id"].primary_key and not customer.columns["email"].nullable
        assert customer.columns["name"].sql_type == "character varying(80)"
        assert customer.columns["signed_up"].default == "now()"
        assert any(i["unique"] and i["columns"] == ["email"] for i in customer.indexes)
        order = schema["pg_shop_order"]
        assert order.foreign_keys == [{
            "name": "pg_shop_order_customer_id_fkey", "columns": ["customer_id"],
            "table": "pg_shop_customer", "references": ["id"], "on_delete": "CASCADE",
            "column": "customer_id"}]
        assert any(i["where"] == "(total > (100)::double precision)" for i in order.indexes)

        names = await db.register_schema_as_models(tables=["pg_shop_customer", "pg_shop_order"])
        assert sorted(names) == ["PgShopCustomer", "PgShopOrder"]
        # the database fills server-side defaults: no signed_up, no credit in the create
        alice = await db.express.create("PgShopCustomer", {"email": "a@x", "name": "Alice"})
        assert isinstance(alice["signed_up"], _dt.datetime) and alice["credit"] == Decimal("0.00")
        order_row = await db.express.create("PgShopOrder", {"customer_id": alice["id"],
                                                            "total": 150.0, "meta": {"k": 1}})
        assert isinstance(order_row["id"], uuid.UUID) and order_row["created_at"] is not None
        # all the nodes exist for discovered models
        from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder

        wf = WorkflowBuilder()
        wf.add_node("PgShopOrderListNode", "orders", {"filter": {"total": {"$gt": 100}}})
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
        assert results["orders"]["count"] == 1
        updated = await db.express.update("PgShopCustomer", alice["id"], {"name": "Al"})
        assert updated is not None and updated["name"] == "Al"
    finally:
        await db.close()
        await run_sql(pg_url, "DROP TABLE IF EXISTS pg_shop_order, pg_shop_customer")
