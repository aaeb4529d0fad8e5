"""Workflows: build a graph of nodes, run it with a local runtime.

.. code-block:: python

    wf = WorkflowBuilder()
    wf.add_node("UserCreateNode", "create", {"name": "Alice"})
    wf.add_node("UserReadNode", "read", {})
    wf.add_connection("create", "record.id", "read", "id")
    results, run_id = LocalRuntime().execute(wf.build())
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataFlowError, WorkflowError, did_you_mean
from ..nodes import Node, resolve_node

#: run ids: a random per-process prefix and a counter (unique without a syscall per run)
_RUN_PREFIX = uuid.uuid4().hex[:16]
_run_numbers = itertools.count(1)

__all__ = ["AsyncLocalRuntime", "LocalRuntime", "Workflow", "WorkflowBuilder"]


@dataclass(frozen=True)
class Connection:
    source: str
    output: str
    target: str
    input: str


@dataclass
class Workflow:
    """A built, validated workflow: nodes resolved, in execution order."""

    nodes: dict[str, Node]
    params: dict[str, dict[str, Any]]
    order: list[str]
    incoming: dict[str, list[Connection]] = field(default_factory=dict)


def _get_path(value: Any, path: str, where: str) -> Any:
    if path in ("", "*"):
        return value
    walked: list[str] = []
    for part in path.split("."):
        if value is None and walked:
            # e.g. a Read that found nothing: {"record": None, "found": 0}
            raise WorkflowError(
                f"{where}: output '{'.'.join(walked)}' is None, so it has no '{path}'.",
                fix="pass raise_on_not_found=True to a Read node to stop there with DF-404, "
                "or connect a count (found / updated / deleted) to act on it.")
        walked.append(part)
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            keys = list(value) if isinstance(value, Mapping) else []
            raise WorkflowError(
                f"{where}: output has no '{path}'.{did_you_mean(part, keys)}",
                fix=f"connect one of: {', '.join(map(str, keys)) or '(no keys)'}.")
    return value


def _set_path(params: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    target = params
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {} if nxt is None else dict(nxt)
        else:
            nxt = dict(nxt)
        target[part] = nxt
        target = nxt
    target[parts[-1]] = value


def _at(node_id: str, exc: WorkflowError) -> WorkflowError:
    exc.node_id = node_id
    return exc


def _check_connection(c: Connection, source: Node, target: Node) -> None:
    """Refuse, at build time, a connection from an output the source does not produce or
    into a parameter the target does not take (nodes that declare them)."""
    from ..inspector import node_outputs, node_parameters

    outputs = node_outputs(source)  # what db.inspect() reports for the node, exactly
    if outputs is not None and c.output not in ("", "*"):
        head, _, rest = c.output.partition(".")
        if head not in outputs:
            # a record's field named at the top (the shape before records were nested)
            holders = sorted(k for k, inner in outputs.items() if inner and head in inner)
            hint = (f" Did you mean '{holders[0]}.{c.output}'? (the record's fields are under "
                    f"'{holders[0]}')" if holders else did_you_mean(head, outputs))
            raise _at(c.source, WorkflowError(
                f"connection {c.source}.{c.output} -> {c.target}.{c.input}: node {c.source!r} "
                f"({source.type_name}) has no output {head!r}.{hint}",
                fix=f"connect one of its outputs: {', '.join(sorted(outputs))}."))
        inner = outputs[head]
        sub = rest.partition(".")[0]
        if inner is not None and sub and sub not in inner:
            raise _at(c.source, WorkflowError(
                f"connection {c.source}.{c.output} -> {c.target}.{c.input}: output {head!r} of "
                f"node {c.source!r} has no field {sub!r}.{did_you_mean(sub, inner)}",
                fix=f"use one of: {', '.join(sorted(inner))}."))
    inputs = node_parameters(target)
    if inputs is not None:
        head = c.input.partition(".")[0]
        if head not in inputs:
            raise _at(c.target, WorkflowError(
                f"connection {c.source}.{c.output} -> {c.target}.{c.input}: node {c.target!r} "
                f"({target.type_name}) takes no parameter {head!r}.{did_you_mean(head, inputs)}",
                fix=f"connect into one of: {', '.join(sorted(inputs))}."))


def _check_static_params(node_id: str, node: Node, params: Mapping[str, Any]) -> None:
    """Strict mode (the node's DataFlow was built with ``strict=True``): a parameter the node
    does not take is refused when the workflow is built, not when the node runs."""
    if not getattr(getattr(node, "db", None), "strict", False):
        return
    from ..inspector import node_parameters

    allowed = node_parameters(node)
    unknown = sorted(k for k in params if allowed is not None and k not in allowed)
    if unknown:
        raise _at(node_id, WorkflowError(
            f"node {node_id!r} ({node.type_name}) takes no parameter {unknown[0]!r} (strict mode)."
            f"{did_you_mean(unknown[0], allowed or ())}",
            fix=f"use: {', '.join(sorted(allowed or ()))}."))


class WorkflowBuilder:
    """Collects nodes and connections; :meth:`build` resolves and orders them."""

    def __init__(self) -> None:
        self._nodes: dict[str, tuple[str, dict[str, Any]]] = {}
        self._connections: list[Connection] = []

    def add_node(self, type_name: str, node_id: str, params: Mapping[str, Any] | None = None
                 ) -> WorkflowBuilder:
        if node_id in self._nodes:
            raise WorkflowError(f"node id {node_id!r} is used twice.", fix="give each node its own id.")
        if params is not None and not isinstance(params, Mapping):
            raise WorkflowError(f"params of node {node_id!r} must be a dict.")
        self._nodes[node_id] = (type_name, dict(params or {}))
        return self

    def add_connection(self, source: str, output: str, target: str, input: str) -> WorkflowBuilder:
        """Feed ``source``'s output ``output`` (dotted path) into ``target``'s param ``input``."""
        self._connections.append(Connection(source, output, target, input))
        return self

    def build(self) -> Workflow:
        nodes: dict[str, Node] = {}
        params: dict[str, dict[str, Any]] = {}
        for node_id, (type_name, p) in self._nodes.items():
            try:
                nodes[node_id] = resolve_node(type_name, p.get("db_instance"))
            except DataFlowError as exc:
                exc.node_id = node_id
                exc.add_note(f"while building node {node_id!r}")
                raise
            params[node_id] = p
            _check_static_params(node_id, nodes[node_id], p)
        incoming: dict[str, list[Connection]] = {n: [] for n in nodes}
        for c in self._connections:
            for end in (c.source, c.target):
                if end not in nodes:
                    raise WorkflowError(
                        f"connection names unknown node {end!r}.{did_you_mean(end, nodes)}")
            _check_connection(c, nodes[c.source], nodes[c.target])
            incoming[c.target].append(c)
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str, path: list[str]) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                raise WorkflowError(f"the workflow has a cycle: {' -> '.join(path + [n])}.")
            state[n] = 1
            for c in incoming[n]:
                visit(c.source, path + [n])
            state[n] = 2
            order.append(n)

        for n in nodes:
            visit(n, [])
        return Workflow(nodes, params, order, incoming)


def _single_instance(workflow: Workflow) -> Any:
    """The one DataFlow instance whose nodes the workflow runs (``transaction=True``)."""
    instances = {id(db): db for node in workflow.nodes.values()
                 if (db := getattr(node, "db", None)) is not None}
    if len(instances) != 1:
        names = ", ".join(sorted(repr(db.name) for db in instances.values())) or "none"
        raise WorkflowError(
            f"transaction=True runs a workflow in one transaction of one DataFlow instance; "
            f"its nodes use {len(instances)} ({names}).",
            fix="split the workflow per instance, or run it without transaction=True.")
    return next(iter(instances.values()))


class AsyncLocalRuntime:
    """Runs a workflow's nodes in dependency order on the current event loop."""

    async def execute_workflow_async(self, workflow: Workflow,
                                     inputs: Mapping[str, Mapping[str, Any]] | None = None,
                                     *, transaction: bool = False
                                     ) -> tuple[dict[str, dict[str, Any]], str]:
        """``inputs`` maps node id -> extra params. Returns ``(results, run_id)``.

        ``transaction=True``: the whole workflow runs in one transaction of the DataFlow
        instance its nodes use -- a failing node rolls back every node's writes (inside an
        open ``db.transaction()`` it is a savepoint). Without it each node's write commits
        as the node returns.
        """
        if transaction:
            db = _single_instance(workflow)
            async with db.transaction():
                return await self._run(workflow, inputs)
        return await self._run(workflow, inputs)

    async def _run(self, workflow: Workflow, inputs: Mapping[str, Mapping[str, Any]] | None
                   ) -> tuple[dict[str, dict[str, Any]], str]:
        run_id = f"{_RUN_PREFIX}-{next(_run_numbers)}"
        results: dict[str, dict[str, Any]] = {}
        inputs = inputs or {}
        for node_id in inputs:
            if node_id not in workflow.nodes:
                raise WorkflowError(f"inputs name unknown node {node_id!r}."
                                    f"{did_you_mean(node_id, workflow.nodes)}")
        for node_id in workflow.order:
            params = workflow.params[node_id]
            extra = inputs.get(node_id)
            conns = workflow.incoming[node_id]
            if extra or conns:
                params = dict(params)
                if extra:
                    params.update(extra)
                for c in conns:
                    value = _get_path(results[c.source], c.output, f"node {c.source!r}")
                    _set_path(params, c.input, value)
            try:
                results[node_id] = await workflow.nodes[node_id].run(params)
            except DataFlowError as exc:
                exc.node_id = node_id
                exc.add_note(f"in workflow node {node_id!r} (run {run_id})")
                raise
        return results, run_id

    execute = execute_workflow_async


class LocalRuntime:
    """Blocking runtime: usable from plain code and from inside a running loop."""

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, workflow: Workflow, parameters: Mapping[str, Mapping[str, Any]] | None = None,
                *, transaction: bool = False) -> tuple[dict[str, dict[str, Any]], str]:
        """Run ``workflow``; ``transaction=True`` as for :class:`AsyncLocalRuntime`. Inside a
        sync ``with db.transaction():`` the run joins that transaction."""
        from .. import portal

        return portal.call(AsyncLocalRuntime().execute_workflow_async(
            workflow, parameters, transaction=transaction))
