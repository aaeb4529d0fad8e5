"""MongoDB specifics: URLs, storage of ids and values, the query documents the AST
compiles to, migrations from the schema record, pool sizing, reconnects, close."""

from __future__ import annotations

import asyncio
import datetime as _dt
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from bson.binary import Binary, UuidRepresentation
from bson.decimal128 import Decimal128

from dataflow import DataFlow, hookimpl, plugins
from dataflow.adapter import DatabaseURL
from dataflow.errors import (
    ConfigurationError,
    ConnectionLostError,
    MigrationRefusedError,
    UnsupportedError,
    ValidationError,
)
from dataflow.model import field
from dataflow.pool import ServerInfo
from dataflow.query.ast import Like
from dataflow_mongo.adapter import COUNTERS, SCHEMAS, MongoAdapter
from dataflow_mongo.codec import read_datetime
from dataflow_mongo.query import like_literal, like_regex


def _raw(db: DataFlow) -> Any:
    adapter: MongoAdapter = db.adapter  # type: ignore[assignment]
    return adapter


async def _collection(db: DataFlow, name: str) -> Any:
    client = await _raw(db).client()
    return client[_raw(db).database][name]


# --- URLs and the entry point -----------------------------------------------------------------
async def test_urls_pick_the_mongo_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "mongodb" in plugins.adapters()
    for url in ("mongodb://h:27017/app", "mongodb+srv://user:pw@cluster.example.net/app"):
        db = DataFlow(url)
        try:
            assert isinstance(db.adapter, MongoAdapter) and _raw(db).database == "app"
        finally:
            db._closed = True  # nothing was opened: no client exists yet
    monkeypatch.setenv("DATABASE_URL", "mongodb://h:27017/fromenv")
    db = DataFlow()
    assert isinstance(db.adapter, MongoAdapter) and _raw(db).database == "fromenv"
    db._closed = True
    with pytest.raises(ConfigurationError):
        MongoAdapter(DatabaseURL.parse("mongodb://h:27017"))


# --- storage ------------------------------------------------------------------------------------
async def test_ids_are_stored_as__id(mdb: DataFlow) -> None:
    @mdb.model
    class ByInt:
        name: str

    @mdb.model
    class ByUuid:
        id: uuid.UUID
        name: str

    @mdb.model
    class ByStr:
        id: str
        name: str

    a = await mdb.express.create("ByInt", {"name": "a"})
    b = await mdb.express.bulk_create("ByInt", [{"name": "b"}, {"name": "c"}])
    assert b["inserted"] == 2
    ints = [r["id"] for r in await mdb.express.list("ByInt", order_by="created_at")]
    assert len(set(ints)) == 3 and ints[0] == a["id"] and all(type(i) is int for i in ints)
    await mdb.express.create("ByInt", {"id": 100, "name": "explicit"})
    after = await mdb.express.create("ByInt", {"name": "next"})
    assert after["id"] == 101  # generated ids continue above the caller's
    counter = await (await _collection(mdb, COUNTERS)).find_one({"_id": "by_int"})
    assert counter["seq"] >= 101  # single inserts reserve a block of ids at a time
    u = await mdb.express.create("ByUuid", {"name": "u"})
    s = await mdb.express.create("ByStr", {"id": "key-1", "name": "s"})
    raw_u = await (await _collection(mdb, "by_uuid")).find_one({})
    assert raw_u["_id"] == u["id"] and "id" not in raw_u
    client = await _raw(mdb).client()
    binary = await client.get_database(_raw(mdb).database, codec_options=client.codec_options.with_options(
        uuid_representation=UuidRepresentation.UNSPECIFIED))["by_uuid"].find_one({})
    assert isinstance(binary["_id"], Binary) and binary["_id"].subtype == 4  # standard UUID
    raw_s = await (await _collection(mdb, "by_str")).find_one({})
    assert raw_s["_id"] == "key-1" == s["id"]


async def test_concurrent_creates_get_distinct_ids(mdb: DataFlow) -> None:
    @mdb.model
    class Racer:
        n: int

    await mdb.initialize()
    made = await asyncio.gather(*(mdb.express.create("Racer", {"n": i}) for i in range(30)))
    assert len({r["id"] for r in made}) == 30


