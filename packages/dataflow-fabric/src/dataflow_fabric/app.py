"""The fabric's HTTP surface: a Starlette app, mountable in any ASGI application.

    GET  /fabric/_health              sources (state, circuit), products (age); 503 when unhealthy
    GET  /fabric/_metrics             Prometheus text
    GET  /fabric/_batch?products=a,b  several products in one response
    GET  /fabric/{product}            the value (JSON), X-Fabric-Freshness / X-Fabric-Computed-At
    GET  /fabric/{product}/events     Server-Sent Events: the new value on each refresh
    GET  /fabric/{product}/_trace     the last refreshes
    POST /fabric/{Model}              write pass-through (enable_writes=True)
    POST /fabric/_webhooks/{source}   signed change notification (see webhooks.py)
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from dataflow.core import DataFlow
from dataflow.errors import (
    DataFlowError,
    FilterError,
    IntegrityError,
    RecordDeletedError,
    TenantRequiredError,
    TenantViolationError,
    UnknownModelError,
    ValidationError,
)

from . import webhooks
from .errors import FabricError, ParameterError, TenantMissingError, WebhookNotEnabledError
from .runtime import Fabric, ProductState, fabric_of

log = logging.getLogger("dataflow.fabric")
TenantExtractor = Callable[[Request], "str | Awaitable[str | None] | None"]
JSON = "application/json"
KEEPALIVE_SECONDS = 15.0
CLIENT_ERRORS = (ValidationError, FilterError, RecordDeletedError, TenantViolationError,
                 TenantRequiredError)


def status_of(exc: DataFlowError) -> int:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    if isinstance(exc, IntegrityError):
        return 409
    if isinstance(exc, UnknownModelError):
        return 404
    if isinstance(exc, CLIENT_ERRORS):
        return 400
    return 500


def error_response(exc: DataFlowError) -> Response:
    status = status_of(exc)
    if status >= 500 and not isinstance(exc, FabricError):  # a database's words stay in the log
        log.error("fabric request failed: %s", exc)
        return Response(json.dumps({"error": {"code": exc.code, "message": "the request failed; "
                                              "the error is logged on the server."}}),
                        status_code=status, media_type=JSON)
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.field:
        body["field"] = exc.field
    if exc.fix:
        body["fix"] = exc.fix
    return Response(json.dumps({"error": body}), status_code=status, media_type=JSON)


class Prebuilt(Response):
    """A response whose body and header list were built once, when the value was computed."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.body = body
        self.background = None
        self.raw_headers = raw_headers


