"""What a DataFlow instance holds, as plain data: ``db.inspect()``.

Models with their fields, indexes and constraints (the names the DDL and DF-902 errors use);
the nodes each model gets, with the parameters they take and the outputs they produce; and
for a built workflow its connections, execution order and where a parameter's value comes
from (:meth:`WorkflowInspection.trace_parameter`). ``WorkflowBuilder.build()`` checks
connections with :func:`node_outputs` / :func:`node_parameters`, so the inspector and the
build never disagree. Nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import NodeNotFoundError, WorkflowError, did_you_mean
from .model import MISSING, ModelSpec, constraint_name

if TYPE_CHECKING:
    from .core import DataFlow
    from .nodes import Node
    from .workflow import Workflow


def node_outputs(node: Node) -> dict[str, frozenset[str] | None] | None:
    """Output key -> the keys inside it (a record's fields), or None when the node does not
    declare its outputs."""
    outputs = getattr(node, "outputs", None)
    return None if outputs is None else dict(outputs())


def node_parameters(node: Node) -> frozenset[str] | None:
    """The parameter names ``node`` takes, or None when it takes any."""
    inputs = getattr(node, "inputs", None)
    return None if inputs is None else inputs()


@dataclass(frozen=True)
class FieldInspection:
    name: str
    type: str
    nullable: bool
    primary_key: bool
    generated: bool
    managed: bool
    unique: bool
    index: bool
    max_length: int | None
    default: str | None
    references: str | None


@dataclass(frozen=True)
class ModelInspection:
    name: str
    table: str
    fields: dict[str, FieldInspection]
    #: index name -> columns (single-field ``index=True`` and ``__dataflow__["indexes"]``)
    indexes: dict[str, tuple[str, ...]]
    #: constraint name -> description: unique keys and foreign keys, as errors name them
    constraints: dict[str, str]
    strict: bool
    soft_delete: bool
    tenant_scoped: bool


@dataclass(frozen=True)
class NodeInspection:
    type_name: str
    model: str | None
    operation: str | None
    parameters: tuple[str, ...] | None
    #: output key -> inner keys (a record's fields) or None
    outputs: dict[str, tuple[str, ...] | None] | None


@dataclass(frozen=True)
class ConnectionInspection:
    source: str
    output: str
    target: str
    input: str


@dataclass
class WorkflowInspection:
    nodes: dict[str, str]
    connections: list[ConnectionInspection]
    order: list[str]
    params: dict[str, dict[str, Any]] = field(repr=False)

    def trace_parameter(self, node: str, parameter: str) -> list[dict[str, Any]]:
        """Where ``node``'s ``parameter`` comes from, nearest first: a connection (then the
        node it comes from), a value given in ``add_node``, or nothing (``"unset"``)."""
        if node not in self.nodes:
            raise WorkflowError(f"no node {node!r} in this workflow.{did_you_mean(node, self.nodes)}")
        steps: list[dict[str, Any]] = []
        feeding = [c for c in self.connections if c.target == node
                   and (c.input == parameter or c.input.startswith(parameter + "."))]
        for c in feeding:
            steps.append({"node": node, "parameter": c.input, "source": "connection",
                          "from_node": c.source, "output": c.output})
            steps.append({"node": c.source, "source": "output of", "type": self.nodes[c.source],
                          "runs_before": True})
        if parameter in self.params.get(node, {}):
            value = self.params[node][parameter]
            steps.append({"node": node, "parameter": parameter, "source": "static",
                          "value": value, "overridden": bool(feeding)})
        if not steps:
            steps.append({"node": node, "parameter": parameter, "source": "unset"})
        return steps

    def as_dict(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "order": self.order,
                "connections": [asdict(c) for c in self.connections]}


def _field(spec: ModelSpec, name: str) -> FieldInspection:
    f = spec.fields[name]
    references = next((f"{fk.target_table or fk.target}.{fk.target_field} (on delete {fk.on_delete})"
                       for fk in spec.foreign_keys if fk.column == name), None)
    default = None
    if f.default is not MISSING:
        default = repr(f.default)
    elif f.default_factory is not None:
        default = f"{getattr(f.default_factory, '__name__', 'factory')}()"
    return FieldInspection(
        name=name, type=getattr(f.python_type, "__name__", str(f.python_type)),
        nullable=f.nullable, primary_key=f.primary_key,
        generated=f.auto_increment or f.generated_uuid, managed=f.managed, unique=f.unique,
        index=f.index, max_length=f.max_length, default=default, references=references)


def inspect_model(spec: ModelSpec, compiler: Any = None) -> ModelInspection:
    groups = [(n,) for n, f in spec.fields.items() if f.index and not f.unique] + list(spec.indexes)
    index_name = getattr(compiler, "index_name", None)
    indexes = {(index_name(spec, g) if index_name else f"ix_{spec.table}_{'_'.join(g)}"): tuple(g)
               for g in groups}
    constraints: dict[str, str] = {}
    for group in spec.unique_together:
        constraints[constraint_name("uq", spec.table, group)] = f"unique ({', '.join(group)})"
    for n, f in spec.fields.items():
        if f.unique and not f.primary_key:
            constraints[f"{spec.table}.{n} unique"] = f"unique ({n})"
    for fk in spec.foreign_keys:
        constraints[fk.name] = (f"foreign key ({fk.column}) references "
                                f"{fk.target_table or fk.target} ({fk.target_field}) "
                                f"on delete {fk.on_delete}")
    return ModelInspection(
        name=spec.name, table=spec.table, fields={n: _field(spec, n) for n in spec.fields},
        indexes=indexes, constraints=constraints, strict=bool(spec.options.get("strict", False)),
        soft_delete=spec.soft_delete, tenant_scoped=spec.tenant_scoped)


def inspect_node(node: Node) -> NodeInspection:
    outputs = node_outputs(node)
    params = node_parameters(node)
    return NodeInspection(
        type_name=node.type_name, model=getattr(node, "model", None),
        operation=getattr(node, "op", None),
        parameters=None if params is None else tuple(sorted(params)),
        outputs=None if outputs is None else {
            k: None if v is None else tuple(sorted(v)) for k, v in sorted(outputs.items())})


class Inspector:
    """``db.inspect()``: the instance's models and nodes; ``.workflow(wf)`` for a workflow."""

    def __init__(self, db: DataFlow) -> None:
        self._db = db

    def models(self) -> dict[str, ModelInspection]:
        compiler = getattr(self._db.adapter, "compiler", None)
        return {name: inspect_model(spec, compiler) for name, spec in self._db.models.items()}

    def model(self, name: str) -> ModelInspection:
        return inspect_model(self._db.get_model(name), getattr(self._db.adapter, "compiler", None))

    def nodes(self, model: str | None = None) -> dict[str, NodeInspection]:
        from .nodes import ModelNode, node_names, resolve_node

        out: dict[str, NodeInspection] = {}
        for type_name in node_names(self._db):
            node = resolve_node(type_name, self._db.name)
            if model is not None and not (isinstance(node, ModelNode) and node.model == model):
                continue
            out[type_name] = inspect_node(node)
        return out

    def node(self, type_name: str) -> NodeInspection:
        from .nodes import node_names, resolve_node

        if type_name not in node_names(self._db):
            raise NodeNotFoundError(
                f"unknown node type {type_name!r:.80}.{did_you_mean(type_name, node_names(self._db))}")
        return inspect_node(resolve_node(type_name, self._db.name))

    def workflow(self, workflow: Workflow) -> WorkflowInspection:
        return inspect_workflow(workflow)

    def as_dict(self) -> dict[str, Any]:
        return {"instance": self._db.name, "adapter": self._db.adapter.capabilities.name,
                "models": {n: asdict(m) for n, m in self.models().items()},
                "nodes": {n: asdict(i) for n, i in self.nodes().items()}}


def inspect_workflow(workflow: Workflow) -> WorkflowInspection:
    connections = [ConnectionInspection(c.source, c.output, c.target, c.input)
                   for n in workflow.order for c in workflow.incoming.get(n, [])]
    return WorkflowInspection(
        nodes={n: node.type_name for n, node in workflow.nodes.items()},
        connections=connections, order=list(workflow.order),
        params={n: dict(p) for n, p in workflow.params.items()})
