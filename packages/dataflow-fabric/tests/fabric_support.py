"""What the fabric tests share besides fixtures: a real HTTP server on 127.0.0.1 standing in
for a REST upstream, and a poll helper. A plain module, not ``.conftest``: the tests directory
is not a package (several packages' test folders are named ``tests``)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Serve = Callable[..., Awaitable[httpx.AsyncClient]]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``check()`` is true (for work the fabric does in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@dataclass
class Route:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Upstream:
    """A real HTTP server: ``routes[path]`` says what to answer, ``log`` records every request."""

    host: str
    port: int
    routes: dict[str, Route | list[Route]] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def hits(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.log if r["path"] == path]


def _start_upstream(host: str) -> tuple[Upstream, ThreadingHTTPServer]:
    state_holder: list[Upstream] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            up = state_holder[0]
            path = self.path.split("?", 1)[0]
            up.log.append({"path": path, "query": self.path.partition("?")[2],
                           "headers": {k.lower(): v for k, v in self.headers.items()}})
            route = up.routes.get(path)
            if isinstance(route, list):
                route = route.pop(0) if len(route) > 1 else route[0]
            if route is None:
                route = Route(404, {"error": "no such path"})
            if route.delay:
                import time

                time.sleep(route.delay)
            etag = route.headers.get("ETag")
            if etag and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            modified = route.headers.get("Last-Modified")
            if modified and self.headers.get("If-Modified-Since") == modified:
                self.send_response(304)
                self.end_headers()
                return
            body = b"" if route.body is None else json.dumps(route.body).encode()
            self.send_response(route.status)
            for k, v in route.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    up = Upstream(host, server.server_address[1])
    state_holder.append(up)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return up, server