async def test_values_are_stored_as_bson_types(mdb: DataFlow) -> None:
    @mdb.model
    class Stored:
        price: Decimal
        flag: bool
        at: _dt.datetime
        meta: dict[str, Any]

    rec = await mdb.express.create("Stored", {"price": Decimal("0.10"), "flag": True,
                                              "at": _dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
                                              "meta": {"k": [1, {"x": None}]}})
    raw = await (await _collection(mdb, "stored")).find_one({"_id": rec["id"]})
    assert raw["price"] == Decimal128("0.10")
    assert raw["flag"] is True
    # a BSON date (what other MongoDB tools expect), truncated to the millisecond it keeps
    assert raw["at"] == _dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=_dt.UTC)
    assert rec["at"] == raw["at"], "the record returned is the record stored"
    assert isinstance(raw["created_at"], _dt.datetime) and raw["created_at"].microsecond % 1000 == 0
    assert raw["meta"] == {"k": [1, {"x": None}]}
    with pytest.raises(Exception) as info:
        await mdb.express.create("Stored", {"price": Decimal("1." + "1" * 40), "flag": False,
                                            "at": _dt.datetime.now(), "meta": {}})
    assert getattr(info.value, "code", None) == "DF-301"


# --- the AST compiled to query documents ----------------------------------------------------------
def test_like_patterns_keep_sql_meaning() -> None:
    assert like_regex("a%b_c") == "^a.*b.c$"
    assert like_regex("100\\%") == "^100%$"
    assert like_regex("a.b*(c)") == "^a\\.b\\*\\(c\\)$"
    assert like_regex("x\x00y") == "^x\\x00y$"
    assert like_literal("100\\%") == "100%" and like_literal("a%") is None


async def test_filters_compile_to_operator_documents(mdb: DataFlow) -> None:
    @mdb.model
    class Item:
        name: str
        qty: int | None = None

    spec = mdb.get_model("Item")
    q = _raw(mdb).compiled(spec)[1]
    from dataflow.query.filters import parse_filter

    flt = q.filter(parse_filter(spec, {"name": "{'$gt': ''}", "qty": {"$in": [1, None]}}))
    assert flt == {"name": "{'$gt': ''}", "qty": {"$in": [1, None]}}
    flt = q.filter(parse_filter(spec, {"$and": [{"qty": {"$gt": 1}}, {"qty": {"$lt": 5}}]}))
    assert flt == {"$and": [{"qty": {"$gt": 1}}, {"qty": {"$lt": 5}}]}
    assert q.filter(Like("name", "a%", case_insensitive=True)) == {
        "name": {"$regex": "^a.*$", "$options": "si"}}
    assert q.filter(parse_filter(spec, {"id": 5})) == {"_id": 5}
    assert q.filter(parse_filter(spec, {"$not": {"qty": 1}})) == {"$nor": [{"qty": 1}]}
    await mdb.express.bulk_create("Item", [{"name": "a%b", "qty": 1}, {"name": "axb"}, {"name": "A_B"}])
    assert {r["name"] for r in await mdb.express.list("Item", {"name": {"$like": "a\\%b"}})} == {"a%b"}
    assert {r["name"] for r in await mdb.express.list("Item", {"name": {"$ilike": "a_b"}})} == {
        "a%b", "axb", "A_B"}


# --- migrations from the schema record --------------------------------------------------------------
async def test_migrations_use_the_schema_record(fresh_url: str) -> None:
    first = DataFlow(fresh_url)

    @first.model
    class Acct:
        email: str = field(unique=True)
        score: int = 0

    await first.initialize()
    await first.express.create("Acct", {"email": "a@x"})
    record = await (await _collection(first, SCHEMAS)).find_one({"_id": "acct"})
    assert record["unique"] == [["email"]] and record["columns"]["score"]["type"] == "int"
    await first.close()

    # additive: a new optional column and a column with a default are filled in
    second = DataFlow(fresh_url)

    @second.model
    class Acct:  # type: ignore[no-redef]  # noqa: F811
        email: str = field(unique=True)
        score: int = 0
        level: int = 3
        note: str | None = None

    plan = await second.initialize()
    assert sorted(s.kind for s in plan.steps) == ["add_column", "add_column"]
    rec = await second.express.find_one("Acct", {"email": "a@x"})
    assert rec is not None and rec["level"] == 3 and rec["note"] is None
    await second.close()

    # a changed type and a dropped unique key are refused with the plan (DF-601)
    third = DataFlow(fresh_url)

    @third.model
    class Acct:  # type: ignore[no-redef]  # noqa: F811
        email: str
        score: str = "0"
        level: int = 3
        note: str | None = None

    with pytest.raises(MigrationRefusedError) as info:
        await third.initialize()
    text = str(info.value)
    assert info.value.code == "DF-601"
    assert "type int -> str" in text and "unique key (email)" in text
    await third.close()

    # a new unique key is an additive step: the index exists afterwards
    fourth = DataFlow(fresh_url)

    @fourth.model
    class Acct:  # type: ignore[no-redef]  # noqa: F811
        email: str = field(unique=True)
        score: int = 0
        level: int = field(default=3, index=True)
        note: str | None = field(default=None, unique=True)

    plan = await fourth.initialize()
    assert sorted(s.kind for s in plan.steps) == ["add_index", "add_index"]
    indexes = await (await _collection(fourth, "acct")).index_information()
    assert {"uq_acct_email", "uq_acct_note", "ix_acct_level"} <= set(indexes)
    # nullable unique: null never conflicts (as in SQL)
    await fourth.express.create("Acct", {"email": "b@x"})
    await fourth.close()


