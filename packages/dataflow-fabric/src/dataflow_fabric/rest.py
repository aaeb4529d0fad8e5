"""REST connector: conditional GETs (ETag / Last-Modified), auth from env, retries, SSRF pinning."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .config import RestSourceConfig
from .errors import AddressRefusedError, FabricConfigError, SourceError
from .ssrf import AddressPolicy, PinnedTransport

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass
class _Entry:
    value: Any
    digest: bytes
    etag: str | None
    last_modified: str | None
    validated_at: float


class RestConnector:
    def __init__(self, name: str, config: RestSourceConfig) -> None:
        if not config.url.startswith(("http://", "https://")):
            raise FabricConfigError(f"source {name!r}: url must be http(s), got {config.url!r:.100}.",
                                    field="url")
        try:
            httpx.URL(config.url)
        except httpx.InvalidURL as exc:
            raise FabricConfigError(f"source {name!r}: url {config.url!r:.100} is not a valid URL "
                                    f"({exc}).", field="url") from None
        self.name = name
        self.config = config
        self.poll_interval = config.poll_interval
        self.on_change: Callable[[], None] | None = None
        self.transport = PinnedTransport(AddressPolicy(config.allow_private, config.allowlist),
                                         config.resolver)
        self._client: httpx.AsyncClient | None = None
        self._entries: dict[str, _Entry] = {}
        #: requests sent / answered 304, for metrics and tests
        self.requests = 0
        self.not_modified = 0

    def _url(self, key: str | None, params: Mapping[str, Any]) -> str:
        base = self.config.url.rstrip("/")
        url = f"{base}/{key.lstrip('/')}" if key else base
        if params:
            url = str(httpx.URL(url, params={k: str(v) for k, v in params.items()}))
        return url

    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self.transport, timeout=self.config.timeout, follow_redirects=True,
                max_redirects=self.config.max_redirects, headers=self.config.headers)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def read(self, key: str | None, params: Mapping[str, Any]) -> Any:
        url = self._url(key, params)
        entry = self._entries.get(url)
        if entry is not None and time.monotonic() - entry.validated_at < self.poll_interval:
            return entry.value
        entry, _ = await self._revalidate(url)
        return entry.value

    async def poll(self) -> bool:
        changed = False
        for url in list(self._entries):
            _, was_changed = await self._revalidate(url)
            changed = changed or was_changed
        return changed

    async def _revalidate(self, url: str) -> tuple[_Entry, bool]:
        """GET ``url`` (conditionally when we hold a copy); returns the entry and whether it changed."""
        old = self._entries.get(url)
        headers: dict[str, str] = {"Accept": "application/json"}
        if self.config.auth is not None:
            headers.update(self.config.auth.headers(self.name))
        if old is not None and old.etag:
            headers["If-None-Match"] = old.etag
        if old is not None and old.last_modified:
            headers["If-Modified-Since"] = old.last_modified
        response = await self._send(url, headers)
        now = time.monotonic()
        if response.status_code == 304 and old is not None:
            self.not_modified += 1
            old.validated_at = now
            return old, False
        if response.status_code >= 400:
            raise SourceError(f"source {self.name!r}: GET {_path(url)} answered {response.status_code}.")
        body = response.content
        digest = hashlib.blake2b(body, digest_size=16).digest()
        if old is not None and old.digest == digest:
            value = old.value
        else:
            try:
                value = json.loads(body) if body else None
            except ValueError as exc:
                raise SourceError(f"source {self.name!r}: GET {_path(url)} did not return JSON.") from exc
        entry = _Entry(value, digest, response.headers.get("ETag"),
                       response.headers.get("Last-Modified"), now)
        self._entries[url] = entry
        return entry, old is not None and old.digest != digest

    async def _send(self, url: str, headers: dict[str, str]) -> httpx.Response:
        await self.open()
        assert self._client is not None
        attempts = max(0, self.config.retries) + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                self.requests += 1
                response = await self._client.get(url, headers=headers)
            except AddressRefusedError:
                raise
            except httpx.TooManyRedirects as exc:
                raise SourceError(f"source {self.name!r}: too many redirects from {_path(url)}.") from exc
            except httpx.HTTPError as exc:
                if last:
                    raise SourceError(f"source {self.name!r}: GET {_path(url)} failed "
                                      f"({type(exc).__name__}).") from exc
            else:
                if response.status_code not in RETRY_STATUS or last:
                    return response
            await asyncio.sleep(self.config.backoff * 2 ** attempt)
        raise AssertionError("unreachable")


def _path(url: str) -> str:
    """The URL without its query string (which may carry keys) for messages."""
    return url.split("?", 1)[0]
