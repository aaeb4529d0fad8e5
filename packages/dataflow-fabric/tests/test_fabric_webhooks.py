"""Webhooks over real HTTP: a signed call refreshes dependants; forged, stale or replayed calls
get 401 and change nothing."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import httpx
import pytest
from fabric_support import Serve, eventually

from dataflow import DataFlow
from dataflow.fabric import FileSourceConfig, ProductContext, sign_webhook

SECRET = "s3cret-for-tests"


def signed(body: bytes, *, secret: str = SECRET, timestamp: int | None = None,
           nonce: str | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    return {"X-DataFlow-Timestamp": ts, "X-DataFlow-Nonce": nonce,
            "X-DataFlow-Signature": sign_webhook(secret, ts, nonce, body)}


@pytest.fixture
async def hooked(db: DataFlow, serve: Serve, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[httpx.AsyncClient, Path, list[int]]:
    """A file source that is never polled nor watched: only a webhook can tell the fabric."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    path = tmp_path / "prices.json"
    path.write_text(json.dumps([1]))
    db.source("prices", FileSourceConfig(path, watch=False, poll_interval=0,
                                         webhook_secret_env="HOOK_SECRET", webhook_tolerance=60))
    db.source("quiet", FileSourceConfig(path, watch=False, poll_interval=0))
    runs: list[int] = []

    @db.product("total", depends_on=["prices"], debounce=0)
    async def total(ctx: ProductContext) -> int:
        runs.append(1)
        return sum(await ctx.source("prices").fetch())

    client = await serve()
    return client, path, runs


async def test_a_signed_call_refreshes_dependants(hooked: tuple[httpx.AsyncClient, Path, list[int]]
                                                  ) -> None:
    client, path, runs = hooked
    assert (await client.get("/total")).json() == 1
    path.write_text(json.dumps([1, 2, 3]))
    body = b'{"event": "prices.updated"}'
    response = await client.post("/_webhooks/prices", content=body, headers=signed(body))
    assert response.status_code == 202
    assert response.json() == {"accepted": True, "source": "prices"}

    async def refreshed() -> bool:
        return bool((await client.get("/total")).json() == 6)

    await eventually(refreshed)
    assert len(runs) == 2  # the warm-up, then one refresh for the call


@pytest.mark.parametrize("tamper", ["signature", "secret", "body", "stale", "future", "nonce",
                                    "no-headers", "prefix"])
async def test_forged_or_stale_calls_get_401_and_change_nothing(
        hooked: tuple[httpx.AsyncClient, Path, list[int]], tamper: str) -> None:
    client, path, runs = hooked
    assert (await client.get("/total")).json() == 1
    before = len(runs)
    path.write_text(json.dumps([5, 5]))
    body = b'{"event": "x"}'
    headers = signed(body)
    if tamper == "signature":
        real = headers["X-DataFlow-Signature"]
        headers["X-DataFlow-Signature"] = real[:-1] + ("1" if real[-1] == "0" else "0")  # always differs
    elif tamper == "secret":
        headers = signed(body, secret="another secret")
    elif tamper == "body":
        body = b'{"event": "y"}'
    elif tamper == "stale":
        headers = signed(body, timestamp=int(time.time()) - 61)
    elif tamper == "future":
        headers = signed(body, timestamp=int(time.time()) + 61)
    elif tamper == "nonce":  # the signature covers the nonce
        headers["X-DataFlow-Nonce"] = secrets.token_hex(16)
    elif tamper == "no-headers":
        headers = {}
    elif tamper == "prefix":
        headers["X-DataFlow-Signature"] = headers["X-DataFlow-Signature"].removeprefix("sha256=")
    response = await client.post("/_webhooks/prices", content=body, headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "DF-1110" and error["field"].startswith("X-DataFlow-")
    assert SECRET not in response.text
    # nothing was scheduled: the product still holds the old value and did not run again
    assert (await client.get("/total")).json() == 1
    assert len(runs) == before
    health = (await client.get("/_health")).json()
    assert health["products"]["total"]["refresh_pending"] is False


async def test_a_replayed_nonce_is_refused(hooked: tuple[httpx.AsyncClient, Path, list[int]]) -> None:
    client, path, runs = hooked
    assert (await client.get("/total")).json() == 1
    body = b"{}"
    headers = signed(body)
    assert (await client.post("/_webhooks/prices", content=body, headers=headers)).status_code == 202

    async def settled() -> bool:
        return not (await client.get("/_health")).json()["products"]["total"]["refresh_pending"]

    await eventually(settled)
    count = len(runs)
    path.write_text(json.dumps([7]))
    replay = await client.post("/_webhooks/prices", content=body, headers=headers)
    assert replay.status_code == 401
    assert "already used" in replay.json()["error"]["message"]
    assert (await client.get("/total")).json() == 1
    assert len(runs) == count


async def test_sources_without_a_secret_take_no_webhooks(
        hooked: tuple[httpx.AsyncClient, Path, list[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    client, _, _ = hooked
    body = b"{}"
    for name in ("quiet", "nowhere"):
        response = await client.post(f"/_webhooks/{name}", content=body, headers=signed(body))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "DF-1112"
    monkeypatch.delenv("HOOK_SECRET")
    response = await client.post("/_webhooks/prices", content=body, headers=signed(body))
    assert response.status_code == 500
    assert "HOOK_SECRET" in response.json()["error"]["message"]
    big = b"x" * ((1 << 20) + 1)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    response = await client.post("/_webhooks/prices", content=big, headers=signed(big))
    assert response.status_code == 400 and response.json()["error"]["field"] == "body"
