"""Cloud sources on S3, against moto's S3 server on loopback (a real HTTP endpoint)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fabric_support import Serve, eventually

from dataflow import DataFlow
from dataflow.errors import UnsupportedError
from dataflow.fabric import CloudSourceConfig, ProductContext, SourceError, fabric_of

BUCKET = f"fabric-data-{uuid.uuid4().hex[:8]}"  # moto's state outlives one server: a bucket per run


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """moto's S3 on 127.0.0.1 (a free port), credentials through the standard chain (env)."""
    import boto3  # the [s3] extra, installed by requirements-dev.txt: missing is a failure
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client
        listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", ())
        for item in listed:
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
        client.delete_bucket(Bucket=BUCKET)
    finally:
        server.stop()


def config(endpoint: str, **options: Any) -> CloudSourceConfig:
    return CloudSourceConfig(bucket=BUCKET, prefix="sales/", endpoint_url=endpoint,
                             region="us-east-1", **options)


async def test_objects_are_read_by_format_and_listed_under_the_prefix(
        db: DataFlow, s3: tuple[str, Any]) -> None:
    endpoint, client = s3
    client.put_object(Bucket=BUCKET, Key="sales/a.json", Body=json.dumps({"eur": 3}))
    client.put_object(Bucket=BUCKET, Key="sales/b.ndjson", Body=b'{"n": 1}\n\n{"n": 2}\n')
    client.put_object(Bucket=BUCKET, Key="sales/c.csv", Body=b'name,qty\n"nut, hex",5\n')
    client.put_object(Bucket=BUCKET, Key="other/d.json", Body=b"[1]")
    source = db.source("sales", config(endpoint))
    assert await source.fetch("a.json") == {"eur": 3}
    assert await source.fetch() == {"a.json": {"eur": 3}, "b.ndjson": [{"n": 1}, {"n": 2}],
                                    "c.csv": [{"name": "nut, hex", "qty": "5"}]}
    client.put_object(Bucket=BUCKET, Key="sales/e.txt", Body=b"[]")
    with pytest.raises(SourceError, match="cannot tell the format"):
        await source.fetch("e.txt")
    client.put_object(Bucket=BUCKET, Key="sales/bad.json", Body=b"{not json")
    with pytest.raises(SourceError, match="not valid json"):
        await source.fetch("bad.json")
    with pytest.raises(SourceError, match="NoSuchKey"):
        await source.fetch("missing.json")
    with pytest.raises(SourceError, match="NoSuchBucket"):
        await db.source("nobucket", CloudSourceConfig(bucket="nope", endpoint_url=endpoint)).fetch()


async def test_a_changed_object_refreshes_dependants_and_unchanged_ones_are_not_reparsed(
        db: DataFlow, serve: Serve, s3: tuple[str, Any]) -> None:
    endpoint, client = s3
    client.put_object(Bucket=BUCKET, Key="sales/jan.json", Body=b"[1, 2]")
    client.put_object(Bucket=BUCKET, Key="sales/feb.json", Body=b"[3]")
    source = db.source("sales", config(endpoint, poll_interval=0.1))

    @db.product("total", depends_on=["sales"], debounce=0)
    async def total(ctx: ProductContext) -> int:
        return sum(sum(v) for v in (await ctx.source("sales").fetch()).values())

    client_http = await serve()
    assert (await client_http.get("/total")).json() == 6
    feb_before = source.connector._objects["sales/feb.json"]  # type: ignore[attr-defined]
    client.put_object(Bucket=BUCKET, Key="sales/jan.json", Body=b"[10]")

    async def refreshed() -> bool:
        return bool((await client_http.get("/total")).json() == 13)

    await eventually(refreshed)
    # feb.json answered 304 to If-None-Match: the same parsed value, not a new download
    assert source.connector._objects["sales/feb.json"] is feb_before  # type: ignore[attr-defined]
    client.delete_object(Bucket=BUCKET, Key="sales/feb.json")

    async def dropped() -> bool:
        return bool((await client_http.get("/total")).json() == 10)

    await eventually(dropped)


async def test_gcs_and_azure_are_not_implemented_yet(db: DataFlow) -> None:
    for provider in ("gcs", "azure"):
        with pytest.raises(UnsupportedError, match="not implemented") as info:
            db.source(provider, CloudSourceConfig(bucket="b", provider=provider))  # type: ignore[arg-type]
        assert info.value.code == "DF-501" and info.value.field == "provider"
    assert not fabric_of(db).sources  # nothing was registered


async def test_missing_credentials_are_named(db: DataFlow, s3: tuple[str, Any],
                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    endpoint, _ = s3
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(SourceError, match="no AWS credentials"):
        await db.source("anon", config(endpoint)).fetch()
