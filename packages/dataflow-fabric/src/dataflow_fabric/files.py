"""File connector: JSON, NDJSON, CSV and Parquet (polars); watchdog, with stat polling as fallback."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dataflow.errors import UnsupportedError

from .config import FileSourceConfig
from .errors import FabricConfigError, SourceError

log = logging.getLogger("dataflow.fabric")
FORMATS = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv", ".parquet": "parquet"}
Signature = tuple[int, int, int]


def _signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def parse(path: Path, fmt: str) -> Any:
    if fmt == "parquet":
        try:
            import polars
        except ImportError as exc:
            raise UnsupportedError(
                f"reading {path.name} needs polars, which is not installed.",
                fix="pip install 'dataflow-fabric[parquet]' (or polars).") from exc
        return polars.read_parquet(path).to_dicts()
    text = path.read_text(encoding="utf-8")
    if fmt == "json":
        return json.loads(text)
    if fmt == "ndjson":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO(text, newline="")))


class FileConnector:
    def __init__(self, name: str, config: FileSourceConfig) -> None:
        self.name = name
        self.config = config
        self.path = Path(config.path).resolve()
        fmt = config.format or FORMATS.get(self.path.suffix.lower())
        if fmt not in ("json", "ndjson", "csv", "parquet"):
            raise FabricConfigError(
                f"source {name!r}: cannot tell the format of {self.path.name!r}.", field="format",
                fix="pass format='json' | 'ndjson' | 'csv' | 'parquet'.")
        self.format: str = fmt
        self.poll_interval = config.poll_interval
        self.on_change: Callable[[], None] | None = None
        self._cached: tuple[Signature, Any] | None = None
        self._seen: Signature | None = None
        self._observer: Any = None
        #: "watchdog" when file events arrive, "polling" otherwise
        self.mode = "polling"

    async def open(self) -> None:
        self._seen = _signature(self.path)
        if self.config.watch and self._observer is None:
            self._start_watching(asyncio.get_running_loop())

    def _start_watching(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            return
        target = str(self.path)
        connector = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                paths = {os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")}
                if target in paths and connector.on_change is not None:
                    loop.call_soon_threadsafe(connector.on_change)

        try:
            observer = Observer()
            observer.schedule(Handler(), str(self.path.parent), recursive=False)
            observer.daemon = True
            observer.start()
        except Exception as exc:  # inotify limits, unsupported filesystems: poll instead
            log.warning("source %s: file watching unavailable (%s); polling every %ss",
                        self.name, type(exc).__name__, self.poll_interval)
            return
        self._observer = observer
        self.mode = "watchdog"

    async def close(self) -> None:
        if self._observer is not None:
            observer, self._observer = self._observer, None
            observer.stop()
            await asyncio.to_thread(observer.join, 5)

    async def read(self, key: str | None, params: Mapping[str, Any]) -> Any:
        sig = _signature(self.path)
        if sig is None:
            raise SourceError(f"source {self.name!r}: {self.path.name} does not exist.")
        if self._cached is None or self._cached[0] != sig:
            try:
                data = await asyncio.to_thread(parse, self.path, self.format)
            except (ValueError, UnicodeDecodeError, csv.Error) as exc:
                raise SourceError(f"source {self.name!r}: {self.path.name} is not valid "
                                  f"{self.format} ({type(exc).__name__}).") from exc
            self._cached = (sig, data)
        data = self._cached[1]
        if key is None:
            return data
        if not isinstance(data, dict) or key not in data:
            raise SourceError(f"source {self.name!r}: {self.path.name} has no key {key!r:.80}.")
        return data[key]

    async def poll(self) -> bool:
        sig = _signature(self.path)
        changed = sig != self._seen
        self._seen = sig
        return changed
