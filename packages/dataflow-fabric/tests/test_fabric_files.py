"""File sources on real files: formats, change detection by watchdog and by polling."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from fabric_support import Serve, eventually

from dataflow import DataFlow
from dataflow.errors import UnsupportedError
from dataflow.fabric import FabricConfigError, FileSourceConfig, ProductContext, SourceError


async def test_json_ndjson_and_csv_are_read(db: DataFlow, tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"rates": {"eur": 1.1}}))
    (tmp_path / "b.ndjson").write_text('{"n": 1}\n\n{"n": 2}\n')
    (tmp_path / "c.csv").write_text("name,qty\nbolt,3\n\"nut, hex\",5\n")
    (tmp_path / "d.txt").write_text("[1]")
    a = db.source("a", FileSourceConfig(tmp_path / "a.json", watch=False))
    b = db.source("b", FileSourceConfig(tmp_path / "b.ndjson", watch=False))
    c = db.source("c", FileSourceConfig(str(tmp_path / "c.csv"), watch=False))
    d = db.source("d", FileSourceConfig(tmp_path / "d.txt", format="json", watch=False))
    assert await a.fetch() == {"rates": {"eur": 1.1}}
    assert await a.fetch("rates") == {"eur": 1.1}
    assert await b.fetch() == [{"n": 1}, {"n": 2}]
    assert await c.fetch() == [{"name": "bolt", "qty": "3"}, {"name": "nut, hex", "qty": "5"}]
    assert await d.fetch() == [1]
    with pytest.raises(FabricConfigError, match="format"):
        db.source("e", FileSourceConfig(tmp_path / "d.txt"))
    with pytest.raises(SourceError, match="no key"):
        await a.fetch("missing")
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(SourceError, match="not valid json"):
        await db.source("broken", FileSourceConfig(tmp_path / "a.json", watch=False)).fetch()
    with pytest.raises(SourceError, match="does not exist"):
        await db.source("gone", FileSourceConfig(tmp_path / "nope.json", watch=False)).fetch()


async def test_parquet_needs_polars(db: DataFlow, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    source = db.source("p", FileSourceConfig(path, watch=False))
    if importlib.util.find_spec("polars") is None:
        path.write_bytes(b"PAR1")
        with pytest.raises(UnsupportedError, match="polars"):
            await source.fetch()
    else:
        import polars

        polars.DataFrame({"a": [1, 2]}).write_parquet(path)
        assert await source.fetch() == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("watch", [True, False], ids=["watchdog", "polling"])
async def test_a_changed_file_refreshes_dependants(
        db: DataFlow, serve: Serve, tmp_path: Path, watch: bool) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps([1, 2]))
    source = db.source("prices", FileSourceConfig(path, watch=watch,
                                                  poll_interval=3600 if watch else 0.05))

    @db.product("total", depends_on=["prices"], debounce=0.0)
    async def total(ctx: ProductContext) -> int:
        return sum(await ctx.source("prices").fetch())

    client = await serve()
    assert source.connector.mode == ("watchdog" if watch else "polling")  # type: ignore[attr-defined]
    assert (await client.get("/total")).json() == 3
    path.write_text(json.dumps([1, 2, 3, 4]))

    async def refreshed() -> bool:
        return (await client.get("/total")).json() == 10

    await eventually(refreshed)
    trace = (await client.get("/total/_trace")).json()["refreshes"]
    assert trace[0]["inputs_changed"] == ["prices"] and trace[0]["sources_read"] == ["prices"]
