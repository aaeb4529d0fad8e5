"""Multi-tenancy: every statement on a tenant-scoped model carries the bound tenant.

The property test drives random operation sequences for two tenants (with ids of both)
and checks after every step that the other tenant's rows are byte-for-byte unchanged
and that nothing read belongs to another tenant.
"""

from __future__ import annotations

import weakref
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ...errors import (
    BulkValidationError,
    RecordDeletedError,
    TenantRequiredError,
    TenantViolationError,
)
from ...model import field
from ...workflow import AsyncLocalRuntime, WorkflowBuilder
from ._helpers import MakeDB, raises_df

pytestmark = pytest.mark.asyncio
TENANTS = ("acme", "globex")
#: one DataFlow per test invocation, shared by its hypothesis examples
_PROPERTY_DBS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _models(db: Any) -> None:
    @db.model
    class KitTenantNote:
        title: str
        n: int = 0
        email: str = field(unique=True, default_factory=lambda: __import__("uuid").uuid4().hex)

    @db.model
    class KitSharedCode:
        __dataflow__ = {"tenant_scoped": False}
        code: str


async def _snapshot(db: Any, tenant: str) -> list[dict[str, Any]]:
    async with db.tenant(tenant):
        return list(await db.express.list("KitTenantNote", order_by="id"))


