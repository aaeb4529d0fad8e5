"""Relations: foreign keys declared on the model (``on_delete`` cascade / set null /
restrict) and composite unique constraints -- their DDL, and what the database does when
a write or a delete would break them. Nothing half-written, ever: a refused statement
leaves every table as it was."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ...errors import (
    IntegrityError,
    MigrationFailedError,
    MigrationRefusedError,
    ModelDefinitionError,
    UnsupportedError,
)
from ...model import field
from ...query.ast import TRUE, Count
from ._helpers import MakeDB, raises_df, statements_sent

pytestmark = pytest.mark.asyncio

FK_BOOK = "fk_kit_book_author_id"
FK_REVIEW = "fk_kit_review_author_id"


async def _library(make_db: MakeDB, book: str | None = "cascade", chapter: str | None = "cascade",
                   review: str | None = "set null") -> Any:
    """Authors <- books (``book``) <- chapters (``chapter``); authors <- reviews (``review``).
    A model whose action is None is not declared: each test uses only the capabilities it
    names."""
    db = make_db()

    @db.model
    class KitAuthor:
        name: str

    if book is not None:
        @db.model
        class KitBook:
            title: str
            author_id: int = field(foreign_key="KitAuthor.id", on_delete=book)

        if chapter is not None:
            @db.model
            class KitChapter:
                n: int
                book_id: int = field(foreign_key=KitBook, on_delete=chapter)

    if review is not None:
        @db.model
        class KitReview:
            text: str
            author_id: int | None = field(foreign_key="KitAuthor", on_delete=review, default=None)

    await db.initialize()
    return db


async def _seed(db: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two authors, each with two books of two chapters and one review (where declared)."""
    ann = await db.express.create("KitAuthor", {"name": "ann"})
    bob = await db.express.create("KitAuthor", {"name": "bob"})
    for author in (ann, bob):
        if "KitBook" in db.models:
            for t in ("x", "y"):
                book = await db.express.create("KitBook", {"title": f"{author['name']}-{t}",
                                                           "author_id": author["id"]})
                if "KitChapter" in db.models:
                    await db.express.bulk_create("KitChapter", [{"n": i, "book_id": book["id"]}
                                                                for i in (1, 2)])
        if "KitReview" in db.models:
            await db.express.create("KitReview", {"text": f"on {author['name']}",
                                                  "author_id": author["id"]})
    return ann, bob


