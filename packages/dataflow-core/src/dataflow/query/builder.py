"""``User.query_builder()``: a filter, ordering and page built step by step, compiled by the
same compiler (and the same filter parser, tenancy and soft-delete predicates) as
``express.list``, so ``build_select()`` shows exactly the SQL and parameters a run sends.

    q = User.query_builder().where({"age": {"$gte": 18}}).order_by("-age").limit(10)
    sql, params = q.build_select()
    rows = await q.all()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedError, ValidationError

if TYPE_CHECKING:
    from ..core import DataFlow


class QueryBuilder:
    """Immutable steps: each method returns a new builder."""

    def __init__(self, db: DataFlow, model: str, flt: Mapping[str, Any] | None = None,
                 order: tuple[str, ...] = (), limit: int | None = None, offset: int | None = None
                 ) -> None:
        self._db = db
        self.model = model
        self._filter: dict[str, Any] = dict(flt or {})
        self._order = order
        self._limit = limit
        self._offset = offset

    def _with(self, **changes: Any) -> QueryBuilder:
        state = {"flt": self._filter, "order": self._order, "limit": self._limit,
                 "offset": self._offset, **changes}
        return QueryBuilder(self._db, self.model, **state)

    def where(self, flt: Mapping[str, Any]) -> QueryBuilder:
        """AND ``flt`` (the filter language of ``express.list``) into the query."""
        if not isinstance(flt, Mapping):
            raise ValidationError(f"where() takes a filter dict, got {type(flt).__name__}.",
                                  model=self.model, fix='e.g. .where({"age": {"$gte": 18}}).')
        if not self._filter:
            return self._with(flt=dict(flt))
        return self._with(flt={"$and": [self._filter, dict(flt)]})

    def order_by(self, *terms: str | Iterable[str]) -> QueryBuilder:
        flat: list[str] = []
        for term in terms:
            flat.extend([term] if isinstance(term, str) else list(term))
        return self._with(order=self._order + tuple(flat))

    def limit(self, n: int) -> QueryBuilder:
        return self._with(limit=n)

    def offset(self, n: int) -> QueryBuilder:
        return self._with(offset=n)

    def _select(self) -> Any:
        from .ast import Select
        from .filters import parse_order_by

        express = self._db.express
        spec, validator = express._model(self.model)
        from ..express import _check_limit

        return Select(spec, express._where(spec, validator, self._filter),
                      parse_order_by(spec, list(self._order) or None),
                      _check_limit(spec, "limit", self._limit),
                      _check_limit(spec, "offset", self._offset))

    def build_select(self) -> tuple[str, tuple[Any, ...]]:
        """The SQL text and bound parameters ``all()`` sends (values are never inlined)."""
        compiler = getattr(self._db.adapter, "compiler", None)
        if compiler is None:
            raise UnsupportedError(
                f"{self._db.adapter.capabilities.name} is not a SQL adapter: there is no SQL to show.",
                model=self.model, fix="run the query with await .all().")
        compiled = compiler.compile(self._select())
        return compiled.sql, compiled.params

    async def all(self) -> list[dict[str, Any]]:
        return await self._db.express.list(
            self.model, self._filter, order_by=list(self._order) or None, limit=self._limit,
            offset=self._offset)

    async def count(self) -> int:
        return await self._db.express.count(self.model, self._filter)