@pytest.mark.asyncio
class TestTenancy:
    async def test_rows_are_scoped_to_the_bound_tenant(self, make_db: MakeDB) -> None:
        db = make_db(multi_tenant=True)
        _models(db)
        async with db.tenant("acme"):
            a = await db.express.create("KitTenantNote", {"title": "a", "email": "x@a"})
            assert a["tenant_id"] == "acme"
        async with db.tenant("globex"):
            # the same unique email is fine in another tenant: uniqueness is per tenant
            g = await db.express.create("KitTenantNote", {"title": "g", "email": "x@a"})
            assert await db.express.read("KitTenantNote", a["id"]) is None
            assert await db.express.update("KitTenantNote", a["id"], {"n": 9}) is None
            assert await db.express.delete("KitTenantNote", a["id"]) is False
            assert await db.express.count("KitTenantNote") == 1
            # a filter on tenant_id cannot widen the scope
            assert await db.express.list("KitTenantNote", {"tenant_id": "acme"}) == []
            assert await db.express.count(
                "KitTenantNote", {"$or": [{"tenant_id": "acme"}, {"title": "a"}]}) == 0
            res = await db.express.bulk_update("KitTenantNote", {}, {"n": 5}, confirmed=True)
            assert res["updated"] == 1
            assert (await db.express.bulk_delete("KitTenantNote", {}, confirmed=True))["deleted"] == 1
        async with db.tenant("acme"):
            assert await db.express.read("KitTenantNote", a["id"]) == a
            assert await db.express.read("KitTenantNote", g["id"]) is None

    async def test_no_tenant_bound_fails_before_any_sql(self, make_db: MakeDB) -> None:
        db = make_db(multi_tenant=True)
        _models(db)
        with raises_df(TenantRequiredError, "DF-802", "KitTenantNote"):
            await db.express.list("KitTenantNote")
        with raises_df(TenantRequiredError, "DF-802"):
            await db.express.create("KitTenantNote", {"title": "t"})
        # shared models need no tenant
        await db.express.create("KitSharedCode", {"code": "c"})
        assert await db.express.count("KitSharedCode") == 1

    async def test_other_tenant_id_is_refused_and_never_stored(self, make_db: MakeDB) -> None:
        db = make_db(multi_tenant=True)
        _models(db)
        async with db.tenant("acme"):
            with raises_df(TenantViolationError, "DF-803", "tenant_id"):
                await db.express.create("KitTenantNote", {"title": "t", "tenant_id": "globex"})
            with raises_df(BulkValidationError, "DF-305", "row 1", "DF-803"):
                await db.express.bulk_create("KitTenantNote", [{"title": "ok"},
                                                               {"title": "t", "tenant_id": "globex"}])
            mine = await db.express.create("KitTenantNote", {"title": "mine", "tenant_id": "acme"})
            with raises_df(TenantViolationError, "DF-803"):
                await db.express.update("KitTenantNote", mine["id"], {"tenant_id": "globex"})
            assert await db.express.count("KitTenantNote") == 1
        async with db.tenant("globex"):
            assert await db.express.count("KitTenantNote") == 0
            # an upsert by id must not take over another tenant's row
            with raises_df(TenantViolationError, "DF-803", "not records of the bound tenant"):
                await db.express.upsert("KitTenantNote", {"id": mine["id"], "title": "stolen"})
        async with db.tenant("acme"):
            assert (await db.express.read("KitTenantNote", mine["id"]))["title"] == "mine"

    async def test_upsert_conflict_target_includes_the_tenant(self, make_db: MakeDB) -> None:
        db = make_db(multi_tenant=True)
        _models(db)
        for tenant in TENANTS:
            async with db.tenant(tenant):
                await db.express.upsert("KitTenantNote", {"title": tenant, "email": "same@x"},
                                        conflict_on="email")
        async with db.tenant("acme"):
            res = await db.express.bulk_upsert("KitTenantNote", [{"title": "new", "email": "same@x"}],
                                               conflict_on=["email"])
            assert (res["inserted"], res["updated"]) == (0, 1)
        async with db.tenant("globex"):
            rows = await db.express.list("KitTenantNote")
            assert [(r["title"], r["tenant_id"]) for r in rows] == [("globex", "globex")]

    async def test_bulk_upsert_of_a_soft_delete_tenant_model(self, make_db: MakeDB) -> None:
        """Exact counts per tenant, the other tenant's same keys untouched, a tombstoned key
        or another tenant's row refused with nothing written (the all-valid bulk path)."""
        db = make_db(multi_tenant=True)

        @db.model
        class KitTenantSoftTag:
            label: str
            n: int = 0
            code: str = field(unique=True)
            __dataflow__ = {"soft_delete": True}

        def batch(lo: int, hi: int, n: int) -> list[dict[str, Any]]:
            return [{"label": f"l{i}", "n": n, "code": f"c{i}"} for i in range(lo, hi)]

        for tenant in TENANTS:
            async with db.tenant(tenant):
                res = await db.express.bulk_upsert("KitTenantSoftTag", batch(0, 40, 1),
                                                   conflict_on="code")
                assert (res["inserted"], res["updated"]) == (40, 0)
        async with db.tenant("acme"):
            res = await db.express.bulk_upsert("KitTenantSoftTag", batch(20, 60, 2),
                                               conflict_on="code")
            assert (res["inserted"], res["updated"]) == (20, 20)
            rows = await db.express.list("KitTenantSoftTag", order_by="code", limit=100)
            assert len(rows) == 60 and {r["tenant_id"] for r in rows} == {"acme"}
            assert sorted({r["n"] for r in rows}) == [1, 2]
            gone = (await db.express.list("KitTenantSoftTag", {"code": "c5"}))[0]
            assert await db.express.delete("KitTenantSoftTag", gone["id"])
            before = await db.express.list("KitTenantSoftTag", order_by="code", limit=100,
                                           include_deleted=True)
            with raises_df(RecordDeletedError, "DF-405", "code"):
                await db.express.bulk_upsert("KitTenantSoftTag", batch(0, 70, 3),
                                             conflict_on="code")
            with raises_df(BulkValidationError, "DF-305", "tenant_id"):
                await db.express.bulk_upsert(
                    "KitTenantSoftTag",
                    [{**r, "tenant_id": "globex" if i == 3 else "acme"}
                     for i, r in enumerate(batch(60, 70, 3))], conflict_on="code")
            assert await db.express.list("KitTenantSoftTag", order_by="code", limit=100,
                                         include_deleted=True) == before
            res = await db.express.bulk_upsert("KitTenantSoftTag", batch(6, 70, 4),
                                               conflict_on="code")
            assert (res["inserted"], res["updated"]) == (10, 54)
            res = await db.express.bulk_upsert(
                "KitTenantSoftTag", [{"id": r["id"], "label": "byid", "code": r["code"]}
                                     for r in rows[10:15]])
            assert (res["inserted"], res["updated"]) == (0, 5)
        async with db.tenant("globex"):
            with raises_df(TenantViolationError, "DF-803", "not records of the bound tenant"):
                await db.express.bulk_upsert(
                    "KitTenantSoftTag", [{"id": r["id"], "label": "x", "code": r["code"]}
                                         for r in rows[:3]])
            theirs = await db.express.list("KitTenantSoftTag", order_by="code", limit=100)
            assert len(theirs) == 40 and {(r["n"], r["label"][0]) for r in theirs} == {(1, "l")}

    async def test_tenant_follows_workflows_and_tasks(self, make_db: MakeDB) -> None:
        import asyncio

        db = make_db(multi_tenant=True)
        _models(db)
        wf = WorkflowBuilder()
        wf.add_node("KitTenantNoteCreateNode", "create", {"title": "wf"})
        wf.add_node("KitTenantNoteListNode", "list", {})
        wf.add_connection("create", "record.title", "list", "filter.title")
        async with db.tenant("acme"):
            results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
            assert results["create"]["record"]["tenant_id"] == "acme"
            assert results["list"]["count"] == 1
            counted = await asyncio.create_task(db.express.count("KitTenantNote"))
            assert counted == 1
        async with db.tenant("globex"):
            assert await db.express.count("KitTenantNote") == 0

    # one shared test class is collected by every adapter's test module ("differing
    # executors"); each invocation builds its own DataFlow, so examples never cross backends
    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.differing_executors])
    @given(ops=st.lists(st.tuples(
        st.sampled_from(TENANTS),
        st.sampled_from(["create", "read", "update", "delete", "list", "count", "bulk_update",
                         "bulk_delete", "upsert", "bulk_create"]),
        st.integers(min_value=0, max_value=30),
        st.sampled_from([{}, {"n": {"$gte": 3}}, {"title": {"$like": "t%"}},
                         {"$or": [{"n": 1}, {"tenant_id": "acme"}]}, {"tenant_id": "globex"},
                         {"$not": {"n": 2}}]),
    ), min_size=1, max_size=8))
    async def test_property_no_operation_touches_the_other_tenant(
        self, make_db: MakeDB, ops: list[tuple[str, str, int, dict[str, Any]]]
    ) -> None:
        db = _PROPERTY_DBS.get(make_db)
        if db is None:
            db = _PROPERTY_DBS[make_db] = make_db(multi_tenant=True)
            _models(db)  # reused across examples; rows are reset below
        for tenant in TENANTS:
            async with db.tenant(tenant):
                await db.express.bulk_delete("KitTenantNote", {}, confirmed=True)
                await db.express.bulk_create("KitTenantNote", [
                    {"title": f"t{i}", "n": i % 4} for i in range(3)])
        all_ids = [r["id"] for t in TENANTS for r in await _snapshot(db, t)]
        for tenant, op, k, flt in ops:
            other = TENANTS[1 - TENANTS.index(tenant)]
            before = await _snapshot(db, other)
            some_id = all_ids[k % len(all_ids)]
            async with db.tenant(tenant):
                ex = db.express
                seen: list[dict[str, Any]] = []
                if op == "create":
                    seen = [await ex.create("KitTenantNote", {"title": f"t{k}", "n": k % 4})]
                    all_ids.append(seen[0]["id"])
                elif op == "read":
                    rec = await ex.read("KitTenantNote", some_id)
                    seen = [rec] if rec else []
                elif op == "update":
                    rec = await ex.update("KitTenantNote", some_id, {"n": k})
                    seen = [rec] if rec else []
                elif op == "delete":
                    await ex.delete("KitTenantNote", some_id)
                elif op == "list":
                    seen = await ex.list("KitTenantNote", flt, order_by="-n")
                elif op == "count":
                    assert await ex.count("KitTenantNote", flt) == len(
                        await ex.list("KitTenantNote", flt))
                elif op == "bulk_update":
                    await ex.bulk_update("KitTenantNote", flt, {"n": k}, confirmed=True)
                elif op == "bulk_delete":
                    await ex.bulk_delete("KitTenantNote", flt, confirmed=True)
                elif op == "bulk_create":
                    await ex.bulk_create("KitTenantNote", [{"title": f"b{k}"}, {"title": f"c{k}"}])
                elif op == "upsert":
                    # by id: updates one of the tenant's own records; any other id (another
                    # tenant's, or a deleted one: an explicit auto-increment id) is refused
                    own = {r["id"] for r in await ex.list("KitTenantNote")}
                    try:
                        seen = [await ex.upsert("KitTenantNote", {"id": some_id, "title": f"u{k}"})]
                    except TenantViolationError:
                        assert some_id not in own
                    else:
                        assert some_id in own
                assert all(r["tenant_id"] == tenant for r in seen)
            assert await _snapshot(db, other) == before, (tenant, op, flt)