async def test_foreign_keys_are_refused(mdb: DataFlow) -> None:
    @mdb.model
    class Parent:
        name: str

    @mdb.model
    class Child:
        parent_id: int = field(foreign_key="Parent", on_delete="cascade")

    with pytest.raises(UnsupportedError, match="on_delete"):
        await mdb.initialize()


# --- pool sizing, reconnects, close ---------------------------------------------------------------
class _Policy:
    def __init__(self) -> None:
        self.seen: list[tuple[str, ServerInfo, int]] = []

    @hookimpl(tryfirst=True)
    def dataflow_pool_size(self, adapter: str, server: ServerInfo, worker_count: int) -> int | None:
        self.seen.append((adapter, server, worker_count))
        return 7 if adapter == "mongodb" else None


async def test_pool_size_comes_from_the_hook(fresh_url: str) -> None:
    policy = _Policy()
    plugins.register(policy, name="mongo-test-policy")
    try:
        db = DataFlow(fresh_url)
        try:
            client = await _raw(db).client()
            assert client.options.pool_options.max_pool_size == 7
            name, server, _ = policy.seen[-1]
            assert name == "mongodb"
            # the test server reports 0 available connections: no limit is assumed from it
            assert server.max_connections is None or server.max_connections > 0
        finally:
            await db.close()
    finally:
        plugins.unregister(policy)
    db = DataFlow(fresh_url)  # the default policy's fallback without a server limit
    try:
        size = (await _raw(db).client()).options.pool_options.max_pool_size
        assert 1 <= size <= 50
    finally:
        await db.close()
    db = DataFlow(fresh_url, pool_size=3)
    try:
        assert (await _raw(db).client()).options.pool_options.max_pool_size == 3
    finally:
        await db.close()


