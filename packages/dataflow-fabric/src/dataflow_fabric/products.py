"""Product declarations, the context a product function receives, and rendered values."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import json
import typing
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dataflow.errors import did_you_mean

from .errors import FabricConfigError
from .params import Param, signature_params

if TYPE_CHECKING:
    from dataflow.core import DataFlow
    from dataflow.express import Express

    from .source import Source

Mode = Literal["materialized", "parameterized", "virtual"]
MODES = ("materialized", "parameterized", "virtual")
ProductFunction = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class ProductSpec:
    name: str
    fn: ProductFunction
    mode: Mode
    depends_on: tuple[str, ...]
    ttl: float
    max_entries: int
    debounce: float
    params: tuple[Param, ...]
    timeout: float | None = None


def build_spec(name: str, fn: ProductFunction, mode: str, depends_on: Any, ttl: float,
               max_entries: int, debounce: float, timeout: float | None = None) -> ProductSpec:
    if not isinstance(name, str) or not name or name.startswith("_") or "/" in name:
        raise FabricConfigError(f"product name must be a non-empty str without '/' that does not "
                                f"start with '_', got {name!r:.60}.", field="name")
    if mode not in MODES:
        raise FabricConfigError(f"product {name!r}: mode must be one of {', '.join(MODES)}, got "
                                f"{mode!r:.40}.{did_you_mean(str(mode), MODES)}", field="mode")
    if not inspect.iscoroutinefunction(fn):
        raise FabricConfigError(f"product {name!r}: the function must be async (async def).",
                                field="fn")
    if isinstance(depends_on, str) or not all(isinstance(d, str) for d in depends_on or ()):
        raise FabricConfigError(f"product {name!r}: depends_on takes a list of model and source "
                                "names.", field="depends_on", fix='e.g. depends_on=["User", "crm"].')
    if not (ttl > 0 and max_entries > 0 and debounce >= 0 and (timeout is None or timeout > 0)):
        raise FabricConfigError(f"product {name!r}: ttl, max_entries and timeout must be positive "
                                "and debounce non-negative.", field="ttl")
    if not inspect.signature(fn).parameters:
        raise FabricConfigError(f"product {name!r}: the function takes the context as its first "
                                "parameter: async def product(ctx): ...", field="fn")
    params = signature_params(fn)
    if params and mode != "parameterized":
        raise FabricConfigError(
            f"product {name!r}: a {mode} product takes only ctx, but the function declares "
            f"{', '.join(p.name for p in params)}.", field="mode", fix="use mode='parameterized'.")
    return ProductSpec(name, fn, typing.cast(Mode, mode), tuple(depends_on or ()), float(ttl),
                       int(max_entries), float(debounce), params,
                       None if timeout is None else float(timeout))


class ProductContext:
    """What a product function receives: the database, its sources, the bound tenant."""

    def __init__(self, db: DataFlow, sources: dict[str, Source], product: str,
                 tenant: str | None) -> None:
        self.db = db
        self.product = product
        self.tenant = tenant
        self._sources = sources

    @property
    def express(self) -> Express:
        return self.db.express

    def source(self, name: str) -> Source:
        found = self._sources.get(name)
        if found is None:
            raise FabricConfigError(f"product {self.product!r} reads source {name!r:.60}, which is not "
                          f"registered.{did_you_mean(name, self._sources)}", field="source",
                          fix="register it with db.source(name, config).")
        return found


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"a product value of type {type(value).__name__} cannot be served as JSON")


def render(value: Any) -> bytes:
    """The JSON body a product value is served as (rendered once per computation)."""
    return json.dumps(value, default=_json_default, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")
