"""The eight schemaless document nodes, contributed through the ``dataflow_node_types`` hook.

Each node runs the same operation as the document API (``db.documents(name)``), so the
checks of :mod:`.security` apply to workflows too. Their outputs follow the model nodes'
shapes and words (README, "Nodes"): a list is ``{"records", "count"}``, and counts say what
happened -- ``inserted``, ``updated``, ``deleted``, ``count``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from dataflow.errors import ValidationError
from dataflow.nodes import RESERVED, _only

if TYPE_CHECKING:
    from dataflow.core import DataFlow

    from .documents import DocumentCollection


class _DocumentNode:
    type_name: ClassVar[str]
    params: ClassVar[frozenset[str]]
    required: ClassVar[tuple[str, ...]] = ("collection",)
    #: the keys of the output dict (what ``db.inspect()`` lists and ``build()`` checks)
    output_keys: ClassVar[tuple[str, ...]]

    def __init__(self, db: DataFlow) -> None:
        self.db = db

    def inputs(self) -> frozenset[str]:
        return self.params | RESERVED

    def outputs(self) -> dict[str, frozenset[str] | None]:
        return dict.fromkeys(self.output_keys)

    def _collection(self, params: dict[str, Any]) -> DocumentCollection:
        _only(params, self.params, self.type_name)
        for name in self.required:
            if name not in params:
                raise ValidationError(f"{self.type_name} needs '{name}'.", field=name,
                                      fix=f"pass: {', '.join(self.required)}.")
        docs: DocumentCollection = self.db.documents(params["collection"])
        return docs

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class DocumentInsertNode(_DocumentNode):
    type_name = "DocumentInsertNode"
    params = frozenset({"collection", "document"})
    required = ("collection", "document")
    output_keys = ("inserted_id", "inserted")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        out = await self._collection(params).insert_one(params["document"])
        return {"inserted_id": out["inserted_id"], "inserted": 1}


class BulkDocumentInsertNode(_DocumentNode):
    type_name = "BulkDocumentInsertNode"
    params = frozenset({"collection", "documents"})
    required = ("collection", "documents")
    output_keys = ("inserted_ids", "inserted")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        out = await self._collection(params).insert_many(params["documents"])
        return {"inserted_ids": out["inserted_ids"], "inserted": out["inserted"]}


class DocumentFindNode(_DocumentNode):
    type_name = "DocumentFindNode"
    params = frozenset({"collection", "filter", "projection", "sort", "limit", "skip"})
    output_keys = ("records", "count")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        found = await self._collection(params).find(
            params.get("filter"), projection=params.get("projection"), sort=params.get("sort"),
            limit=params.get("limit"), skip=params.get("skip"))
        return {"records": found, "count": len(found)}


class DocumentUpdateNode(_DocumentNode):
    type_name = "DocumentUpdateNode"
    params = frozenset({"collection", "filter", "update", "many", "upsert"})
    required = ("collection", "filter", "update")
    output_keys = ("matched", "updated", "inserted", "inserted_id")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        """``updated``: documents changed (MongoDB's modified count, a match already as asked
        is not counted); ``inserted``: 1 when ``upsert=True`` created one (its id in
        ``inserted_id``, else None)."""
        out = await self._collection(params).update(
            params["filter"], params["update"], many=params.get("many", False),
            upsert=params.get("upsert", False))
        new = out["upserted_id"]
        return {"matched": out["matched"], "updated": out["modified"],
                "inserted": 0 if new is None else 1, "inserted_id": new}


class DocumentDeleteNode(_DocumentNode):
    type_name = "DocumentDeleteNode"
    params = frozenset({"collection", "filter", "many"})
    required = ("collection", "filter")
    output_keys = ("deleted",)

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        out = await self._collection(params).delete(params["filter"],
                                                    many=params.get("many", False))
        return {"deleted": out["deleted"]}


class DocumentCountNode(_DocumentNode):
    type_name = "DocumentCountNode"
    params = frozenset({"collection", "filter"})
    output_keys = ("count",)

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"count": await self._collection(params).count(params.get("filter"))}


class AggregateNode(_DocumentNode):
    type_name = "AggregateNode"
    params = frozenset({"collection", "pipeline"})
    required = ("collection", "pipeline")
    output_keys = ("records", "count")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        results = await self._collection(params).aggregate(params["pipeline"])
        return {"records": results, "count": len(results)}


class CreateIndexNode(_DocumentNode):
    type_name = "CreateIndexNode"
    params = frozenset({"collection", "keys", "unique"})
    required = ("collection", "keys")
    output_keys = ("index",)

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        name = await self._collection(params).create_index(params["keys"],
                                                           unique=params.get("unique", False))
        return {"index": name}


DOCUMENT_NODES: dict[str, type[_DocumentNode]] = {
    cls.type_name: cls for cls in (
        DocumentInsertNode, BulkDocumentInsertNode, DocumentFindNode, DocumentUpdateNode,
        DocumentDeleteNode, DocumentCountNode, AggregateNode, CreateIndexNode)
}
