"""Cloud storage connector: S3 through boto3, every call in a worker thread (asyncio.to_thread).

Change detection lists the prefix and compares each object's (key, ETag, LastModified,
size); a read sends ``If-None-Match`` with the ETag it holds, so an unchanged object costs a
304 and no parsing. GCS and Azure are refused with DF-501 when the source is declared.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dataflow.errors import UnsupportedError

from .config import CloudSourceConfig
from .errors import FabricConfigError, SourceError

log = logging.getLogger("dataflow.fabric")
FORMATS = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
Listing = tuple[tuple[str, str, str, int], ...]


@dataclass
class _Object:
    etag: str
    value: Any


def parse(data: bytes, fmt: str) -> Any:
    text = data.decode("utf-8")
    if fmt == "json":
        return json.loads(text)
    if fmt == "ndjson":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def cloud_connector(name: str, config: CloudSourceConfig) -> S3Connector:
    if config.provider != "s3":
        raise UnsupportedError(f"source {name!r}: cloud provider {config.provider!r:.20} is not "
                               "implemented yet; S3 (and S3-compatible services) is.",
                               field="provider", fix="use provider='s3', or read it through a "
                               "RestSourceConfig / FileSourceConfig for now.")
    return S3Connector(name, config)


class S3Connector:
    def __init__(self, name: str, config: CloudSourceConfig) -> None:
        if not isinstance(config.bucket, str) or not config.bucket:
            raise FabricConfigError(f"source {name!r}: bucket must be a non-empty str.", field="bucket")
        if config.format not in (None, "json", "ndjson", "csv"):
            raise FabricConfigError(f"source {name!r}: format must be 'json', 'ndjson' or 'csv', "
                                    f"got {config.format!r:.20}.", field="format")
        try:
            import boto3  # noqa: F401
        except ImportError as exc:
            raise UnsupportedError(f"source {name!r} needs boto3, which is not installed.",
                                   field="provider", fix="pip install 'dataflow-fabric[s3]'.") from exc
        self.name = name
        self.config = config
        self.poll_interval = config.poll_interval
        self.on_change: Callable[[], None] | None = None
        self._client: Any = None
        self._objects: dict[str, _Object] = {}
        self._listing: Listing | None = None

    # --- boto3, off the event loop ------------------------------------------------------
    def _make_client(self) -> Any:
        import boto3

        session = boto3.session.Session()
        return session.client("s3", region_name=self.config.region,
                              endpoint_url=self.config.endpoint_url)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        if self._client is None:
            self._client = await asyncio.to_thread(self._make_client)
        return await asyncio.to_thread(getattr(self._client, method), **kwargs)

    def _error(self, exc: Exception, what: str) -> SourceError:
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return SourceError(f"source {self.name!r}: no AWS credentials found.",
                               fix="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile in "
                               "~/.aws, or run with an instance role.")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "?")
            return SourceError(f"source {self.name!r}: {what} in bucket {self.config.bucket!r} "
                               f"failed ({code}).")
        return SourceError(f"source {self.name!r}: {what} failed ({type(exc).__name__}).")

    # --- connector ----------------------------------------------------------------------
    async def open(self) -> None:
        self._listing = await self._list()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    async def _list(self) -> Listing:
        rows: list[tuple[str, str, str, int]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.config.bucket, "Prefix": self.config.prefix}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = await self._call("list_objects_v2", **kwargs)
            except Exception as exc:
                raise self._error(exc, "listing") from exc
            for item in page.get("Contents", ()):
                if item["Key"].endswith("/"):
                    continue
                rows.append((item["Key"], item.get("ETag", ""), str(item.get("LastModified", "")),
                             int(item.get("Size", 0))))
                if len(rows) > self.config.max_objects:
                    raise SourceError(f"source {self.name!r}: more than {self.config.max_objects} "
                                      f"objects under {self.config.prefix!r}.", field="max_objects",
                                      fix="narrow the prefix or raise max_objects.")
            if not page.get("IsTruncated"):
                break
            token = page.get("NextContinuationToken")
        return tuple(sorted(rows))

    async def poll(self) -> bool:
        listing = await self._list()
        changed = listing != self._listing
        self._listing = listing
        return changed

    def _format(self, key: str) -> str:
        if self.config.format is not None:
            return self.config.format
        suffix = key[key.rfind("."):].lower() if "." in key else ""
        fmt = FORMATS.get(suffix)
        if fmt is None:
            raise SourceError(f"source {self.name!r}: cannot tell the format of {key!r:.100}.",
                              field="format", fix="pass format='json' | 'ndjson' | 'csv'.")
        return fmt

    async def _get(self, key: str) -> Any:
        from botocore.exceptions import ClientError

        held = self._objects.get(key)
        kwargs: dict[str, Any] = {"Bucket": self.config.bucket, "Key": key}
        if held is not None:
            kwargs["IfNoneMatch"] = held.etag
        try:
            response = await self._call("get_object", **kwargs)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if held is not None and (status == 304 or exc.response.get("Error", {}).get("Code")
                                     in ("304", "NotModified")):
                return held.value
            raise self._error(exc, f"reading {key!r:.100}") from exc
        except Exception as exc:
            raise self._error(exc, f"reading {key!r:.100}") from exc
        body = await asyncio.to_thread(response["Body"].read)
        try:
            value = parse(body, self._format(key))
        except (ValueError, UnicodeDecodeError, csv.Error) as exc:
            raise SourceError(f"source {self.name!r}: {key!r:.100} is not valid "
                              f"{self._format(key)} ({type(exc).__name__}).") from exc
        self._objects[key] = _Object(response.get("ETag", ""), value)
        return value

    async def read(self, key: str | None, params: Mapping[str, Any]) -> Any:
        if params:
            raise SourceError(f"source {self.name!r}: fetch() takes no parameters for a cloud "
                              f"source, got {', '.join(sorted(params))}.")
        if key is not None:
            return await self._get(self.config.prefix + key)
        listing = await self._list()
        self._listing = listing
        keys = [row[0] for row in listing]
        for gone in set(self._objects) - set(keys):
            del self._objects[gone]
        values = await asyncio.gather(*(self._get(k) for k in keys))
        return {k[len(self.config.prefix):]: v for k, v in zip(keys, values, strict=True)}
