"""The eight schemaless document nodes, contributed through the ``dataflow_node_types`` hook.

Each node runs the same operation as the document API (``db.documents(name)``), so the
checks of :mod:`.security` apply to workflows too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from dataflow.errors import ValidationError
from dataflow.nodes import _only

if TYPE_CHECKING:
    from dataflow.core import DataFlow

    from .documents import DocumentCollection


class _DocumentNode:
    type_name: ClassVar[str]
    params: ClassVar[frozenset[str]]
    required: ClassVar[tuple[str, ...]] = ("collection",)

    def __init__(self, db: DataFlow) -> None:
        self.db = db

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

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._collection(params).insert_one(params["document"])


class BulkDocumentInsertNode(_DocumentNode):
    type_name = "BulkDocumentInsertNode"
    params = frozenset({"collection", "documents"})
    required = ("collection", "documents")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._collection(params).insert_many(params["documents"])


class DocumentFindNode(_DocumentNode):
    type_name = "DocumentFindNode"
    params = frozenset({"collection", "filter", "projection", "sort", "limit", "skip"})

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        found = await self._collection(params).find(
            params.get("filter"), projection=params.get("projection"), sort=params.get("sort"),
            limit=params.get("limit"), skip=params.get("skip"))
        return {"documents": found, "count": len(found)}


class DocumentUpdateNode(_DocumentNode):
    type_name = "DocumentUpdateNode"
    params = frozenset({"collection", "filter", "update", "many", "upsert"})
    required = ("collection", "filter", "update")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._collection(params).update(
            params["filter"], params["update"], many=params.get("many", False),
            upsert=params.get("upsert", False))


class DocumentDeleteNode(_DocumentNode):
    type_name = "DocumentDeleteNode"
    params = frozenset({"collection", "filter", "many"})
    required = ("collection", "filter")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._collection(params).delete(params["filter"],
                                                     many=params.get("many", False))


class DocumentCountNode(_DocumentNode):
    type_name = "DocumentCountNode"
    params = frozenset({"collection", "filter"})

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"count": await self._collection(params).count(params.get("filter"))}


class AggregateNode(_DocumentNode):
    type_name = "AggregateNode"
    params = frozenset({"collection", "pipeline"})
    required = ("collection", "pipeline")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        results = await self._collection(params).aggregate(params["pipeline"])
        return {"results": results, "count": len(results)}


class CreateIndexNode(_DocumentNode):
    type_name = "CreateIndexNode"
    params = frozenset({"collection", "keys", "unique"})
    required = ("collection", "keys")

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        name = await self._collection(params).create_index(params["keys"],
                                                           unique=params.get("unique", False))
        return {"index": name}


DOCUMENT_NODES: dict[str, type[_DocumentNode]] = {
    cls.type_name: cls for cls in (
        DocumentInsertNode, BulkDocumentInsertNode, DocumentFindNode, DocumentUpdateNode,
        DocumentDeleteNode, DocumentCountNode, AggregateNode, CreateIndexNode)
}