async def _snapshot(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    out = {"authors": sorted((r["id"], r["name"]) for r in await db.express.list("KitAuthor"))}
    for key, model, column in (("books", "KitBook", "author_id"), ("chapters", "KitChapter", "book_id"),
                               ("reviews", "KitReview", "author_id")):
        if model in db.models:
            out[key] = sorted((r["id"], r[column]) for r in await db.express.list(model))
    return out


@pytest.mark.asyncio
class TestRelations:
    # --- declaration ---------------------------------------------------------------------
    async def test_bad_declarations_are_refused_naming_the_field(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitRelParent:
            name: str
            code: str

        with raises_df(ModelDefinitionError, "DF-201", "KitRelBad.parent_id", "on_delete",
                       "'cascade', 'set null', 'restrict'"):
            @db.model
            class KitRelBad:
                parent_id: int = field(foreign_key="KitRelParent", on_delete="explode")

        with raises_df(ModelDefinitionError, "DF-201", "KitRelBad.parent_id", "set null",
                       "Optional"):
            @db.model
            class KitRelBad:  # type: ignore[no-redef]
                parent_id: int = field(foreign_key="KitRelParent", on_delete="set null")

        with raises_df(ModelDefinitionError, "DF-201", "KitRelBad.parent_id", "no foreign_key"):
            @db.model
            class KitRelBad:  # type: ignore[no-redef]
                parent_id: int = field(on_delete="cascade")

        with raises_df(ModelDefinitionError, "DF-201", "KitRelBad.parent_id", "'Model.field'"):
            @db.model
            class KitRelBad:  # type: ignore[no-redef]
                parent_id: int = field(foreign_key="KitRelParent.id; DROP TABLE x")

        with raises_df(ModelDefinitionError, "DF-201", "KitRelBad.parent_id", "int, str or UUID"):
            @db.model
            class KitRelBad:  # type: ignore[no-redef]
                parent_id: float = field(foreign_key="KitRelParent")

        # the target is known: its key's type and uniqueness are checked at declaration
        with raises_df(ModelDefinitionError, "DF-201", "KitRelBad.parent_id",
                       "does not match KitRelParent.id"):
            @db.model
            class KitRelBad:  # type: ignore[no-redef]
                parent_id: str = field(foreign_key="KitRelParent")

        with raises_df(ModelDefinitionError, "DF-201", "KitRelBad.parent_code",
                       "not its primary key or a unique field"):
            @db.model
            class KitRelBad:  # type: ignore[no-redef]
                parent_code: str = field(foreign_key="KitRelParent.code")

        assert sorted(db.models) == ["KitRelParent"], "refused models are not registered"

    async def test_unknown_target_is_refused_at_first_use(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitRelOrphan:
            owner_id: int = field(foreign_key="KitRelNobody")

        with raises_df(ModelDefinitionError, "DF-201", "KitRelOrphan.owner_id",
                       "unknown model 'KitRelNobody'"):
            await db.initialize()
        assert not await db.adapter.run(db.adapter.introspect, ["kit_rel_orphan"]), \
            "nothing was created"

    # --- DDL and creation order ----------------------------------------------------------
    @pytest.mark.requires("fk_cascade", "fk_set_null")
    async def test_tables_are_created_parents_first(self, make_db: MakeDB) -> None:
        db = make_db()

        # declared child first, parent by name: the planner still creates the parent first
        @db.model
        class KitRelLeaf:
            label: str
            branch_id: int = field(foreign_key="KitRelBranch", on_delete="cascade")

        @db.model
        class KitRelBranch:
            label: str
            root_id: int = field(foreign_key="KitRelRoot", on_delete="cascade")
            # a self-reference: allowed, nullable, cleared when the referenced branch goes
            parent_id: int | None = field(foreign_key="KitRelBranch", on_delete="set null",
                                          default=None)

        @db.model
        class KitRelRoot:
            label: str

        plan = await db.initialize()
        assert [(s.kind, s.model.table) for s in plan.steps] == [
            ("create_table", "kit_rel_root"), ("create_table", "kit_rel_branch"),
            ("create_table", "kit_rel_leaf")]
        root = await db.express.create("KitRelRoot", {"label": "r"})
        top = await db.express.create("KitRelBranch", {"label": "top", "root_id": root["id"]})
        sub = await db.express.create("KitRelBranch", {"label": "sub", "root_id": root["id"],
                                                       "parent_id": top["id"]})
        await db.express.create("KitRelLeaf", {"label": "l", "branch_id": sub["id"]})
        with raises_df(IntegrityError, "DF-902", "fk_kit_rel_leaf_branch_id"):
            await db.express.create("KitRelLeaf", {"label": "x", "branch_id": sub["id"] + 999})
        assert await db.express.delete("KitRelBranch", top["id"])
        back = await db.express.read("KitRelBranch", sub["id"])
        assert back is not None and back["parent_id"] is None, "self-reference set to NULL"
        # cascading two levels down from the root
        assert await db.express.delete("KitRelRoot", root["id"])
        assert await db.express.count("KitRelBranch") == 0
        assert await db.express.count("KitRelLeaf") == 0

    @pytest.mark.requires("fk_cascade", "fk_set_null", "fk_restrict", "update_referenced_parent")
    async def test_a_reference_cycle_is_created(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitRelTeam:
            name: str
            captain_id: int | None = field(foreign_key="KitRelPlayer", on_delete="set null",
                                           default=None)

        @db.model
        class KitRelPlayer:
            name: str
            team_id: int = field(foreign_key=KitRelTeam, on_delete="cascade")

        await db.initialize()
        assert not await db.plan(), "after initialize every key is in place"
        team = await db.express.create("KitRelTeam", {"name": "t"})
        player = await db.express.create("KitRelPlayer", {"name": "p", "team_id": team["id"]})
        await db.express.update("KitRelTeam", team["id"], {"captain_id": player["id"]})
        with raises_df(IntegrityError, "DF-902", "fk_kit_rel_team_captain_id"):
            await db.express.update("KitRelTeam", team["id"], {"captain_id": player["id"] + 99})
        back = await db.express.read("KitRelTeam", team["id"])
        assert back is not None and back["captain_id"] == player["id"]
        assert await db.express.delete("KitRelPlayer", player["id"])
        back = await db.express.read("KitRelTeam", team["id"])
        assert back is not None and back["captain_id"] is None
        await db.express.create("KitRelPlayer", {"name": "q", "team_id": team["id"]})
        assert await db.express.delete("KitRelTeam", team["id"])
        assert await db.express.count("KitRelPlayer") == 0

    @pytest.mark.requires("schema_discovery", "fk_cascade", "fk_set_null")
    async def test_live_schema_shows_the_declared_keys(self, make_db: MakeDB) -> None:
        db = await _library(make_db)
        live = await db.discover_schema(["kit_book", "kit_chapter", "kit_review"])
        keys = {(t, fk["column"], fk["table"], str(fk["on_delete"]).upper())
                for t, info in live.items() for fk in info.foreign_keys}
        assert keys == {("kit_book", "author_id", "kit_author", "CASCADE"),
                        ("kit_chapter", "book_id", "kit_book", "CASCADE"),
                        ("kit_review", "author_id", "kit_author", "SET NULL")}

    # --- deleting a parent ---------------------------------------------------------------
    @pytest.mark.requires("fk_cascade")
    async def test_cascade_removes_children_and_grandchildren(self, make_db: MakeDB) -> None:
        db = await _library(make_db, review=None)
        ann, bob = await _seed(db)
        before = await _snapshot(db)
        assert await db.express.delete("KitAuthor", ann["id"])
        after = await _snapshot(db)
        bob_books = {b for b, a in before["books"] if a == bob["id"]}
        assert after["authors"] == [(bob["id"], "bob")]
        assert {b for b, _ in after["books"]} == bob_books
        assert after["chapters"] == [c for c in before["chapters"] if c[1] in bob_books]
        assert len(after["chapters"]) == 4

    @pytest.mark.requires("fk_set_null")
    async def test_set_null_keeps_children_with_the_field_cleared(self, make_db: MakeDB) -> None:
        db = await _library(make_db, book=None)
        _, bob = await _seed(db)
        await db.express.bulk_delete("KitAuthor", {"name": "ann"}, confirmed=True)
        reviews = {r["text"]: r["author_id"] for r in await db.express.list("KitReview")}
        assert reviews == {"on ann": None, "on bob": bob["id"]}
        assert await db.express.count("KitReview", {"author_id": None}) == 1

    @pytest.mark.requires("fk_restrict")
    async def test_restrict_refuses_and_deletes_nothing(self, make_db: MakeDB) -> None:
        db = await _library(make_db, book="restrict", chapter=None, review=None)
        ann, bob = await _seed(db)
        before = await _snapshot(db)
        with raises_df(IntegrityError, "DF-902", FK_BOOK) as info:
            await db.express.delete("KitAuthor", ann["id"])
        assert info.value.details.get("constraint") == FK_BOOK
        assert await _snapshot(db) == before, "the refused delete wrote nothing (no set null)"
        with raises_df(IntegrityError, "DF-902", FK_BOOK):
            await db.express.bulk_delete("KitAuthor", {}, confirmed=True)
        assert await _snapshot(db) == before
        # inside a transaction the refusal rolls back with it
        with raises_df(IntegrityError, "DF-902", FK_BOOK):
            async with db.transaction():
                await db.express.create("KitAuthor", {"name": "cy"})
                await db.express.delete("KitAuthor", bob["id"])
        assert await _snapshot(db) == before
        # once nothing references the author, the delete goes through
        await db.express.bulk_delete("KitBook", {"author_id": ann["id"]}, confirmed=True)
        assert await db.express.delete("KitAuthor", ann["id"])
        assert await db.express.read("KitAuthor", ann["id"]) is None
        assert await db.express.count("KitBook") == 2, "bob's books stay"

    @pytest.mark.requires("fk_restrict")
    async def test_restrict_is_the_default(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitRelOwner:
            name: str

        @db.model
        class KitRelThing:
            owner_id: int = field(foreign_key=KitRelOwner)

        owner = await db.express.create("KitRelOwner", {"name": "o"})
        await db.express.create("KitRelThing", {"owner_id": owner["id"]})
        with raises_df(IntegrityError, "DF-902", "fk_kit_rel_thing_owner_id"):
            await db.express.delete("KitRelOwner", owner["id"])
        assert await db.express.count("KitRelOwner") == 1

    # --- writing a child without its parent ------------------------------------------------
    @pytest.mark.requires("fk_restrict")
    async def test_missing_parent_is_refused_and_nothing_written(self, make_db: MakeDB) -> None:
        db = await _library(make_db, book="restrict", chapter=None, review="restrict")
        await _seed(db)
        before = await _snapshot(db)
        missing = max(a for a, _ in before["authors"]) + 1000
        with raises_df(IntegrityError, "DF-902", FK_BOOK) as info:
            await db.express.create("KitBook", {"title": "ghost", "author_id": missing})
        assert info.value.details.get("constraint") == FK_BOOK
        book = before["books"][0][0]
        with raises_df(IntegrityError, "DF-902", FK_BOOK):
            await db.express.update("KitBook", book, {"author_id": missing})
        with raises_df(IntegrityError, "DF-902", FK_BOOK):
            await db.express.upsert("KitBook", {"id": book, "title": "t", "author_id": missing})
        assert await _snapshot(db) == before
        # a nullable key may be None: no parent needed
        review = await db.express.create("KitReview", {"text": "anon", "author_id": None})
        assert review["author_id"] is None
        with raises_df(IntegrityError, "DF-902", FK_REVIEW):
            await db.express.update("KitReview", review["id"], {"author_id": missing})
        back = await db.express.read("KitReview", review["id"])
        assert back is not None and back["author_id"] is None

    @pytest.mark.requires("fk_restrict")
    async def test_bulk_create_with_a_missing_parent(self, make_db: MakeDB) -> None:
        db = await _library(make_db, book="restrict", chapter=None, review=None)
        ann, bob = await _seed(db)
        before = await _snapshot(db)
        missing = max(ann["id"], bob["id"]) + 1000
        rows = [{"title": f"b{i}", "author_id": missing if i in (1, 3) else ann["id"]}
                for i in range(5)]
        # all-or-nothing (the default): refused, nothing written
        with raises_df(IntegrityError, "DF-902", FK_BOOK):
            await db.express.bulk_create("KitBook", rows)
        assert await _snapshot(db) == before
        # partial: the valid rows are written, the failing row indexes are reported
        out = await db.express.bulk_create("KitBook", rows, partial=True)
        assert out["inserted"] == 3 and out["ok"] is False
        assert [f["index"] for f in out["failed"]] == [1, 3]
        assert all(f["code"] == "DF-902" and FK_BOOK in f["error"] for f in out["failed"])
        titles = {r["title"] for r in await db.express.list("KitBook", {"author_id": ann["id"]})}
        assert titles == {"ann-x", "ann-y", "b0", "b2", "b4"}
        assert await db.express.count("KitBook", {"author_id": missing}) == 0

    # --- updating a referenced parent ------------------------------------------------------
    @pytest.mark.requires("fk_restrict", "update_referenced_parent")
    async def test_referenced_parent_can_be_updated(self, make_db: MakeDB) -> None:
        """A parent with a unique and an indexed field, referenced by a child: updates,
        bulk updates and upserts of the parent go through; the reference stays."""
        db = await _parents(make_db)
        shop = await db.express.find_one("KitRelShop", {"code": "s1"})
        assert shop is not None
        moved = await db.express.update("KitRelShop", shop["id"], {"name": "renamed",
                                                                   "code": "s1b"})
        assert moved is not None and (moved["name"], moved["code"]) == ("renamed", "s1b")
        assert moved["updated_at"] >= shop["updated_at"]
        out = await db.express.bulk_update("KitRelShop", {"code": "s1b"}, {"city": "Oslo"})
        assert out["updated"] == 1
        up = await db.express.upsert("KitRelShop", {"code": "s1b", "name": "again", "city": "Rome"},
                                     conflict_on="code")
        assert (up["id"], up["name"], up["city"]) == (shop["id"], "again", "Rome")
        items = await db.express.list("KitRelStock", {"shop_id": shop["id"]})
        assert len(items) == 2, "the children still reference the updated parent"
        with raises_df(IntegrityError, "DF-902", "fk_kit_rel_stock_shop_id"):
            await db.express.delete("KitRelShop", shop["id"])

    @pytest.mark.requires("fk_restrict")
    @pytest.mark.unsupported("update_referenced_parent")
    async def test_referenced_parent_update_is_refused_before_sql(self, make_db: MakeDB) -> None:
        db = await _parents(make_db)
        shop = await db.express.find_one("KitRelShop", {"code": "s1"})
        assert shop is not None
        attempts: list[Callable[[], Awaitable[Any]]] = [
            lambda: db.express.update("KitRelShop", shop["id"], {"name": "x"}),
            lambda: db.express.bulk_update("KitRelShop", {"code": "s1"}, {"name": "x"}),
            lambda: db.express.upsert("KitRelShop", {"code": "s1", "name": "x", "city": "y"},
                                      conflict_on="code"),
        ]
        for attempt in attempts:
            with statements_sent(db) as sent:
                with raises_df(UnsupportedError, "DF-501", "KitRelShop", "KitRelStock.shop_id",
                               "update_referenced_parent"):
                    await attempt()
            assert not sent.calls, f"SQL sent before the refusal: {sent.calls}"
        back = await db.express.read("KitRelShop", shop["id"])
        assert back is not None and back["name"] == shop["name"]
        # a model that nothing references is updated as usual
        stock = (await db.express.list("KitRelStock"))[0]
        assert (await db.express.update("KitRelStock", stock["id"], {"qty": 9}) or {})["qty"] == 9

    # --- composite unique ----------------------------------------------------------------
    async def test_composite_unique_constraint(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitRelSeat:
            hall: str
            row: int
            label: str = ""
            __dataflow__ = {"unique": [("hall", "row")]}

        await db.express.create("KitRelSeat", {"hall": "a", "row": 1, "label": "first"})
        await db.express.create("KitRelSeat", {"hall": "a", "row": 2})
        await db.express.create("KitRelSeat", {"hall": "b", "row": 1})
        with raises_df(IntegrityError, "DF-902", "uq_kit_rel_seat_hall_row") as info:
            await db.express.create("KitRelSeat", {"hall": "a", "row": 1, "label": "dup"})
        assert info.value.details.get("constraint") == "uq_kit_rel_seat_hall_row"
        second = await db.express.find_one("KitRelSeat", {"hall": "a", "row": 2})
        assert second is not None
        with raises_df(IntegrityError, "DF-902", "uq_kit_rel_seat_hall_row"):
            await db.express.update("KitRelSeat", second["id"], {"row": 1})
        with raises_df(IntegrityError, "DF-902"):
            await db.express.bulk_create("KitRelSeat", [{"hall": "c", "row": 1},
                                                        {"hall": "c", "row": 1}])
        seats = sorted((r["hall"], r["row"], r["label"])
                       for r in await db.express.list("KitRelSeat"))
        assert seats == [("a", 1, "first"), ("a", 2, ""), ("b", 1, "")]
        # the composite key is an upsert conflict target
        up = await db.express.upsert("KitRelSeat", {"hall": "a", "row": 1, "label": "new"},
                                     conflict_on=["hall", "row"])
        assert up["label"] == "new"
        assert await db.express.count("KitRelSeat") == 3

    # --- migrations -------------------------------------------------------------------------
    @pytest.mark.requires("alter_add_foreign_key", "fk_cascade")
    async def test_foreign_key_added_to_a_live_table(self, make_db: MakeDB) -> None:
        db, owner = await _unlinked(make_db)
        _link(db)
        plan = await db.plan()
        assert [(s.kind, s.destructive) for s in plan.steps] == [("add_foreign_key", False)]
        await db.initialize()
        assert not await db.plan()
        with raises_df(IntegrityError, "DF-902", "fk_kit_rel_pet_owner_id"):
            await db.express.create("KitRelPet", {"name": "ghost", "owner_id": owner + 500})
        assert await db.express.delete("KitRelPerson", owner)
        assert await db.express.count("KitRelPet") == 0, "the added key cascades"

    @pytest.mark.requires("alter_add_foreign_key", "fk_cascade")
    async def test_foreign_key_over_orphans_fails_and_changes_nothing(self, make_db: MakeDB
                                                                       ) -> None:
        db, _ = await _unlinked(make_db, orphan=True)
        _link(db)
        with raises_df(MigrationFailedError, "DF-602", "fk_kit_rel_pet_owner_id"):
            await db.initialize()
        assert [s.kind for s in (await db.plan()).steps] == ["add_foreign_key"], \
            "the key was not added"
        assert await _pet_count(db) == 2, "no row was lost"

    @pytest.mark.unsupported("alter_add_foreign_key")
    @pytest.mark.requires("fk_cascade")
    async def test_foreign_key_on_a_live_table_is_a_destructive_rebuild(self, make_db: MakeDB
                                                                        ) -> None:
        db, owner = await _unlinked(make_db)
        _link(db)
        with raises_df(MigrationRefusedError, "DF-601", "add_foreign_key", "kit_rel_pet.owner_id",
                       "rebuilt", "allow_destructive") as info:
            await db.initialize()
        assert [s.kind for s in info.value.plan.destructive] == ["add_foreign_key"]
        await db.initialize(allow_destructive=True)
        assert not await db.plan()
        pets = sorted(r["name"] for r in await db.express.list("KitRelPet"))
        assert pets == ["rex", "tom"], "the rebuild kept every row"
        with raises_df(IntegrityError, "DF-902", "fk_kit_rel_pet_owner_id"):
            await db.express.create("KitRelPet", {"name": "ghost", "owner_id": owner + 500})
        assert await db.express.delete("KitRelPerson", owner)
        assert await db.express.count("KitRelPet") == 0, "the added key cascades"

    @pytest.mark.unsupported("alter_add_foreign_key")
    @pytest.mark.requires("fk_cascade")
    async def test_rebuild_over_orphans_fails_and_changes_nothing(self, make_db: MakeDB) -> None:
        db, _ = await _unlinked(make_db, orphan=True)
        _link(db)
        with raises_df(MigrationFailedError, "DF-602", "fk_kit_rel_pet_owner_id"):
            await db.initialize(allow_destructive=True)
        assert [s.kind for s in (await db.plan()).steps] == ["add_foreign_key"]
        assert await _pet_count(db) == 2, "the failed rebuild rolled back: no row was lost"


async def _unlinked(make_db: MakeDB, orphan: bool = False) -> tuple[Any, int]:
    """People and pets whose ``owner_id`` is a plain int column (no key yet)."""
    db = make_db()

    @db.model
    class KitRelPerson:
        name: str

    @db.model
    class KitRelPet:
        name: str
        owner_id: int

    person = await db.express.create("KitRelPerson", {"name": "p"})
    await db.express.bulk_create("KitRelPet", [
        {"name": "rex", "owner_id": person["id"]},
        {"name": "tom", "owner_id": person["id"] + (777 if orphan else 0)}])
    return db, person["id"]


async def _pet_count(db: Any) -> int:
    """Rows of kit_rel_pet, read past the instance's stored migration error."""
    spec = db.get_model("KitRelPet")
    return int(await db.adapter.run(db.adapter.count, Count(spec, TRUE)))


def _link(db: Any) -> None:
    @db.model
    class KitRelPet:
        name: str
        owner_id: int = field(foreign_key="KitRelPerson", on_delete="cascade")


async def _parents(make_db: MakeDB) -> Any:
    """Shops (a unique code, an indexed city) referenced by stock rows (restrict)."""
    db = make_db()

    @db.model
    class KitRelShop:
        code: str = field(unique=True)
        name: str
        city: str = field(index=True, default="")

    @db.model
    class KitRelStock:
        qty: int
        shop_id: int = field(foreign_key="KitRelShop")

    s1 = await db.express.create("KitRelShop", {"code": "s1", "name": "first", "city": "Bergen"})
    await db.express.create("KitRelShop", {"code": "s2", "name": "second"})
    await db.express.bulk_create("KitRelStock", [{"qty": 1, "shop_id": s1["id"]},
                                                 {"qty": 2, "shop_id": s1["id"]}])
    return db
