"""Attack tests: hostile identifiers, hostile values, and bad input everywhere.

* ``TestInjection`` (hypothesis): generated field names, operator names, order_by terms,
  model and node names full of quotes, comments, semicolons, backticks, ``$`` prefixes,
  control characters, RTL / emoji / combining Unicode, 10k+ character strings and NUL
  are driven through every express and node entry point. Each must be refused with a
  DF error raised while the input is parsed or validated -- the same error
  ``parse_filter`` / ``parse_order_by`` raise with no database at all, so nothing
  reached SQL. Generated *values* (the same alphabet) must round-trip literally through
  create / update / upsert / bulk ops and come back exactly by id, ``$eq``, ``$in``,
  ``$like`` (escaped) and ``$ne`` -- next to near-miss decoys (a trailing space, another
  case, another Unicode normal form, the part before a NUL) that must never match. A
  backend that declares it cannot store NUL refuses with DF-501: never a changed value.
  After every example a sentinel second table and the anchor rows are compared with
  their snapshot.
* ``TestBadInput``: wrong types, unknown fields, None for required fields, oversize
  values, bad ids and non-dict payloads for create / update / upsert / bulk ops and
  workflow nodes: a DF error naming the field, and both tables exactly as before.

Every checked input is counted (``_helpers.count_cases``); the kit plugin prints the
totals per backend in the terminal summary, and ``test_generated_case_budget`` fails if
a backend ran fewer than ``CASE_BUDGET`` generated cases.
"""

from __future__ import annotations

import unicodedata
import uuid
import weakref
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ...errors import (
    BulkValidationError,
    DatabaseError,
    DataFlowError,
    FilterError,
    MissingFieldError,
    NodeNotFoundError,
    UnknownFieldError,
    UnknownModelError,
    UnsupportedError,
    ValidationError,
    WorkflowError,
)
from ...model import field
from ...nodes import resolve_node
from ...query.filters import FIELD_OPERATORS, LOGICAL_OPERATORS, parse_filter, parse_order_by
from ...workflow import AsyncLocalRuntime, WorkflowBuilder
from ._helpers import CASE_BUDGET, MakeDB, backend_label, case_counts, count_cases

pytestmark = pytest.mark.asyncio

ITEM = "KitAttackItem"
SENTINEL = "KitAttackSentinel"
ANCHORS = [
    {"name": "anchor'; DROP TABLE kit_attack_sentinel; --", "code": "anchor-0", "n": 1},
    {"name": "anchor %_\\ \u202eRTL", "code": "anchor-1", "n": 2, "label": "a`b\"c"},
    {"name": "anchor", "code": "anchor-2", "n": 3},
]
SENTINELS = ["s'; DELETE FROM kit_attack_item; --", "\u2603 /* */ `x`", "plain"]
#: the hypothesis tests whose cases make up the per-backend budget
GENERATED_TESTS = frozenset({"identifiers", "values", "writes"})
#: one DataFlow per test invocation, shared by its hypothesis examples (as in tenancy.py)
_DBS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

