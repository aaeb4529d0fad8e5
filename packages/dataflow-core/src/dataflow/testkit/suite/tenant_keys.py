"""Tenancy meets keys: foreign keys resolve within the bound tenant, and the auto-increment
sequence every tenant shares cannot be moved by one of them.

A reference to another tenant's row is refused exactly like a reference to no row at all (the
error text is the same), so neither a write nor its error tells one tenant what another holds;
deletes (cascade, restrict) then only ever meet the tenant's own rows.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ...errors import BulkValidationError, IntegrityError, TenantViolationError, ValidationError
from ...model import field
from ...nodes import resolve_node
from ._helpers import MakeDB, raises_df

pytestmark = pytest.mark.asyncio


def _blog(db: Any) -> None:
    @db.model
    class KitTnAuthor:
        name: str

    @db.model
    class KitTnPost:
        title: str
        author_id: int = field(foreign_key="KitTnAuthor", on_delete="cascade")

    @db.model
    class KitTnPin:  # restrict (the default)
        note: str
        author_id: int = field(foreign_key="KitTnAuthor")

    @db.model
    class KitTnLike:  # set null
        n: int = 0
        code: str = field(unique=True, default_factory=lambda: uuid.uuid4().hex)
        author_id: int | None = field(foreign_key="KitTnAuthor", on_delete="set null", default=None)

    @db.model
    class KitTnCountry:  # shared by every tenant
        __dataflow__ = {"tenant_scoped": False}
        name: str

    @db.model
    class KitTnOffice:
        city: str
        country_id: int = field(foreign_key="KitTnCountry")


async def _rows(db: Any, tenant: str) -> dict[str, list[tuple[Any, ...]]]:
    async with db.tenant(tenant):
        ex = db.express
        return {
            "authors": [(r["id"], r["name"]) for r in await ex.list("KitTnAuthor", order_by="id")],
            "posts": [(r["id"], r["author_id"]) for r in await ex.list("KitTnPost", order_by="id")],
            "pins": [(r["id"], r["author_id"]) for r in await ex.list("KitTnPin", order_by="id")],
            "likes": [(r["id"], r["author_id"]) for r in await ex.list("KitTnLike", order_by="id")],
        }


@pytest.mark.asyncio
class TestTenantKeys:
    @pytest.mark.requires("fk_cascade", "fk_set_null", "fk_restrict")
    async def test_a_reference_resolves_within_the_bound_tenant(self, make_db: MakeDB) -> None:
        db = make_db(multi_tenant=True)
        _blog(db)
        async with db.tenant("a"):
            ann = await db.express.create("KitTnAuthor", {"name": "ann"})
            await db.express.create("KitTnPost", {"title": "a1", "author_id": ann["id"]})
            await db.express.create("KitTnPin", {"note": "p", "author_id": ann["id"]})
            await db.express.create("KitTnLike", {"author_id": ann["id"]})
        unused = ann["id"] + 1_000_000
        async with db.tenant("b"):
            bob = await db.express.create("KitTnAuthor", {"name": "bob"})
            mine = await db.express.create("KitTnPost", {"title": "b1", "author_id": bob["id"]})
            like = await db.express.create("KitTnLike", {"author_id": bob["id"]})
            before = await _rows(db, "b")
            messages: dict[str, list[str]] = {}
            # every write path, with a's author and with a key no tenant uses: same refusal
            for target in (ann["id"], unused):
                seen = messages.setdefault("create", [])
                for model, data in (("KitTnPost", {"title": "x", "author_id": target}),
                                    ("KitTnPin", {"note": "x", "author_id": target}),
                                    ("KitTnLike", {"author_id": target})):
                    with raises_df(IntegrityError, "DF-902", "author_id") as err:
                        await db.express.create(model, data)
                    assert err.value.field == "author_id"
                    seen.append(str(err.value))
                with raises_df(IntegrityError, "DF-902", "author_id") as err:
                    await db.express.update("KitTnPost", mine["id"], {"author_id": target})
                messages.setdefault("update", []).append(str(err.value))
                with raises_df(IntegrityError, "DF-902", "author_id") as err:
                    await db.express.bulk_create("KitTnPost", [
                        {"title": "ok", "author_id": bob["id"]}, {"title": "x", "author_id": target}])
                messages.setdefault("bulk_create", []).append(str(err.value))
                with raises_df(IntegrityError, "DF-902", "author_id") as err:
                    await db.express.bulk_update("KitTnPost", {"title": "b1"}, {"author_id": target})
                messages.setdefault("bulk_update", []).append(str(err.value))
                with raises_df(IntegrityError, "DF-902", "author_id") as err:
                    await db.express.bulk_update("KitTnPost", [{"id": mine["id"], "author_id": target}])
                messages.setdefault("bulk_update_rows", []).append(str(err.value))
                with raises_df(IntegrityError, "DF-902", "author_id") as err:
                    await db.express.upsert("KitTnLike", {"code": like["code"], "author_id": target},
                                            conflict_on="code")
                messages.setdefault("upsert", []).append(str(err.value))
                with raises_df(IntegrityError, "DF-902", "author_id") as err:
                    await db.express.bulk_upsert("KitTnLike", [{"code": "new", "author_id": target}],
                                                 conflict_on="code")
                messages.setdefault("bulk_upsert", []).append(str(err.value))
                with raises_df(IntegrityError, "DF-902", "author_id") as err:
                    await resolve_node("KitTnPostCreateNode", db.name).run(
                        {"title": "x", "author_id": target})
                messages.setdefault("node", []).append(str(err.value))
            for path, texts in messages.items():
                half = len(texts) // 2
                # a's row and no row at all: the same text, so nothing is revealed
                assert texts[:half] == texts[half:], (path, texts)
                assert all(str(ann["id"]) not in t and "ann" not in t for t in texts), texts
            assert await _rows(db, "b") == before
            # a shared parent is shared: every tenant may reference it
            country = await db.express.create("KitTnCountry", {"name": "nl"})
            await db.express.create("KitTnOffice", {"city": "ams", "country_id": country["id"]})
        async with db.tenant("a"):
            await db.express.create("KitTnOffice", {"city": "rtm", "country_id": country["id"]})
            assert await db.express.count("KitTnOffice") == 1

    @pytest.mark.requires("fk_cascade", "fk_set_null", "fk_restrict")
    async def test_deletes_never_reach_or_wait_for_another_tenant(self, make_db: MakeDB) -> None:
        db = make_db(multi_tenant=True)
        _blog(db)
        async with db.tenant("a"):
            ann = await db.express.create("KitTnAuthor", {"name": "ann"})
            await db.express.create("KitTnPost", {"title": "a1", "author_id": ann["id"]})
        async with db.tenant("b"):
            bob = await db.express.create("KitTnAuthor", {"name": "bob"})
            await db.express.create("KitTnPost", {"title": "b1", "author_id": bob["id"]})
            # b tries to hang rows on a's author: a cascade would delete them, a restrict
            # would block a's delete; none of them is written
            for model, data in (("KitTnPost", {"title": "b2", "author_id": ann["id"]}),
                                ("KitTnPin", {"note": "block", "author_id": ann["id"]}),
                                ("KitTnLike", {"author_id": ann["id"]})):
                with raises_df(IntegrityError, "DF-902"):
                    await db.express.create(model, data)
            with raises_df(IntegrityError, "DF-902"):
                await db.express.bulk_create("KitTnPin", [{"note": "block", "author_id": ann["id"]}])
            b_before = await _rows(db, "b")
        async with db.tenant("a"):
            assert await db.express.delete("KitTnAuthor", ann["id"]) is True  # not blocked
            assert await db.express.count("KitTnPost") == 0  # a's cascade, a's rows
        assert await _rows(db, "b") == b_before
        async with db.tenant("b"):
            # b's own restrict still blocks b's own delete
            await db.express.create("KitTnPin", {"note": "mine", "author_id": bob["id"]})
            with raises_df(IntegrityError, "DF-902"):
                await db.express.delete("KitTnAuthor", bob["id"])

    @pytest.mark.requires("fk_cascade", "fk_set_null", "fk_restrict", "update_referenced_parent")
    async def test_explicit_auto_increment_ids_are_refused_per_tenant(self, make_db: MakeDB
                                                                      ) -> None:
        db = make_db(multi_tenant=True)
        _blog(db)
        top = 2**63 - 1
        async with db.tenant("a"):
            with raises_df(ValidationError, "DF-301", "explicit id", "shared") as err:
                await db.express.create("KitTnAuthor", {"id": top, "name": "greedy"})
            assert err.value.field == "id" and "leave out 'id'" in (err.value.fix or "")
            with raises_df(BulkValidationError, "DF-305", "explicit id") as bulk:
                await db.express.bulk_create("KitTnAuthor", [{"name": "ok"}, {"id": top, "name": "x"}])
            assert bulk.value.failures[0]["index"] == 1 and bulk.value.failures[0]["field"] == "id"
            with raises_df(ValidationError, "DF-301", "explicit id"):
                await resolve_node("KitTnAuthorCreateNode", db.name).run({"id": top, "name": "x"})
            with raises_df(BulkValidationError, "DF-305", "explicit id"):
                await db.express.bulk_upsert("KitTnLike", [{"id": top, "code": "c"}],
                                             conflict_on="code")
            # an upsert by id updates the tenant's own rows and never inserts a chosen id
            with raises_df(TenantViolationError, "DF-803", "not records of the bound tenant"):
                await db.express.upsert("KitTnAuthor", {"id": top, "name": "x"})
            with raises_df(TenantViolationError, "DF-803"):
                await db.express.bulk_upsert("KitTnAuthor", [{"id": top, "name": "x"}])
            assert await db.express.count("KitTnAuthor") == 0
            own = await db.express.create("KitTnAuthor", {"name": "own"})
            assert (await db.express.upsert("KitTnAuthor", {"id": own["id"], "name": "new"})
                    )["name"] == "new"
        for tenant in ("a", "b"):  # the shared sequence still hands out ids to everyone
            async with db.tenant(tenant):
                rec = await db.express.create("KitTnAuthor", {"name": tenant})
                assert 0 < rec["id"] < 2**62

    async def test_explicit_ids_keep_working_without_tenants(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitTnSolo:
            name: str

        rec = await db.express.create("KitTnSolo", {"id": 4242, "name": "chosen"})
        assert rec["id"] == 4242
        assert (await db.express.bulk_create("KitTnSolo", [{"id": 4243, "name": "b"}]))["inserted"] == 1
        assert (await db.express.upsert("KitTnSolo", {"id": 4300, "name": "u"}))["id"] == 4300
        assert (await db.express.read("KitTnSolo", 4243))["name"] == "b"
