"""MongoDB for DataFlow: the query AST compiled to query documents, on PyMongo's async API."""

from .capabilities import MongoCapabilities

__all__ = ["MongoCapabilities"]
