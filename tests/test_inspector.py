"""db.inspect(): models, nodes, a workflow's connections, order and parameter sources; the
same node outputs WorkflowBuilder.build() checks connections against."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dataflow import DataFlow
from dataflow.errors import WorkflowError
from dataflow.model import field
from dataflow.nodes import OPERATIONS
from dataflow.workflow import WorkflowBuilder


@pytest.fixture
async def db() -> AsyncIterator[DataFlow]:
    db = DataFlow("sqlite://:memory:", name="inspected")

    @db.model
    class Author:
        name: str = field(max_length=80)
        email: str = field(unique=True)
        __dataflow__ = {"indexes": [("name", "email")]}

    @db.model
    class Book:
        title: str = field(index=True)
        author_id: int = field(foreign_key="Author", on_delete="cascade")
        __dataflow__ = {"unique": [("title", "author_id")]}

    yield db
    await db.close()


def test_models_with_fields_indexes_and_constraints(db: DataFlow) -> None:
    models = db.inspect().models()
    assert set(models) == {"Author", "Book"}
    book = models["Book"]
    assert book.table == "book"
    assert book.fields["id"].primary_key and book.fields["id"].generated
    assert book.fields["created_at"].managed
    assert book.fields["author_id"].references == "author.id (on delete cascade)"
    assert book.constraints["fk_book_author_id"].startswith("foreign key (author_id) references author")
    assert book.constraints["uq_book_title_author_id"] == "unique (title, author_id)"
    assert set(book.indexes.values()) == {("title",), ("author_id",)}  # a key column is indexed
    author = models["Author"]
    assert author.fields["name"].max_length == 80
    assert ("name", "email") in author.indexes.values()
    assert author.constraints["author.email unique"] == "unique (email)"


def test_nodes_with_parameters_and_outputs(db: DataFlow) -> None:
    nodes = db.inspect().nodes("Book")
    assert set(nodes) >= {f"Book{op}Node" for op in OPERATIONS}
    update = nodes["BookUpdateNode"]
    assert update.operation == "Update" and update.model == "Book"
    assert update.parameters is not None and {"id", "filter", "fields"} <= set(update.parameters)
    assert update.outputs is not None and set(update.outputs) == {"record", "updated"}
    assert update.outputs["record"] is not None and "title" in update.outputs["record"]
    assert db.inspect().node("BookCountNode").outputs == {"count": None}
    create = nodes["BookCreateNode"].parameters
    assert create is not None and "title" in create


def test_workflow_connections_order_and_parameter_trace(db: DataFlow) -> None:
    wf = WorkflowBuilder()
    wf.add_node("BookReadNode", "read", {"id": 99})
    wf.add_node("AuthorCreateNode", "author", {"name": "ann", "email": "a@x"})
    wf.add_node("BookCreateNode", "book", {"title": "t"})
    wf.add_connection("author", "record.id", "book", "author_id")
    wf.add_connection("book", "record.id", "read", "id")
    info = db.inspect().workflow(wf.build())
    assert info.order.index("author") < info.order.index("book") < info.order.index("read")
    assert [(c.source, c.output, c.target, c.input) for c in info.connections] == [
        ("author", "record.id", "book", "author_id"), ("book", "record.id", "read", "id")]
    trace = info.trace_parameter("read", "id")
    assert trace[0] == {"node": "read", "parameter": "id", "source": "connection",
                        "from_node": "book", "output": "record.id"}
    assert trace[-1]["source"] == "static" and trace[-1]["overridden"] is True
    assert info.trace_parameter("book", "title") == [
        {"node": "book", "parameter": "title", "source": "static", "value": "t", "overridden": False}]
    assert info.trace_parameter("read", "include_deleted")[0]["source"] == "unset"
    with pytest.raises(WorkflowError, match="no node 'nope'"):
        info.trace_parameter("nope", "id")


def test_build_rejects_what_the_inspector_says_is_not_an_output(db: DataFlow) -> None:
    outputs = db.inspect().node("BookCountNode").outputs
    assert outputs is not None and "records" not in outputs
    wf = WorkflowBuilder()
    wf.add_node("BookCountNode", "count", {})
    wf.add_node("BookListNode", "list", {})
    wf.add_connection("count", "records", "list", "limit")
    with pytest.raises(WorkflowError, match="has no output 'records'"):
        wf.build()
