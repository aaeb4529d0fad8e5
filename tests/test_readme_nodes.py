"""README's node table names every parameter each node takes and every output key it declares."""

from __future__ import annotations

import re
from pathlib import Path

from dataflow.nodes import _INPUTS, _OUTPUTS, OPERATIONS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _rows() -> dict[str, tuple[set[str], set[str]]]:
    section = README.split("### Nodes", 1)[1].split("\n\n", 3)[2]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            names = [set(re.findall(r'[`"](\w+)', c)) for c in cells[1:]]
            rows[cells[0].strip("`")] = (names[0], names[1])
    return rows


def test_every_node_is_in_the_table_with_its_parameters_and_outputs() -> None:
    rows = _rows()
    assert set(rows) == set(OPERATIONS)
    for op in OPERATIONS:
        params, outputs = rows[op]
        assert set(_INPUTS[op]) <= params, (op, set(_INPUTS[op]) - params)
        declared = {k for k in _OUTPUTS[op] if k != "*"}
        assert declared <= outputs, (op, declared - outputs)
