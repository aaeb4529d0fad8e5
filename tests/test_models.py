"""Model declaration rules: types, ids, table names, managed timestamps."""

from __future__ import annotations

import enum
import uuid
from decimal import Decimal

import pytest

from dataflow import DataFlow, field
from dataflow.errors import AdapterNotFoundError, ModelDefinitionError, UnknownModelError
from dataflow.model import LogicalType, build_model_spec, table_name_for


class Kind(enum.Enum):
    A = "a"


def test_table_name_rule() -> None:
    assert table_name_for("User") == "user"
    assert table_name_for("FlowRun") == "flow_run"
    assert table_name_for("HTTPLog") == "http_log"

    class Custom:
        __tablename__ = "people"
        name: str

    assert build_model_spec(Custom).table == "people"


def test_id_rules() -> None:
    class NoId:
        name: str

    class IntId:
        id: int
        name: str

    class StrId:
        id: str

    class UuidId:
        id: uuid.UUID

    assert build_model_spec(NoId).pk.auto_increment
    assert build_model_spec(IntId).pk.auto_increment
    s = build_model_spec(StrId).pk
    assert not s.auto_increment and s.required
    assert build_model_spec(UuidId).pk.generated_uuid


def test_field_types_and_options() -> None:
    class Everything:
        s: str = field(unique=True, max_length=20)
        i: int | None = None
        d: Decimal = Decimal("0")
        k: Kind = Kind.A
        j: dict = {}

    spec = build_model_spec(Everything)
    assert spec.fields["s"].unique and spec.fields["s"].max_length == 20
    assert spec.fields["i"].nullable and spec.fields["i"].ltype is LogicalType.INT
    assert spec.fields["k"].ltype is LogicalType.ENUM
    assert spec.fields["j"].make_default() == {} and spec.fields["j"].make_default() is not \
        spec.fields["j"].make_default()
    assert list(spec.fields)[-2:] == ["created_at", "updated_at"]


@pytest.mark.parametrize("body", [
    "created_at: str",
    "x: set",
    "x: int | str",
    "id: float",
])
def test_bad_models_are_refused(body: str) -> None:
    ns: dict[str, object] = {}
    exec(f"class Bad:\n    {body}\n", ns)
    with pytest.raises(ModelDefinitionError) as err:
        build_model_spec(ns["Bad"])  # type: ignore[arg-type]
    assert err.value.code == "DF-201"


def test_unknown_scheme_lists_adapters_and_names_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataflow import plugins

    # a known adapter package that is not installed (every package of this repository is)
    monkeypatch.setitem(plugins.KNOWN_ADAPTER_PACKAGES, "cockroachdb", "dataflow-cockroach")
    with pytest.raises(AdapterNotFoundError) as err:
        DataFlow("cockroachdb://localhost/db")
    text = str(err.value)
    assert "DF-102" in text and "sqlite" in text and "dataflow-cockroach" in text
    assert "\x1b[" not in text


async def test_default_url_is_shared_memory_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    db = DataFlow()
    assert type(db.adapter).__name__ == "SQLiteAdapter"
    assert db.adapter.memory  # type: ignore[attr-defined]

    @db.model
    class Note:
        text: str

    await db.express.create("Note", {"text": "a"})
    # the sync API runs on another loop and connection, and sees the same in-memory data
    assert db.express_sync.count("Note") == 1
    await db.close()


async def test_database_url_env_and_relative_path(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///rel.db")
    db = DataFlow()

    @db.model
    class Note:
        text: str

    await db.initialize()
    await db.close()
    assert (tmp_path / "rel.db").exists()
    absolute = tmp_path / "sub" / "abs.db"
    absolute.parent.mkdir()
    db2 = DataFlow(f"sqlite:///{absolute}")
    db2.model(Note)
    await db2.initialize()
    await db2.close()
    assert absolute.exists()


async def test_unknown_model_says_did_you_mean(db: DataFlow) -> None:
    @db.model
    class Person:
        name: str

    with pytest.raises(UnknownModelError) as err:
        await db.express.list("Persn")
    assert "Did you mean 'Person'?" in str(err.value)