@pytest.mark.asyncio
class TestTenancyBulk:
    async def test_bulk_create_fills_and_checks_the_tenant_in_every_batch(
            self, make_db: MakeDB) -> None:
        db = make_db(multi_tenant=True)
        _models(db)
        rows: list[dict[str, Any]] = [{"title": f"t{i}", "n": i} for i in range(120)]
        rows[7] = {"title": "t7", "n": 7, "tenant_id": "acme"}
        async with db.tenant("acme"):
            assert (await db.express.bulk_create("KitTenantNote", rows, batch_size=25)
                    )["inserted"] == 120
            late = [{"title": f"u{i}", "n": i} for i in range(120)]
            late[110] = {"title": "x", "n": 1, "tenant_id": "globex"}
            with raises_df(BulkValidationError, "DF-305", "row 110", "DF-803"):
                await db.express.bulk_create("KitTenantNote", late, batch_size=25)
            assert await db.express.count("KitTenantNote") == 120
        async with db.tenant("globex"):
            assert await db.express.count("KitTenantNote") == 0

    async def test_stream_reads_the_bound_tenant_only(self, make_db: MakeDB) -> None:
        db = make_db(multi_tenant=True)
        _models(db)
        for tenant in TENANTS:
            async with db.tenant(tenant):
                await db.express.bulk_create("KitTenantNote", [{"title": f"{tenant}-{i}", "n": i}
                                                               for i in range(30)])
        async with db.tenant("acme"):
            stream = db.express.stream("KitTenantNote", order_by="n", batch_size=7)
        async with db.tenant("globex"):  # the tenant bound when the stream was made counts
            titles = [r["title"] async for r in stream]
        assert titles == [f"acme-{i}" for i in range(30)]
        with raises_df(TenantRequiredError, "DF-802"):
            db.express.stream("KitTenantNote")