class _Proxy:
    """A TCP relay in front of the server whose connections the test can cut, as a server
    restart or a network failure would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for w in self.writers:
            w.close()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_reconnects_after_the_connections_drop(fresh_url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(fresh_url)
    proxy = _Proxy(int(parts.port or 27017))
    port = await proxy.start()
    db = DataFlow(fresh_url.replace(f":{parts.port}/", f":{port}/"))
    try:
        @db.model
        class Ping:
            n: int

        await db.express.create("Ping", {"n": 1})
        proxy.cut()  # every open connection dies
        await asyncio.sleep(0.05)
        # the driver notices, opens new connections and retries once (retryable reads/writes)
        assert await db.express.count("Ping") == 1
        await db.express.create("Ping", {"n": 2})
        proxy.cut()
        # statements inside a transaction are not retried by the driver: the block fails with
        # DF-903 (nothing written) or, if the pool had already replaced the connection, commits;
        # run again, it commits
        for _attempt in range(2):
            try:
                async with db.transaction():
                    await db.express.create("Ping", {"n": 3})
                break
            except ConnectionLostError as exc:
                assert exc.code == "DF-903"
        assert await db.express.count("Ping") == 3
    finally:
        await db.close()
        await proxy.stop()


def test_close_leaves_no_task_or_thread(fresh_url: str) -> None:
    """After ``db.close()`` and the end of the loop, nothing DataFlow started is running."""
    before = set(threading.enumerate())
    leftover: list[asyncio.Task[Any]] = []

    async def scenario() -> None:
        db = DataFlow(fresh_url)

        @db.model
        class Tick:
            n: int

        await db.express.create("Tick", {"n": 1})
        db.express_sync  # noqa: B018  (the sync API's background loop is the portal's, not ours)
        await db.close()
        await asyncio.sleep(0.05)
        leftover.extend(t for t in asyncio.all_tasks() if t is not asyncio.current_task())

    asyncio.run(scenario())
    assert leftover == []
    assert [t for t in set(threading.enumerate()) - before if t.is_alive()] == []


# --- datetimes: BSON dates, milliseconds ----------------------------------------------------------
async def test_datetimes_are_bson_dates_that_filter_and_sort_by_time(mdb: DataFlow) -> None:
    @mdb.model
    class Tick:
        at: _dt.datetime

    base = _dt.datetime(2024, 1, 1, tzinfo=_dt.UTC)
    plus2 = _dt.timezone(_dt.timedelta(hours=2))
    values = [base + _dt.timedelta(milliseconds=ms) for ms in (5, 1, 1000, 3)]
    values.append(_dt.datetime(2024, 1, 1, 2, 0, 0, 2000, tzinfo=plus2))  # base + 2 ms
    await mdb.express.bulk_create("Tick", [{"at": v} for v in values])
    coll = await _collection(mdb, "tick")
    assert await coll.count_documents({"at": {"$type": "date"}}) == 5
    ordered = [r["at"] for r in await mdb.express.list("Tick", order_by="at")]
    assert ordered == sorted(v.astimezone(_dt.UTC) for v in values)
    found = await mdb.express.list("Tick", {"at": {"$gt": base + _dt.timedelta(milliseconds=2),
                                                   "$lte": base + _dt.timedelta(seconds=1)}},
                                   order_by="-at")
    assert [r["at"] for r in found] == [base + _dt.timedelta(milliseconds=ms) for ms in (1000, 5, 3)]
    # another tool's BSON date (naive, as PyMongo writes by default) reads back aware UTC
    await coll.insert_one({"_id": 999, "at": _dt.datetime(2020, 2, 3, 4, 5, 6, 7000),
                           "created_at": base, "updated_at": base})
    other = await mdb.express.read("Tick", 999)
    assert other is not None and other["at"] == _dt.datetime(2020, 2, 3, 4, 5, 6, 7000, tzinfo=_dt.UTC)
    assert other["at"].tzinfo is _dt.UTC


async def test_sub_millisecond_input_is_truncated_and_strict_mode_refuses_it(fresh_url: str) -> None:
    fine = _dt.datetime(2024, 5, 6, 7, 8, 9, 123999, tzinfo=_dt.UTC)
    kept = fine.replace(microsecond=123000)
    db = DataFlow(fresh_url)
    strict_db = DataFlow(fresh_url, strict=True)
    try:
        for d in (db, strict_db):
            @d.model
            class Event:
                id: int
                at: _dt.datetime

        made = await db.express.create("Event", {"id": 1, "at": fine})
        assert made["at"] == kept
        assert (await db.express.read("Event", 1) or {})["at"] == kept
        # a filter on the same input finds the record written from it (both truncated)
        assert [r["id"] for r in await db.express.list("Event", {"at": fine})] == [1]
        updated = await db.express.update("Event", 1, {"at": fine.replace(microsecond=999)})
        assert updated is not None and updated["at"] == fine.replace(microsecond=0)

        with pytest.raises(ValidationError) as info:
            await strict_db.express.create("Event", {"id": 2, "at": fine})
        assert info.value.code == "DF-301" and info.value.field == "at"
        assert "milliseconds" in str(info.value)
        with pytest.raises(ValidationError):
            await strict_db.express.bulk_create("Event", [{"id": 3, "at": kept}, {"id": 4, "at": fine}])
        assert await db.express.count("Event") == 1, "nothing was written"
        assert (await strict_db.express.create("Event", {"id": 5, "at": kept}))["at"] == kept
    finally:
        await db.close()
        await strict_db.close()


async def test_text_datetimes_of_an_earlier_version_are_converted_once(fresh_url: str) -> None:
    db = DataFlow(fresh_url)

    @db.model
    class Old:
        name: str
        at: _dt.datetime

    await db.initialize()
    coll = await _collection(db, "old")
    schemas = await _collection(db, SCHEMAS)
    # what the text-storing version wrote: fixed-width UTC text, and no storage mark
    text = "2024-05-06T07:08:09.123456Z"
    await coll.insert_one({"_id": 1, "name": "a", "at": text, "created_at": text,
                           "updated_at": text})
    await schemas.update_one({"_id": "old"}, {"$unset": {"datetimes": ""}})
    await db.close()

    db = DataFlow(fresh_url)
    try:
        @db.model
        class Old:
            name: str
            at: _dt.datetime

        plan = await db.initialize()
        assert any(s.kind == "convert_datetimes" for s in plan.steps)
        coll = await _collection(db, "old")
        raw = await coll.find_one({"_id": 1})
        at = _dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=_dt.UTC)
        assert raw["at"] == at and raw["created_at"] == at
        assert [r["id"] for r in await db.express.list("Old", {"at": {"$gte": at}})] == [1]
        assert not (await db.initialize()).steps, "converted once"
        # text left by other means still reads back as a datetime
        assert read_datetime(text) == _dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=_dt.UTC)
    finally:
        await db.close()