# --- strategies -------------------------------------------------------------------------
FRAGMENTS = [
    "'", "''", '"', "`", "\\", "\\'", "--", "-- ", "/*", "*/", ";", "; DROP TABLE kit_attack_item; --",
    "' OR '1'='1", "\" OR 1=1 --", "`; SELECT 1; `", "%", "_", "%s", "?", "$1", "$$", "$eq", "$where",
    "$gt", "$or", "$", ")", "(", ",", ".", "=", "\x00", "\n", "\r", "\t", " ", "\x1b[31m", "\u202e",
    "\u200f", "\u2066", "\U0001f600", "\U0001f469\u200d\U0001f4bb", "e\u0301", "\u00e9", "\ufeff",
    "\u0130", "\u00df", "\u0435", "NULL", "null", "\\x00", "\\0", "name", "id", "kit_attack_item.name",
    "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\uff07", "\u02bc",
]
_fragment = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6))
_short = st.lists(_fragment, min_size=0, max_size=7).map("".join)
#: 10k-20k characters: a hostile fragment mix repeated (hypothesis draws the pattern)
_long = st.tuples(st.lists(_fragment, min_size=1, max_size=4).map("".join).filter(bool),
                  st.integers(min_value=10_000, max_value=20_000)).map(
    lambda t: (t[0] * (t[1] // len(t[0]) + 1))[:t[1]])
hostile_text = st.one_of(_short, _short, _short, _long)


def _not_a_field(names: frozenset[str]) -> Callable[[Any], bool]:
    """Not a name the API accepts there (``+name`` / ``-name`` are valid order_by terms)."""
    return lambda s: s not in names and not (s[:1] in ("+", "-") and s[1:] in names)


_FIELD_NAMES = frozenset(["id", "name", "label", "n", "code", "short", "created_at", "updated_at"])
_NODE_PARAMS = frozenset(["db_instance", "model_name", "filter", "order_by", "limit", "offset", "fields",
                          "data", "id", "include_deleted"])
hostile_ident = hostile_text.filter(_not_a_field(_FIELD_NAMES | _NODE_PARAMS | LOGICAL_OPERATORS
                                                  | FIELD_OPERATORS))
odd_keys = st.sampled_from([1, 0, -1, 2.5, None, True, b"name", ("name",), frozenset({"n"})])


def _models(db: Any) -> None:
    # a table name per instance: concurrent runs of the kit on one server never collide
    suffix = uuid.uuid4().hex[:10]

    @db.model
    class KitAttackItem:
        __tablename__ = f"kit_attack_item_{suffix}"
        name: str
        label: str | None = None
        n: int = 0
        code: str = field(unique=True, default_factory=lambda: uuid.uuid4().hex)
        short: str | None = field(default=None, max_length=20)

    @db.model
    class KitAttackSentinel:
        __tablename__ = f"kit_attack_sentinel_{suffix}"
        secret: str
        n: int = 0


async def _setup(db: Any) -> None:
    await db.express.bulk_create(ITEM, ANCHORS)
    await db.express.bulk_create(SENTINEL, [{"secret": s, "n": i} for i, s in enumerate(SENTINELS)])


async def _fresh(make_db: MakeDB) -> Any:
    db = make_db()
    _models(db)
    await _setup(db)
    return db


async def _shared(make_db: MakeDB) -> Any:
    """The invocation's DataFlow, with only the anchor rows left in the item table."""
    db = _DBS.get(make_db)
    if db is None:
        db = _DBS[make_db] = await _fresh(make_db)
    else:
        await db.express.bulk_delete(ITEM, {"code": {"$nin": [a["code"] for a in ANCHORS]}})
    return db


async def _snapshot(db: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every row of both tables, in id order (the comparison is exact, field by field)."""
    return (await db.express.list(ITEM, order_by="id"),
            await db.express.list(SENTINEL, order_by="id"))


async def _anchors_and_sentinel(db: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    anchors = await db.express.list(ITEM, {"code": {"$in": [a["code"] for a in ANCHORS]}},
                                    order_by="id")
    return anchors, await db.express.list(SENTINEL, order_by="id")


def _like_literal(value: str) -> str:
    """A ``$like`` pattern matching exactly ``value`` (backslash is the escape character)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _check_df_error(err: BaseException, codes: set[str], what: str) -> DataFlowError:
    """A DF error with one of ``codes``, from validation (not the database), printable."""
    assert isinstance(err, DataFlowError), f"{what}: {type(err).__name__} leaked: {err!r:.300}"
    assert err.code in codes, f"{what}: expected {sorted(codes)}, got {err.code}: {err!s:.300}"
    text = str(err)
    assert text.startswith(f"[{err.code}]"), text[:300]
    assert "\x1b" not in text, f"{what}: a raw escape character reached the message: {text!r:.300}"
    assert "\x00" not in text and "\u202e" not in text, f"{what}: raw control text in {text!r:.300}"
    assert "Traceback" not in text, text[:300]
    assert len(text) < 2_000, f"{what}: the message echoes the input ({len(text)} chars)"
    if not codes & {"DF-501", "DF-901"}:
        assert not isinstance(err, (DatabaseError, UnsupportedError)), f"{what}: reached the database"
        assert err.__cause__ is None or isinstance(err.__cause__, DataFlowError), (
            f"{what}: caused by {err.__cause__!r:.200}")
    return err


async def _refused(call: Callable[[], Awaitable[Any]], codes: set[str], what: str) -> DataFlowError:
    try:
        result = await call()
    except Exception as exc:
        return _check_df_error(exc, codes, what)
    raise AssertionError(f"{what}: accepted and returned {result!r:.200}")


def _parse_refused(call: Callable[[], Any], codes: set[str], what: str) -> None:
    """The same input is refused by the parser alone, with no database involved."""
    try:
        call()
    except Exception as exc:
        _check_df_error(exc, codes, what)
        return
    raise AssertionError(f"{what}: the parser accepted it")


async def _node(db: Any, op: str, params: dict[str, Any]) -> Any:
    return await resolve_node(f"{ITEM}{op}Node", db.name).run(params)


def _decoys(value: str) -> list[str]:
    """Near misses that an inexact comparison would confuse with ``value``."""
    out = [value + " ", value.upper(), unicodedata.normalize("NFC", value),
           unicodedata.normalize("NFD", value), value.split("\x00")[0], value[:-1],
           value.replace("'", "''")]
    return [d for d in dict.fromkeys(out) if d != value]


# each test class is collected by every adapter's test module ("differing executors");
# each invocation builds its own DataFlow, so examples never cross backends
def _settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, derandomize=True, print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.differing_executors,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # 10k+ character examples
@pytest.mark.filterwarnings("ignore:Possible (nested set|set difference|set union)")  # re on "[[" etc.
class TestInjection:
    @_settings(60)
    @given(names=st.lists(hostile_ident, min_size=10, max_size=25),
           odd=st.lists(odd_keys, min_size=1, max_size=3))
    async def test_hostile_identifiers_are_refused_before_sql(
            self, make_db: MakeDB, dataflow_backend: Any, names: list[str], odd: list[Any]) -> None:
        db = await _shared(make_db)
        ex = db.express
        spec = db.get_model(ITEM)
        before = await _snapshot(db)
        anchor_id = before[0][0]["id"]
        f401, f402, unknown = {"DF-401"}, {"DF-401", "DF-402"}, {"DF-302"}
        checked = 0
        for h in names:
            top = f402 if h.startswith("$") else f401
            op_codes = f402 if h.startswith("$") else f401
            attempts: list[tuple[str, Callable[[], Awaitable[Any]], set[str]]] = [
                ("filter key", partial(ex.list, ITEM, {h: "x"}), top),
                ("filter key in $or", partial(ex.count, ITEM, {"$or": [{"n": 1}, {h: 1}]}), top),
                ("filter key in $not", partial(ex.find_one, ITEM, {"$not": {h: None}}), top),
                ("operator name", partial(ex.list, ITEM, {"name": {h: "x"}}), op_codes),
                ("operator in $not", partial(ex.count, ITEM, {"n": {"$not": {h: 1}}}), op_codes),
                ("order_by", partial(ex.list, ITEM, order_by=h), f401),
                ("order_by desc", partial(ex.list, ITEM, order_by=["name", f"-{h}"]), f401),
                ("create key", partial(ex.create, ITEM, {"name": "x", h: "v"}), unknown),
                ("update key", partial(ex.update, ITEM, anchor_id, {h: "v"}), unknown),
                ("upsert key", partial(ex.upsert, ITEM, {"code": "c", "name": "x", h: 1},
                    conflict_on="code"), unknown),
                ("upsert conflict_on", partial(ex.upsert, ITEM, {"name": "x", h: 1},
                    conflict_on=h), {"DF-301"}),
                ("upsert update_fields", partial(ex.upsert,
                    ITEM, {"code": "c", "name": "x"}, conflict_on="code", update_fields=[h]),
                 {"DF-301"}),
                ("bulk_create key", partial(ex.bulk_create, ITEM, [{"name": "ok"},
                    {"name": "x", h: 1}]),
                 {"DF-305"}),
                ("bulk_update filter", partial(ex.bulk_update, ITEM, {h: 1}, {"n": 0}), top),
                ("bulk_update fields", partial(ex.bulk_update, ITEM, {"n": 1}, {h: 0}), unknown),
                ("bulk_update rows", partial(ex.bulk_update, ITEM, [{"id": anchor_id, h: 0}]),
                 {"DF-305"}),
                ("bulk_delete filter", partial(ex.bulk_delete, ITEM, {h: 1}), top),
                ("bulk_upsert key", partial(ex.bulk_upsert, ITEM, [{"code": "c", "name": "x",
                    h: 1}], conflict_on="code"),
                 {"DF-305"}),
                ("model name", partial(ex.count, h), {"DF-202"}),
                ("node list filter", partial(_node, db, "List", {"filter": {h: 1}}), top),
                ("node list order_by", partial(_node, db, "List", {"order_by": h}), f401),
                ("node create key", partial(_node, db, "Create", {"name": "x", h: 1}), unknown),
                ("node update fields", partial(_node, db, "Update", {"id": anchor_id,
                    "fields": {h: 1}}), unknown),
                ("node update filter", partial(_node, db, "Update", {"filter": {h: 1},
                    "fields": {"n": 0}}), top),
                ("node delete filter", partial(_node, db, "Delete", {"filter": {h: 1}}), top),
                ("node parameter", partial(_node, db, "Count", {h: 1}), {"DF-301"}),
                ("node upsert data", partial(_node, db, "Upsert", {
                    "data": {"code": "c", "name": "x", h: 1}, "conflict_on": "code"}), unknown),
                ("node type", partial(_resolve, f"{h}CreateNode", db.name), {"DF-701"}),
            ]
            for what, call, codes in attempts:
                err = await _refused(call, codes, f"{what} {h!r:.60}")
                if codes in (unknown, {"DF-305"}):
                    assert err.field is not None and err.field == h[:80], (what, err.field)
            _parse_refused(partial(parse_filter, spec, {h: 1}), top, "parse_filter")
            _parse_refused(partial(parse_filter, spec, {"name": {h: 1}}), op_codes, "parse op")
            _parse_refused(partial(parse_order_by, spec, [h]), f401, "parse_order_by")
            checked += len(attempts) + 3
        for key in odd:  # keys that are not even strings
            for what, call, codes in [
                ("odd filter key", partial(ex.list, ITEM, {key: 1}), f401),
                ("odd order_by", partial(ex.list, ITEM, order_by=[key]), f401),
                ("odd create key", partial(ex.create, ITEM, {"name": "x", key: 1}), unknown),
                ("odd update key", partial(ex.update, ITEM, anchor_id, {key: 1}), unknown),
                ("odd node param", partial(_node, db, "Count", {key: 1}), {"DF-301"}),
                ("odd node create key", partial(_node, db, "Create", {"name": "x", key: 1}),
                 unknown),
            ]:
                await _refused(call, codes, f"{what} {key!r}")
                checked += 1
        # the same identifiers inside a workflow: the node's DF error surfaces with its id
        wf = WorkflowBuilder()
        wf.add_node(f"{ITEM}ListNode", "hostile", {"filter": {names[0]: 1}, "order_by": names[-1]})
        try:
            await AsyncLocalRuntime().execute_workflow_async(wf.build())
        except Exception as exc:
            err = _check_df_error(exc, f402, "workflow filter")
            assert err.node_id == "hostile"
        else:
            raise AssertionError("a workflow with a hostile filter key ran")
        checked += 1
        assert await _snapshot(db) == before, "a refused identifier changed a table"
        count_cases(dataflow_backend, "identifiers", checked)

    @_settings(40)
    @given(values=st.lists(hostile_text, min_size=2, max_size=6), with_decoys=st.booleans())
    async def test_hostile_values_round_trip_literally(
            self, make_db: MakeDB, dataflow_backend: Any, values: list[str], with_decoys: bool
    ) -> None:
        db = await _shared(make_db)
        ex = db.express
        nul_ok = dataflow_backend.capabilities.nul_in_text
        guarded = await _anchors_and_sentinel(db)
        batch = list(values)
        if with_decoys:
            for v in values:
                batch += _decoys(v)
        batch = list(dict.fromkeys(batch))
        storable = [v for v in batch if nul_ok or "\x00" not in v]
        refused = [v for v in batch if v not in storable]
        checked = 0
        stored: dict[str, list[Any]] = {}
        bulk_rows = []
        for i, v in enumerate(storable):
            if i % 3 == 0:
                rec = await ex.create(ITEM, {"name": v, "label": v})
            elif i % 3 == 1:
                rec = (await _node(db, "Create", {"name": v, "label": v}))["record"]
            else:
                bulk_rows.append({"name": v, "label": v, "code": f"b{i}-{uuid.uuid4().hex}"})
                continue
            assert rec["name"] == v and rec["label"] == v, f"create changed {v!r:.80}"
            stored.setdefault(v, []).append(rec["id"])
            checked += 1
        if bulk_rows:
            res = await ex.bulk_create(ITEM, bulk_rows)
            assert res["inserted"] == len(bulk_rows) and res["ok"]
            by_code = {r["code"]: r for r in await ex.list(ITEM, {"code": {"$in": [
                b["code"] for b in bulk_rows]}})}
            for row in bulk_rows:
                rec = by_code[row["code"]]
                assert rec["name"] == row["name"], f"bulk_create changed {row['name']!r:.80}"
                stored.setdefault(row["name"], []).append(rec["id"])
                checked += 1
        total = await ex.count(ITEM)
        assert total == len(ANCHORS) + len(storable)
        for v, ids in stored.items():
            want = sorted(ids)
            for rid in ids:
                got = await ex.read(ITEM, rid)
                assert got is not None and got["name"] == v and got["label"] == v
            checks: list[tuple[str, Any]] = [
                ("$eq", {"name": v}), ("$eq op", {"name": {"$eq": v}}),
                ("$in", {"name": {"$in": [v, None]}}), ("$like", {"name": {"$like": _like_literal(v)}}),
                ("label $eq", {"label": v}), ("$and", {"$and": [{"name": v}, {"label": {"$in": [v]}}]}),
            ]
            for what, flt in checks:
                rows = await ex.list(ITEM, flt)
                assert sorted(r["id"] for r in rows) == want, (
                    f"{what} on {v!r:.80} returned {[r['name'] for r in rows]!r:.300}")
                assert all(r["name"] == v for r in rows)
            node_rows = (await _node(db, "List", {"filter": {"name": v}}))["records"]
            assert sorted(r["id"] for r in node_rows) == want
            assert await ex.count(ITEM, {"name": {"$ne": v}}) == total - len(ids)
            assert await ex.count(ITEM, {"name": {"$nin": [v]}}) == total - len(ids)
            checked += len(ids) + len(checks) + 3
        for v in refused:  # NUL where the backend declares it cannot store it exactly
            for what, call in [
                ("create", partial(ex.create, ITEM, {"name": v})),
                ("node create", partial(_node, db, "Create", {"name": v})),
                ("bulk_create", partial(ex.bulk_create, ITEM, [{"name": "fine"}, {"name": v}])),
                ("update", partial(ex.update, ITEM, guarded[0][0]["id"], {"label": v})),
                ("upsert", partial(ex.upsert, ITEM, {"code": "nul", "name": v}, conflict_on="code")),
                ("filter", partial(ex.list, ITEM, {"name": v})),
            ]:
                err = await _refused(call, {"DF-501", "DF-305"}, f"{what} of NUL text {v!r:.60}")
                cause = err.errors[0] if isinstance(err, BulkValidationError) else err
                assert cause.code == "DF-501" and cause.field in ("name", "label"), cause
                checked += 1
        assert await ex.count(ITEM) == total, "a refused value was written"
        assert await _anchors_and_sentinel(db) == guarded, "a value changed another row or table"
        count_cases(dataflow_backend, "values", checked)

    @_settings(30)
    @given(values=st.lists(hostile_text, min_size=2, max_size=6))
    async def test_hostile_values_in_updates_and_upserts(
            self, make_db: MakeDB, dataflow_backend: Any, values: list[str]) -> None:
        db = await _shared(make_db)
        ex = db.express
        nul_ok = dataflow_backend.capabilities.nul_in_text
        guarded = await _anchors_and_sentinel(db)
        values = [v for v in dict.fromkeys(values) if nul_ok or "\x00" not in v]
        checked = 0
        for i, v in enumerate(values):
            code = f"w{i}-{uuid.uuid4().hex}"
            rec = await ex.create(ITEM, {"name": "before", "code": code})
            up = await ex.update(ITEM, rec["id"], {"label": v, "name": v})
            assert up is not None and up["label"] == v and up["name"] == v
            node_up = await _node(db, "Update", {"id": rec["id"], "fields": {"label": v + "!"}})
            assert node_up["record"]["label"] == v + "!"
            first = await ex.upsert(ITEM, {"code": code, "name": v}, conflict_on="code")
            assert first["id"] == rec["id"] and first["name"] == v and first["label"] == v + "!"
            new_code = f"u{i}-{uuid.uuid4().hex}"
            upserted = await _node(db, "Upsert", {"data": {"code": new_code, "name": v, "label": v},
                                                  "conflict_on": "code"})
            assert upserted["inserted"] == 1
            inserted = upserted["record"]
            assert inserted["name"] == v and inserted["label"] == v
            res = await ex.bulk_upsert(ITEM, [{"code": new_code, "name": v, "label": v + v[:3]},
                                              {"code": f"x{new_code}", "name": v}],
                                       conflict_on="code")
            assert (res["inserted"], res["updated"]) == (1, 1)
            again = await ex.read(ITEM, inserted["id"])
            assert again is not None and again["label"] == v + v[:3] and again["name"] == v
            upd = await ex.bulk_update(ITEM, {"name": v, "code": {"$in": [code, new_code]}},
                                       {"short": None, "label": v})
            assert upd["updated"] == 2
            rows = await ex.list(ITEM, {"label": v, "code": {"$in": [code, new_code]}})
            assert sorted(r["id"] for r in rows) == sorted([rec["id"], inserted["id"]])
            checked += 8
        # the same values ordered and filtered together: nothing more, nothing less
        if values:
            rows = await ex.list(ITEM, {"name": {"$in": values}}, order_by=["-name", "id"])
            assert {r["name"] for r in rows} == set(values)
            checked += 1
        assert await _anchors_and_sentinel(db) == guarded
        count_cases(dataflow_backend, "writes", checked)

    @_settings(25)
    @given(patterns=st.lists(hostile_text, min_size=3, max_size=8))
    async def test_raw_hostile_patterns_only_read(
            self, make_db: MakeDB, dataflow_backend: Any, patterns: list[str]) -> None:
        """Unescaped hostile ``$like`` / ``$ilike`` / ``$regex`` patterns and range bounds: a
        result or a DF error, never a driver exception, and nothing changes."""
        db = await _shared(make_db)
        ex = db.express
        before = await _snapshot(db)
        checked = 0
        for p in patterns:
            for flt in ({"name": {"$like": p}}, {"label": {"$ilike": p}}, {"name": {"$regex": p}},
                        {"name": {"$gt": p}}, {"code": {"$lte": p}}):
                try:
                    rows = await ex.list(ITEM, flt)
                except Exception as exc:
                    _check_df_error(exc, {"DF-401", "DF-501", "DF-301", "DF-901"}, f"{flt!r:.80}")
                else:
                    assert {r["id"] for r in rows} <= {r["id"] for r in before[0]}
                checked += 1
        assert await _snapshot(db) == before
        count_cases(dataflow_backend, "raw patterns", checked)

    async def test_generated_case_budget(self, dataflow_backend: Any) -> None:
        """At least ``CASE_BUDGET`` generated cases ran on this backend (when the whole
        class ran: a ``-k`` selection skips this check)."""
        counts = case_counts(dataflow_backend)
        missing = GENERATED_TESTS - set(counts)
        if missing:
            pytest.skip(reason=f"not every generated attack test ran here (missing: {sorted(missing)})")
        total = sum(counts[name] for name in GENERATED_TESTS)
        assert total >= CASE_BUDGET, (
            f"{backend_label(dataflow_backend)}: {total} generated cases < {CASE_BUDGET}: {counts}")


def _resolve(type_name: str, db_name: str) -> Awaitable[Any]:
    async def go() -> Any:
        return resolve_node(type_name, db_name)

    return go()


# --- bad input everywhere ------------------------------------------------------------------
WRONG_TYPES: list[tuple[str, Any]] = [
    ("n", "3"), ("n", 1.5), ("n", True), ("n", [1]), ("n", {"$gt": 1}), ("n", b"1"), ("n", 2 ** 63),
    ("n", -(2 ** 63) - 1), ("n", float("nan")), ("name", 5), ("name", b"bytes"), ("name", ["x"]),
    ("name", {"a": 1}), ("name", object()), ("label", 1.0), ("label", uuid.uuid4()),
    ("short", "x" * 21), ("short", "\U0001f600" * 21), ("short", "e\u0301" * 11),
]


@pytest.mark.asyncio
class TestBadInput:
    async def _unchanged(self, db: Any, before: Any, what: str) -> None:
        assert await _snapshot(db) == before, f"{what}: something was written"

    async def test_wrong_types_and_oversize_values_name_the_field(
            self, make_db: MakeDB, dataflow_backend: Any) -> None:
        db = await _fresh(make_db)
        ex = db.express
        before = await _snapshot(db)
        rid = before[0][0]["id"]
        checked = 0
        for name, bad in WRONG_TYPES:
            calls: list[tuple[str, Callable[[], Awaitable[Any]], str]] = [
                ("create", partial(ex.create, ITEM, {"name": "ok", name: bad}), "DF-301"),
                ("update", partial(ex.update, ITEM, rid, {name: bad}), "DF-301"),
                ("upsert", partial(ex.upsert, ITEM, {"code": "anchor-0", "name": "ok",
                    name: bad}, conflict_on="code"), "DF-301"),
                ("bulk_create", partial(ex.bulk_create,
                    ITEM, [{"name": "ok"}, {"name": "ok", name: bad}]), "DF-305"),
                ("bulk_update rows", partial(ex.bulk_update, ITEM, [{"id": rid, name: bad}]),
                 "DF-305"),
                ("bulk_update filter", partial(ex.bulk_update, ITEM, {"n": 1}, {name: bad}),
                 "DF-301"),
                ("bulk_upsert", partial(ex.bulk_upsert,
                    ITEM, [{"code": "z", "name": "ok", name: bad}], conflict_on="code"), "DF-305"),
                ("node create", partial(_node, db, "Create", {"name": "ok", name: bad}),
                 "DF-301"),
                ("node update", partial(_node, db, "Update", {"id": rid, "fields": {name: bad}}),
                 "DF-301"),
                ("node bulk create", partial(_node, db, "BulkCreate", {
                    "data": [{"name": "ok", name: bad}]}), "DF-305"),
            ]
            for what, call, code in calls:
                err = await _refused(call, {code}, f"{what} {name}={bad!r:.40}")
                assert err.field == name, f"{what} {name}={bad!r:.40}: field {err.field!r}"
                assert name in str(err)
                if isinstance(err, BulkValidationError):
                    assert [f["field"] for f in err.failures] == [name]
                checked += 1
        # an exact max_length value (in characters, not bytes) is stored intact everywhere
        for exact in ("x" * 20, "\U0001f600" * 20, "e\u0301" * 10, "\u202e" * 20):
            rec = await ex.create(ITEM, {"name": "len", "short": exact})
            assert (await ex.read(ITEM, rec["id"]) or {}).get("short") == exact
            await ex.delete(ITEM, rec["id"])
            checked += 1
        await self._unchanged(db, before, "wrong types")
        count_cases(dataflow_backend, "bad input", checked)

    async def test_none_for_required_fields_and_missing_fields(
            self, make_db: MakeDB, dataflow_backend: Any) -> None:
        db = await _fresh(make_db)
        ex = db.express
        before = await _snapshot(db)
        rid = before[0][0]["id"]
        cases: list[tuple[str, Callable[[], Awaitable[Any]], str, str]] = [
            ("create None", lambda: ex.create(ITEM, {"name": None}), "DF-301", "name"),
            ("create missing", lambda: ex.create(ITEM, {"n": 1}), "DF-303", "name"),
            ("update None", lambda: ex.update(ITEM, rid, {"n": None}), "DF-301", "n"),
            ("update None name", lambda: ex.update(ITEM, rid, {"name": None}), "DF-301", "name"),
            ("upsert None", lambda: ex.upsert(ITEM, {"code": "anchor-1", "name": None},
                                              conflict_on="code"), "DF-301", "name"),
            ("upsert None key", lambda: ex.upsert(ITEM, {"code": None, "name": "x"},
                                                  conflict_on="code"), "DF-301", "code"),
            ("upsert missing key", lambda: ex.upsert(ITEM, {"name": "x"}, conflict_on="code"),
             "DF-301", "code"),
            ("bulk_create None", lambda: ex.bulk_create(ITEM, [{"name": "a"}, {"name": None}]),
             "DF-305", "name"),
            ("bulk_create missing", lambda: ex.bulk_create(ITEM, [{"name": "a"}, {}]), "DF-305", "name"),
            ("bulk_update None", lambda: ex.bulk_update(ITEM, [{"id": rid, "name": None}]),
             "DF-305", "name"),
            ("bulk_update no id", lambda: ex.bulk_update(ITEM, [{"name": "x"}]), "DF-305", "id"),
            ("bulk_upsert None", lambda: ex.bulk_upsert(ITEM, [{"code": "q", "name": None}],
                                                        conflict_on="code"), "DF-305", "name"),
            ("node create None", lambda: _node(db, "Create", {"name": None}), "DF-301", "name"),
            ("node create missing", lambda: _node(db, "Create", {}), "DF-303", "name"),
            ("node update None", lambda: _node(db, "Update", {"id": rid, "fields": {"n": None}}),
             "DF-301", "n"),
            ("node read no id", lambda: _node(db, "Read", {}), "DF-301", "id"),
            ("node upsert None", lambda: _node(db, "Upsert", {"data": {"code": "k", "name": None},
                                                             "conflict_on": "code"}), "DF-301", "name"),
            ("node bulk upsert None", lambda: _node(db, "BulkUpsert", {
                "data": [{"code": "k", "name": None}], "conflict_on": "code"}), "DF-305", "name"),
        ]
        for what, call, code, fname in cases:
            err = await _refused(call, {code}, what)
            assert err.field == fname, f"{what}: field {err.field!r}, expected {fname!r}"
            assert fname in str(err), what
            if code == "DF-303":
                assert isinstance(err, MissingFieldError)
        # partial=True writes the valid rows only and names the invalid row's field
        res = await ex.bulk_create(ITEM, [{"name": "good"}, {"name": None}, {"name": "x", "n": "y"}],
                                   partial=True)
        assert res["inserted"] == 1 and [(f["index"], f["field"]) for f in res["failed"]] == [
            (1, "name"), (2, "n")]
        assert [r["name"] for r in await ex.list(ITEM, {"name": {"$in": ["good", "x"]}})] == ["good"]
        await ex.bulk_delete(ITEM, {"name": "good"})
        await self._unchanged(db, before, "None / missing")
        count_cases(dataflow_backend, "bad input", len(cases) + 1)

    async def test_unknown_fields_name_the_field(self, make_db: MakeDB, dataflow_backend: Any) -> None:
        db = await _fresh(make_db)
        ex = db.express
        before = await _snapshot(db)
        rid = before[0][0]["id"]
        cases: list[tuple[str, Callable[[], Awaitable[Any]], str, str]] = [
            ("create", lambda: ex.create(ITEM, {"name": "a", "nmae": "b"}), "DF-302", "nmae"),
            ("update", lambda: ex.update(ITEM, rid, {"lable": "b"}), "DF-302", "lable"),
            ("update managed", lambda: ex.update(ITEM, rid, {"created_at": "2020-01-01"}),
             "DF-304", "created_at"),
            ("update id", lambda: ex.update(ITEM, rid, {"id": 5}), "DF-301", "id"),
            ("upsert", lambda: ex.upsert(ITEM, {"code": "c", "name": "a", "nn": 1}, conflict_on="code"),
             "DF-302", "nn"),
            ("bulk_create", lambda: ex.bulk_create(ITEM, [{"name": "a"}, {"name": "b", "x": 1}]),
             "DF-305", "x"),
            ("bulk_update", lambda: ex.bulk_update(ITEM, {"n": 1}, {"nn": 1}), "DF-302", "nn"),
            ("bulk_upsert", lambda: ex.bulk_upsert(ITEM, [{"code": "c", "name": "a", "q": 1}],
                                                   conflict_on="code"), "DF-305", "q"),
            ("filter", lambda: ex.list(ITEM, {"nmae": "a"}), "DF-401", "nmae"),
            ("order_by", lambda: ex.list(ITEM, order_by="-nmae"), "DF-401", "nmae"),
            ("update_fields", lambda: ex.upsert(ITEM, {"code": "c", "name": "a"}, conflict_on="code",
                                                update_fields=["nope"]), "DF-301", "nope"),
            ("node create", lambda: _node(db, "Create", {"name": "a", "nmae": 1}), "DF-302", "nmae"),
            ("node param", lambda: _node(db, "List", {"filters": {}}), "DF-301", "filters"),
            ("node bulk update", lambda: _node(db, "BulkUpdate", {"data": [{"id": rid, "zz": 1}]}),
             "DF-305", "zz"),
        ]
        for what, call, code, fname in cases:
            err = await _refused(call, {code}, what)
            assert err.field == fname, f"{what}: field {err.field!r}, expected {fname!r}"
            assert fname in str(err), what
        await self._unchanged(db, before, "unknown fields")
        count_cases(dataflow_backend, "bad input", len(cases))

    async def test_bad_ids(self, make_db: MakeDB, dataflow_backend: Any) -> None:
        db = await _fresh(make_db)
        ex = db.express
        before = await _snapshot(db)
        bad_ids: list[Any] = ["1", "1; DROP TABLE kit_attack_item", "1 OR 1=1", 1.0, True, None, [1],
                              {"$gt": 0}, b"1", 2 ** 63, -(2 ** 63) - 1, uuid.uuid4()]
        checked = 0
        for bad in bad_ids:
            for what, call in [
                ("read", partial(ex.read, ITEM, bad)),
                ("update", partial(ex.update, ITEM, bad, {"n": 9})),
                ("delete", partial(ex.delete, ITEM, bad)),
                ("read_many", partial(ex.read_many, ITEM, [before[0][0]["id"], bad])),
                ("filter", partial(ex.list, ITEM, {"id": bad if bad is not None and not isinstance(
                    bad, dict) else [bad]})),
                ("bulk_update", partial(ex.bulk_update, ITEM, [{"id": bad, "n": 9}])),
                ("upsert", partial(ex.upsert, ITEM, {"id": bad, "name": "x"})),
                ("node read", partial(_node, db, "Read", {"id": bad})),
                ("node update", partial(_node, db, "Update", {"id": bad, "fields": {"n": 9}})),
                ("node delete", partial(_node, db, "Delete", {"id": bad})),
            ]:
                err = await _refused(call, {"DF-301", "DF-305", "DF-401"}, f"{what} id={bad!r:.40}")
                if isinstance(err, BulkValidationError):
                    err = err.errors[0]
                assert err.field == "id" or isinstance(err, FilterError), (what, bad, err)
                checked += 1
        # a well-typed id that does not exist is not an error: nothing found, nothing written
        assert await ex.read(ITEM, 10 ** 12) is None
        assert await ex.update(ITEM, 10 ** 12, {"n": 9}) is None
        assert await ex.delete(ITEM, 10 ** 12) is False
        await self._unchanged(db, before, "bad ids")
        count_cases(dataflow_backend, "bad input", checked + 3)

    async def test_non_dict_payloads(self, make_db: MakeDB, dataflow_backend: Any) -> None:
        db = await _fresh(make_db)
        ex = db.express
        before = await _snapshot(db)
        rid = before[0][0]["id"]
        payloads: list[Any] = ["name=x", 5, None, ["name", "x"], [("name", "x")], b"{}", 2.5, {"x"}]
        checked = 0
        for bad in payloads:
            for what, call, codes in [
                ("create", partial(ex.create, ITEM, bad), {"DF-301"}),
                ("update", partial(ex.update, ITEM, rid, bad), {"DF-301"}),
                ("upsert", partial(ex.upsert, ITEM, bad), {"DF-301"}),
                ("bulk_create", partial(ex.bulk_create, ITEM, bad), {"DF-301", "DF-305"}),
                ("bulk_create row", partial(ex.bulk_create, ITEM, [{"name": "a"}, bad]), {"DF-305"}),
                ("bulk_update rows", partial(ex.bulk_update, ITEM, bad), {"DF-301", "DF-305"}),
                ("bulk_update fields", partial(ex.bulk_update, ITEM, {"n": 1}, bad), {"DF-301"}),
                ("bulk_upsert", partial(ex.bulk_upsert, ITEM, bad), {"DF-301", "DF-305"}),
                ("bulk_upsert row", partial(ex.bulk_upsert, ITEM, [bad]), {"DF-301", "DF-305"}),
                ("filter", partial(ex.list, ITEM, bad), {"DF-401"} if bad is not None else set()),
                ("order_by", partial(ex.list, ITEM, order_by=bad), {"DF-401"}),
                ("conflict_on", partial(ex.upsert, ITEM, {"code": "c", "name": "x"},
                    conflict_on=bad), {"DF-301"}),
                ("update_fields", partial(ex.upsert, ITEM, {"code": "c", "name": "x"},
                    conflict_on="code", update_fields=bad),
                 {"DF-301"}),
                ("node update fields", partial(_node, db, "Update", {"id": rid, "fields": bad}),
                 {"DF-301"}),
                ("node list filter", partial(_node, db, "List", {"filter": bad}),
                 {"DF-401"} if bad is not None else set()),
                ("node bulk create", partial(_node, db, "BulkCreate", {"data": bad}),
                 {"DF-301", "DF-305"}),
                ("node upsert data", partial(_node, db, "Upsert", {"data": bad}), {"DF-301"}),
            ]:
                if not codes:  # None is "no filter" / "no ordering": allowed
                    continue
                if what in ("order_by", "update_fields") and bad is None:
                    continue
                if what in ("order_by", "update_fields", "conflict_on") and isinstance(
                        bad, (list, str)) and bad and all(isinstance(x, str) for x in bad):
                    codes = {"DF-301", "DF-401"}  # a list of non-field names
                await _refused(call, codes, f"{what} payload={bad!r:.40}")
                checked += 1
        # a workflow node's params must be a dict, refused when the workflow is built
        with pytest.raises(WorkflowError) as info:
            WorkflowBuilder().add_node(f"{ITEM}CreateNode", "c", "name=x")  # type: ignore[arg-type]
        _check_df_error(info.value, {"DF-703"}, "workflow params")
        await self._unchanged(db, before, "non-dict payloads")
        count_cases(dataflow_backend, "bad input", checked + 1)

    async def test_unknown_models_and_nodes(self, make_db: MakeDB, dataflow_backend: Any) -> None:
        db = await _fresh(make_db)
        before = await _snapshot(db)
        for bad in ("KitAttackItm", "kit_attack_item", "KitAttackItem; DROP TABLE x", "", 5):
            with pytest.raises(UnknownModelError) as info:
                await db.express.list(bad)
            _check_df_error(info.value, {"DF-202"}, f"model {bad!r}")
        for bad_type in ("KitAttackItemDropNode", "KitAttackItem_Drop", "KitAttackItmCreateNode"):
            with pytest.raises(NodeNotFoundError) as ninfo:
                resolve_node(bad_type, db.name)
            _check_df_error(ninfo.value, {"DF-701"}, bad_type)
        with pytest.raises(UnknownFieldError):
            await db.express.create(ITEM, {"name": "x", "': 1": 1})
        with pytest.raises(ValidationError):
            await db.express.list(ITEM, limit="1; DROP TABLE x")  # type: ignore[arg-type]
        await self._unchanged(db, before, "unknown models")
        count_cases(dataflow_backend, "bad input", 10)