class FabricApp:
    """Builds the routes over one :class:`Fabric`; ``.app`` is the Starlette application."""

    def __init__(self, fabric: Fabric, *, enable_writes: bool = False,
                 tenant_extractor: TenantExtractor | None = None, prefix: str = "/fabric") -> None:
        self.fabric = fabric
        self.enable_writes = enable_writes
        self.tenant_extractor = tenant_extractor
        if tenant_extractor is not None:
            fabric.tenant_aware = True
        p = prefix.rstrip("/")
        #: /fabric/_health etc. share the product route (one route to match on the hot path)
        self._builtin: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "_health": self.health, "_metrics": self.metrics, "_batch": self.batch}
        routes = [
            Route(f"{p}/{{name}}", self.product, methods=["GET"]),
            Route(f"{p}/_webhooks/{{source}}", self.webhook, methods=["POST"]),
            Route(f"{p}/{{product}}/events", self.events, methods=["GET"]),
            Route(f"{p}/{{product}}/_trace", self.trace, methods=["GET"]),
        ]
        if enable_writes:
            routes.append(Route(f"{p}/{{name}}", self.write, methods=["POST"]))
        self.app = Starlette(routes=routes)

    async def _tenant(self, request: Request) -> str | None:
        if self.tenant_extractor is None:
            return None
        found = self.tenant_extractor(request)
        if inspect.isawaitable(found):
            found = await found
        if not found:
            raise TenantMissingError("this request names no tenant.", fix="send the tenant the "
                                     "server's tenant_extractor reads (a header, a token claim).")
        return str(found)

    async def product(self, request: Request) -> Response:
        name = request.path_params["name"]
        builtin = self._builtin.get(name)
        if builtin is not None:
            return await builtin(request)
        fabric = self.fabric
        started = time.perf_counter()
        try:
            if not fabric.started:
                await fabric.ensure_started()
            tenant = await self._tenant(request) if self.tenant_extractor is not None else None
            query = request.query_params.multi_items() if request.scope["query_string"] else ()
            served = await fabric.get(name, tenant, query)
        except DataFlowError as exc:
            response = error_response(exc)
            if name in fabric.products:
                fabric.metrics.requests.labels(name, str(response.status_code)).inc()
                fabric.metrics.product(name).latency.observe(time.perf_counter() - started)
            return response
        metrics = fabric.metrics.product(name)
        metrics.ok.inc()
        metrics.latency.observe(time.perf_counter() - started)
        return Prebuilt(served.entry.body, served.entry.raw_headers(served.freshness))

    async def batch(self, request: Request) -> Response:
        fabric = self.fabric
        raw = request.query_params.get("products", "")
        names = [n for n in (part.strip() for part in raw.split(",")) if n]
        try:
            if not names:
                raise ParameterError("give the products to fetch: ?products=a,b", field="products")
            for name in names:
                fabric.state(name)  # unknown -> 404 before anything is computed
            await fabric.ensure_started()
            tenant = await self._tenant(request)
        except DataFlowError as exc:
            return error_response(exc)
        parts = []
        for name in dict.fromkeys(names):
            try:
                served = await fabric.get(name, tenant)
            except DataFlowError as exc:
                error = json.dumps({"code": exc.code, "message": exc.message}).encode()
                parts.append(json.dumps(name).encode() + b':{"error":' + error + b"}")
                continue
            meta = json.dumps({"freshness": served.freshness,
                               "computed_at": served.entry.computed_at_iso}).encode()
            parts.append(json.dumps(name).encode() + b':{"data":' + served.entry.body
                         + b',"meta":' + meta + b"}")
        return Response(b"{" + b",".join(parts) + b"}", media_type=JSON)

    async def events(self, request: Request) -> Response:
        fabric = self.fabric
        try:
            state = fabric.state(request.path_params["product"])
            if state.spec.mode != "materialized":
                raise ParameterError(f"product {state.spec.name!r} is {state.spec.mode}; events are "
                                     "sent for materialized products.", field="product")
            await fabric.ensure_started()
            tenant = await self._tenant(request)
        except DataFlowError as exc:
            return error_response(exc)
        queue = fabric.subscribe(state, tenant)
        return StreamingResponse(self._stream(state, tenant, queue), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _stream(self, state: ProductState, tenant: str | None, queue: Any) -> AsyncIterator[bytes]:
        import asyncio

        try:
            yield b": subscribed\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if message is None:  # the fabric stopped
                    return
                yield message
        finally:
            self.fabric.unsubscribe(state, tenant, queue)

    async def trace(self, request: Request) -> Response:
        try:
            state = self.fabric.state(request.path_params["product"])
            tenant = await self._tenant(request)
        except DataFlowError as exc:
            return error_response(exc)
        records = list(state.trace)[::-1]
        if self.tenant_extractor is not None:  # a tenant sees its own refreshes only
            records = [r for r in records if r.get("tenant") == tenant]
        return Response(json.dumps({"product": state.spec.name, "refreshes": records}),
                        media_type=JSON)

    async def health(self, request: Request) -> Response:
        healthy, report = self.fabric.health()
        return Response(json.dumps(report), status_code=200 if healthy else 503, media_type=JSON)

    async def metrics(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.fabric.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    async def webhook(self, request: Request) -> Response:
        fabric = self.fabric
        name = request.path_params["source"]
        source = fabric.sources.get(name)
        env = source.config.webhook_secret_env if source is not None else None
        try:
            if source is None or not env:
                raise WebhookNotEnabledError(f"no source {name!r:.80} takes webhooks.", field="source",
                                             fix="set webhook_secret_env on the source's config.")
            secret = webhooks.secret_of(name, env)
            body = await self._body(request, webhooks.MAX_BODY)
            await webhooks.verify(name, secret, request.headers, body,
                                  tolerance=source.config.webhook_tolerance,
                                  nonces=fabric.nonces)
            await fabric.ensure_started()
            await fabric.source_changed(name)
        except DataFlowError as exc:
            log.warning("webhook for %s refused: %s", name, exc.message)
            return error_response(exc)
        return Response(json.dumps({"accepted": True, "source": name}), status_code=202,
                        media_type=JSON)

    @staticmethod
    async def _body(request: Request, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ParameterError(f"the webhook body is over {limit} bytes.", field="body")
            chunks.append(chunk)
        return b"".join(chunks)

    async def write(self, request: Request) -> Response:
        db = self.fabric.db
        try:
            await self.fabric.ensure_started()
            model = db.get_model(request.path_params["name"])
            tenant = await self._tenant(request)
            try:
                data = await request.json()
            except ValueError:
                raise ParameterError("the request body must be JSON: an object, or a list of objects "
                                     "for a bulk create.", field="body") from None
            if not isinstance(data, (dict, list)):
                raise ParameterError("the request body must be a JSON object or a list of objects.",
                                     field="body")
            result = await self._create(db, model.name, data, tenant)
        except DataFlowError as exc:
            if isinstance(exc, FabricError) and exc.status >= 500:
                log.error("write to %s failed: %s", request.path_params["name"], exc)
            return error_response(exc)
        from .products import render

        return Response(render(result), status_code=201, media_type=JSON)

    @staticmethod
    async def _create(db: DataFlow, model: str, data: Any, tenant: str | None) -> Any:
        async def run() -> Any:
            if isinstance(data, list):
                return await db.express.bulk_create(model, data)
            return await db.express.create(model, data)

        if tenant is None:
            return await run()
        async with db.tenant(tenant):
            return await run()


def create_app(db: DataFlow, *, enable_writes: bool = False,
               tenant_extractor: TenantExtractor | None = None, prefix: str = "/fabric") -> Starlette:
    """The fabric of ``db`` as an ASGI app to mount in your own Starlette / FastAPI app.

    The runtime starts on the first request (no warm-up); call ``await db.start(...)`` or
    ``await fabric_of(db).start()`` in your lifespan to warm materialized products first.
    """
    return FabricApp(fabric_of(db), enable_writes=enable_writes, tenant_extractor=tenant_extractor,
                     prefix=prefix).app
