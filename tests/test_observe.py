"""echo=True logs each statement with its parameters redacted; monitoring=True makes an
OpenTelemetry span per statement and per node."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dataflow import DataFlow
from dataflow.nodes import resolve_node

SECRET = "hunter2-do-not-log"

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
trace.set_tracer_provider(_PROVIDER)


async def test_echo_logs_sql_with_parameters_redacted(caplog: pytest.LogCaptureFixture) -> None:
    db = DataFlow("sqlite://:memory:", echo=True)

    @db.model
    class Account:
        login: str
        password: str

    caplog.set_level(logging.INFO, logger="dataflow.sql")
    try:
        await db.express.create("Account", {"login": "ann", "password": SECRET})
        await db.express.list("Account", {"password": SECRET})
        await db.express.bulk_create("Account", [{"login": f"u{i}", "password": SECRET}
                                                 for i in range(3)])
    finally:
        await db.close()
    text = caplog.text
    assert "INSERT INTO" in text and "SELECT" in text
    assert "parameters redacted" in text
    assert SECRET not in text and "ann" not in text


async def test_monitoring_spans_per_statement_and_per_node() -> None:
    _EXPORTER.clear()
    db = DataFlow("sqlite://:memory:", monitoring=True, name="observed")

    @db.model
    class Gadget:
        name: str

    try:
        await resolve_node("GadgetCreateNode", "observed").run({"name": SECRET})
        await db.express.count("Gadget")
    finally:
        await db.close()
    spans = _EXPORTER.get_finished_spans()
    names = [s.name for s in spans]
    assert "dataflow.node GadgetCreateNode" in names
    statements = [s for s in spans if s.name == "dataflow.statement"]
    assert any("INSERT INTO" in str(s.attributes["db.statement"]) for s in statements)
    assert any("COUNT(*)" in str(s.attributes["db.statement"]) for s in statements)
    assert all(s.attributes["db.system"] == "sqlite" for s in statements)
    node = next(s for s in spans if s.name == "dataflow.node GadgetCreateNode")
    inside = [s for s in statements if s.parent is not None and s.parent.span_id == node.context.span_id]
    assert inside, "the node's statements are children of its span"
    assert all(SECRET not in str(dict(s.attributes or {})) for s in spans)


def test_neither_flag_imports_opentelemetry() -> None:
    code = ("import sys, asyncio; from dataflow import DataFlow; db = DataFlow('sqlite://:memory:'); "
            "print('opentelemetry' in sys.modules, 'dataflow.observe' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False"], proc.stdout + proc.stderr
