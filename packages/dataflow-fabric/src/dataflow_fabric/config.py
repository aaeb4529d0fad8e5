"""Source declarations: what to read, how to authenticate, how to behave when it fails.

Every source takes ``webhook_secret_env``: the environment variable holding the HMAC secret
of ``POST /fabric/_webhooks/{source}`` (no variable: the source takes no webhooks), and
``webhook_tolerance``: how far (seconds) a call's timestamp may be from the server's clock.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import FabricConfigError

#: ``resolve(host, port) -> addresses``; the default asks the system resolver
Resolver = Callable[[str, int], "Sequence[str]"]


def _env(name: str, source: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise FabricConfigError(
            f"source {source!r}: environment variable {name} is not set.",
            field=name, fix=f"export {name}=... before starting the fabric.")
    return value


@dataclass(frozen=True)
class BearerAuth:
    """``Authorization: Bearer $<token_env>``."""

    token_env: str

    def headers(self, source: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {_env(self.token_env, source)}"}


@dataclass(frozen=True)
class BasicAuth:
    """HTTP Basic from ``$<username_env>`` and ``$<password_env>``."""

    username_env: str
    password_env: str

    def headers(self, source: str) -> dict[str, str]:
        pair = f"{_env(self.username_env, source)}:{_env(self.password_env, source)}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}


@dataclass(frozen=True)
class ApiKeyAuth:
    """An API key from ``$<key_env>`` sent in ``header``."""

    key_env: str
    header: str = "X-API-Key"

    def headers(self, source: str) -> dict[str, str]:
        return {self.header: _env(self.key_env, source)}


Auth = BearerAuth | BasicAuth | ApiKeyAuth


@dataclass(frozen=True)
class StalenessPolicy:
    """What products see when a source's last good data is older than ``max_age`` seconds.

    ``on_stale="serve"``: the old data, and every product computed from it is marked stale;
    ``"fail"``: the read raises DF-1107. ``max_age=None``: data never becomes too old.
    """

    max_age: float | None = None
    on_stale: Literal["serve", "fail"] = "serve"

    def __post_init__(self) -> None:
        if self.on_stale not in ("serve", "fail"):
            raise FabricConfigError(f"on_stale must be 'serve' or 'fail', got {self.on_stale!r:.40}.",
                                    field="on_stale")


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """Open after ``failure_threshold`` consecutive failures; after ``recovery_timeout``
    seconds let ``half_open_calls`` trial calls through; one success closes it again."""

    failure_threshold: int = 5
    recovery_timeout: float = 30.0
    half_open_calls: int = 1


@dataclass(frozen=True, kw_only=True)
class SourceBehaviour:
    """What every source config takes besides its own fields, keyword-only: how the source
    fails (``circuit``), how old its data may grow (``staleness``), and the webhook that says
    it changed (``webhook_secret_env``, ``webhook_tolerance``; see the module docstring)."""

    circuit: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    staleness: StalenessPolicy = field(default_factory=StalenessPolicy)
    webhook_secret_env: str | None = None
    webhook_tolerance: float = 300.0


@dataclass(frozen=True)
class RestSourceConfig(SourceBehaviour):
    """An HTTP JSON API. ``fetch("deals")`` GETs ``<url>/deals``.

    Every known path is revalidated each ``poll_interval`` seconds with ``If-None-Match`` /
    ``If-Modified-Since``; a 304 costs one round trip and no parsing. Private, loopback,
    link-local, multicast and metadata addresses are refused unless ``allow_private`` or
    ``allowlist`` (host names or CIDRs) opens them.
    """

    url: str
    auth: Auth | None = None
    poll_interval: float = 60.0
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.2
    headers: dict[str, str] = field(default_factory=dict)
    allow_private: bool = False
    allowlist: tuple[str, ...] = ()
    max_redirects: int = 5
    resolver: Resolver | None = None
    kind: str = "rest"


@dataclass(frozen=True)
class FileSourceConfig(SourceBehaviour):
    """A local file: JSON, NDJSON, CSV, or Parquet (with polars). ``format`` defaults to the
    suffix. Changes are seen with watchdog, or by polling every ``poll_interval`` seconds."""

    path: str | Path
    format: Literal["json", "ndjson", "csv", "parquet"] | None = None
    watch: bool = True
    poll_interval: float = 1.0
    kind: str = "file"


@dataclass(frozen=True)
class DatabaseSourceConfig(SourceBehaviour):
    """Another database by DataFlow URL; ``fetch("table", filter)`` lists rows.

    Read-only by default: reads go through ``fetch``; ``read_only=False`` also hands products
    the source's DataFlow instance (``ctx.source(name).database``) to write with. Changes are
    detected by the adapter's
    detector (``database:<scheme>``) when it registers one, else (or with
    ``change_detection="portable"``) by row count and newest ``updated_at`` per table.
    """

    url: str
    tables: tuple[str, ...] | None = None
    poll_interval: float = 5.0
    change_detection: Literal["auto", "portable"] = "auto"
    read_only: bool = True
    #: PostgreSQL: LISTEN on this channel (your triggers ``pg_notify`` it); polling stays on
    notify_channel: str | None = None
    kind: str = "database"


@dataclass(frozen=True)
class CloudSourceConfig(SourceBehaviour):
    """Objects under ``prefix`` in a bucket: JSON, NDJSON or CSV (``format`` defaults to each
    object's suffix). ``fetch(key)`` is one object (``prefix + key``), ``fetch()`` all of them
    as ``{key: content}``. Every ``poll_interval`` seconds the listing's ETag / LastModified
    tell whether anything changed; unchanged objects are not downloaded again.

    ``provider="s3"`` uses boto3 (extra ``[s3]``) with the standard AWS credential chain
    (environment, shared files, instance role); ``endpoint_url`` points it at an S3-compatible
    service. ``"gcs"`` and ``"azure"`` are not implemented yet (DF-501).
    """

    bucket: str
    prefix: str = ""
    provider: Literal["s3", "gcs", "azure"] = "s3"
    format: Literal["json", "ndjson", "csv"] | None = None
    region: str | None = None
    endpoint_url: str | None = None
    poll_interval: float = 30.0
    max_objects: int = 1000
    kind: str = "cloud"


@dataclass(frozen=True)
class StreamSourceConfig(SourceBehaviour):
    """A message stream: ``kafka://host:port[,host:port]/topic`` (aiokafka, consumer group
    ``group_id``, default ``dataflow-fabric-<source>``) or ``ws://`` / ``wss://`` (websockets).

    Products see a bounded window: the last ``window_size`` messages and/or those of the last
    ``window_seconds`` seconds, oldest first (``fetch()``). Kafka is at-least-once: offsets are
    committed only after the product computation that read the messages succeeded.
    ``start_from``: where a new consumer group begins. Lost connections are retried with
    exponential backoff from ``reconnect_initial`` to ``reconnect_max`` seconds.
    """

    url: str
    window_size: int | None = 1000
    window_seconds: float | None = None
    format: Literal["json", "text"] = "json"
    group_id: str | None = None
    start_from: Literal["earliest", "latest"] = "latest"
    session_timeout_ms: int = 10_000
    connect_timeout: float = 10.0
    reconnect_initial: float = 0.1
    reconnect_max: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "stream"


SourceConfig = (RestSourceConfig | FileSourceConfig | DatabaseSourceConfig | CloudSourceConfig
                | StreamSourceConfig)
