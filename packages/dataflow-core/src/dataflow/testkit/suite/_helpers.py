"""Shared helpers of the contract suite (not collected: no ``Test`` prefix)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pytest

from ...errors import DataFlowError

E = TypeVar("E", bound=DataFlowError)
MakeDB = Callable[..., Any]

UTC = _dt.UTC


def assert_aware_utc(value: Any) -> None:
    """``value`` is a timezone-aware datetime in UTC."""
    assert isinstance(value, _dt.datetime), f"expected datetime, got {type(value).__name__}"
    assert value.tzinfo is not None, f"naive datetime {value!r}"
    assert value.utcoffset() == _dt.timedelta(0), f"not UTC: {value!r}"


def as_stored(db: Any, value: _dt.datetime) -> _dt.datetime:
    """``value`` (aware) as the backend of ``db`` keeps it: UTC, truncated to its declared
    ``datetime_resolution`` (microseconds; 1000 where datetimes are kept to milliseconds)."""
    step = db.adapter.capabilities.datetime_resolution
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % step)


def names(rows: Iterable[dict[str, Any]]) -> set[str]:
    return {r["name"] for r in rows}


class raises_df:
    """``with raises_df(UnknownFieldError, "DF-302", "Did you mean"):`` -- checks class,
    stable code and that every fragment appears in the plain-text message."""

    def __init__(self, exc_type: type[E], code: str, *fragments: str) -> None:
        self.exc_type = exc_type
        self.code = code
        self.fragments = fragments
        self._ctx = pytest.raises(exc_type)
        self.value: Any = None

    def __enter__(self) -> raises_df:
        self._info = self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        suppressed = bool(self._ctx.__exit__(*exc))
        if not suppressed:  # another exception type: let it propagate unchanged
            return False
        err = self._info.value
        self.value = err
        assert err.code == self.code, f"expected {self.code}, got {err.code}: {err}"
        text = str(err)
        assert text.startswith(f"[{self.code}]"), text
        assert "\x1b[" not in text, "error messages must not carry terminal colour codes"
        for fragment in self.fragments:
            assert fragment in text, f"{fragment!r} not in {text!r}"
        return suppressed


# --- generated-case accounting (the attack tests) -------------------------------------------
#: generated cases each backend must run across the attack tests (issue 5: 10,000)
CASE_BUDGET = 10_000
#: backend label -> test -> cases checked in this session (printed by the kit plugin)
CASE_COUNTS: dict[str, dict[str, int]] = {}


def backend_label(backend: Any) -> str:
    """``postgresql (127.0.0.1:5432/test)``: the capability name and where it runs, no password."""
    from ...adapter import DatabaseURL

    url = DatabaseURL.parse(backend.url)
    if url.host:
        where = f"{url.host}:{url.port}/{url.database}" if url.port else f"{url.host}/{url.database}"
    else:
        where = url.database.rsplit("/", 1)[-1] or url.location
    return f"{backend.capabilities.name} ({where})"


def count_cases(backend: Any, test: str, n: int) -> None:
    per_test = CASE_COUNTS.setdefault(backend_label(backend), {})
    per_test[test] = per_test.get(test, 0) + n


def case_counts(backend: Any) -> dict[str, int]:
    return dict(CASE_COUNTS.get(backend_label(backend), {}))


# --- process time zone (type round trips must not depend on it) -----------------------------
#: zones the round-trip tests also run under: a far-from-UTC offset with a 45-minute part,
#: and one west of UTC, so local-time conversions by a driver or an adapter show up
NON_UTC_ZONES = ("Pacific/Chatham", "America/Sao_Paulo")


class local_timezone:
    """``with local_timezone("Pacific/Chatham"):`` -- the process's ``TZ`` for the block
    (``time.tzset``), restored after. A backend must store and return the same instant."""

    def __init__(self, zone: str) -> None:
        self.zone = zone
        self._saved: str | None = None

    def __enter__(self) -> local_timezone:
        import os
        import time

        self._saved = os.environ.get("TZ")
        os.environ["TZ"] = self.zone
        time.tzset()
        return self

    def __exit__(self, *exc: Any) -> None:
        import os
        import time

        if self._saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = self._saved
        time.tzset()


# --- what reaches the database ---------------------------------------------------------------
#: driver primitives of a SQL adapter: a call here sends SQL
DRIVER_CALLS = ("fetch", "execute", "executemany")
#: statement-level adapter methods: for a non-SQL adapter, the point where a request leaves
STATEMENT_CALLS = ("select", "count", "insert", "update", "delete", "upsert", "read_by_id",
                   "delete_by_id", "begin", "savepoint", "apply_ddl", "introspect")


class statements_sent:
    """``with statements_sent(db) as sent: ...`` then ``assert not sent.calls``: records every
    call that would reach the database during the block -- the driver primitives of a SQL
    adapter, or, for an adapter without them, its statement-level methods."""

    def __init__(self, db: Any) -> None:
        self.adapter = db.adapter
        self.calls: list[str] = []
        sql = all(callable(getattr(self.adapter, n, None)) for n in DRIVER_CALLS)
        self.names = DRIVER_CALLS if sql else STATEMENT_CALLS

    def __enter__(self) -> statements_sent:
        for name in self.names:
            original = getattr(self.adapter, name, None)
            if original is None:
                continue

            def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
                detail = next((a for a in args if isinstance(a, str)), "")
                self.calls.append(f"{_name}({detail[:80]!r})")
                return _original(*args, **kw)

            setattr(self.adapter, name, spy)  # an instance attribute shadows the method
        return self

    def __exit__(self, *exc: Any) -> None:
        for name in self.names:
            self.adapter.__dict__.pop(name, None)
