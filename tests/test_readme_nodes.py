"""The README's node tables say what the code does: every node's parameters and outputs are
those the inspector reports (and ``WorkflowBuilder.build()`` checks connections against), both
ways -- a key the code adds or drops fails here until the table says so too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow import DataFlow, field
from dataflow.nodes import OPERATIONS, RESERVED

README = Path(__file__).resolve().parents[1] / "README.md"
NAME = re.compile(r"`([a-z_]+)(?:=[^`]*)?`")


def _table(heading: str, first_column: str) -> dict[str, tuple[set[str], set[str]]]:
    """The first table after ``heading``: node -> (parameter names, output names), the names
    being the backticked identifiers of each cell (``raise_on_not_found=False`` -> its name)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    rows: dict[str, tuple[set[str], set[str]]] = {}
    lines: Iterator[str] = iter(text[start:].splitlines())
    for line in lines:
        if line.startswith(f"| {first_column} |"):
            break
    next(lines)  # | --- | --- |
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3, line
        node = cells[0].strip("`")
        rows[node] = (set(NAME.findall(cells[1])), set(NAME.findall(cells[2])))
    assert rows, f"no table after {heading!r}"
    return rows


@pytest.fixture
def db() -> Iterator[DataFlow]:
    flow = DataFlow("sqlite:///:memory:", name="readme_nodes")

    @flow.model
    class Note:
        title: str = field(max_length=40)
        body: str = ""

    yield flow
    flow.close_sync()


def test_model_node_table_matches_the_inspector(db: DataFlow) -> None:
    table = _table("### Nodes\n", "node")
    assert set(table) == set(OPERATIONS), "one row per generated node"
    fields = set(db.get_model("Note").fields)
    for op, (params, outputs) in table.items():
        info = db.inspect().node(f"Note{op}Node")
        assert info.outputs is not None and info.parameters is not None
        assert outputs == set(info.outputs), (op, outputs ^ set(info.outputs))
        taken = set(info.parameters) - set(RESERVED)
        if op in ("Create", "Upsert"):  # "the record's fields" (and, for Upsert, `data` ...)
            taken -= fields
        assert params == taken, (op, params ^ taken)
        if "record" in info.outputs:  # a record's keys are the model's fields
            assert set(info.outputs["record"] or ()) == fields, op


def test_document_node_table_matches_the_nodes() -> None:
    from dataflow_mongo.nodes import DOCUMENT_NODES

    table = _table("## MongoDB\n", "node")
    assert set(table) == set(DOCUMENT_NODES)
    for name, (params, outputs) in table.items():
        node = DOCUMENT_NODES[name](None)  # type: ignore[arg-type]  # declarations only
        assert outputs == set(node.outputs()), (name, outputs ^ set(node.outputs()))
        assert params == node.inputs() - RESERVED, (name, params ^ (node.inputs() - RESERVED))
