"""One exception hierarchy with stable ``DF-XXX`` codes.

Every error names what went wrong (model, field), and how to fix it. Messages are
plain text: no terminal colour codes, so they read the same in logs and tests.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

#: characters that would let caller input colour a terminal, forge a log line or reorder the
#: text of a message (ANSI escapes, NUL, C1 controls, bidirectional overrides): rendered as
#: ``\x1b``-style escapes. ``_CONTROL_ALL`` also covers newlines and tabs (model / field names).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_ALL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest choice, or an empty string."""
    if not isinstance(name, str):  # a non-str key (1, None, b"x") resembles no name
        return ""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


class DataFlowError(Exception):
    """Base class of every DataFlow error; ``code`` is stable across releases."""

    code = "DF-000"

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        field: str | None = None,
        fix: str | None = None,
        **details: Any,
    ) -> None:
        self.message = message
        self.model = model
        self.field = field
        self.fix = fix
        self.details = details
        self.node_id: str | None = None
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.model and self.field:
            where = f"{self.model}.{self.field}: "
        elif self.model:
            where = f"{self.model}: "
        message = self.message
        if message.endswith(".."):  # a driver's text ending in "." inside "...: {exc}."
            message = message.rstrip(".") + "."
        text = f"{_CONTROL_ALL.sub(_escape, where)}{message}"
        if self.fix:
            if not text.endswith((".", "!", "?", ":")):
                text += "."
            text += f" Fix: {self.fix}"
        return f"[{self.code}] {_CONTROL.sub(_escape, text)}"


# --- configuration and plugins (DF-1xx) -------------------------------------------------
class ConfigurationError(DataFlowError):
    code = "DF-101"


class AdapterNotFoundError(ConfigurationError):
    code = "DF-102"


class PluginError(ConfigurationError):
    code = "DF-103"


class ClosedError(ConfigurationError):
    code = "DF-104"


class ExtensionNotInstalledError(ConfigurationError, AttributeError):
    """A feature whose package is not installed (also an AttributeError, so hasattr works)."""

    code = "DF-105"


# --- models (DF-2xx) --------------------------------------------------------------------
class ModelDefinitionError(DataFlowError):
    code = "DF-201"


class UnknownModelError(DataFlowError):
    code = "DF-202"


# --- input validation (DF-3xx) ----------------------------------------------------------
class ValidationError(DataFlowError):
    """A value does not fit its field's declared type or constraints."""

    code = "DF-301"


class UnknownFieldError(ValidationError):
    code = "DF-302"


class MissingFieldError(ValidationError):
    code = "DF-303"


class ManagedFieldError(ValidationError):
    code = "DF-304"


class BulkValidationError(ValidationError):
    """One or more rows of a bulk operation are invalid; ``failures`` lists them."""

    code = "DF-305"

    def __init__(self, message: str, *, failures: list[dict[str, Any]],
                 errors: list[DataFlowError] | None = None, **kw: Any) -> None:
        self.failures = failures
        #: the per-row exceptions, in the order of ``failures``
        self.errors = errors or []
        super().__init__(message, **kw)


class ConfirmationRequiredError(ValidationError):
    code = "DF-306"


class RelatedRowError(ValidationError):
    """A frame row is refused because a row it is linked to by a foreign key, in the same
    call, is invalid (``db.frames``: invalid-row propagation)."""

    code = "DF-310"


# --- filters and queries (DF-4xx) -------------------------------------------------------
class FilterError(DataFlowError):
    code = "DF-401"


class UnknownOperatorError(FilterError):
    code = "DF-402"


class RecordNotFoundError(DataFlowError):
    code = "DF-404"


class RecordDeletedError(DataFlowError):
    """The operation names a soft-deleted (tombstoned) record; restore it first."""

    code = "DF-405"


# --- backend capabilities (DF-5xx) ------------------------------------------------------
class UnsupportedError(DataFlowError):
    """The backend cannot do this exactly; it refuses rather than answer differently."""

    code = "DF-501"


# --- schema and migrations (DF-6xx) -----------------------------------------------------
class MigrationRefusedError(DataFlowError):
    code = "DF-601"

    def __init__(self, message: str, *, plan: Any = None, **kw: Any) -> None:
        self.plan = plan
        super().__init__(message, **kw)


class MigrationFailedError(DataFlowError):
    code = "DF-602"


# --- workflows and nodes (DF-7xx) -------------------------------------------------------
class NodeNotFoundError(DataFlowError):
    code = "DF-701"


class AmbiguousNodeError(DataFlowError):
    code = "DF-702"


class WorkflowError(DataFlowError):
    code = "DF-703"


# --- transactions and the database (DF-8xx, DF-9xx) -------------------------------------
class TransactionError(DataFlowError):
    code = "DF-801"


class TenantRequiredError(DataFlowError):
    """A tenant-scoped model was used with no tenant bound (``async with db.tenant(...)``)."""

    code = "DF-802"


class TenantViolationError(DataFlowError):
    """An operation would read or write another tenant's rows."""

    code = "DF-803"


class DatabaseError(DataFlowError):
    """The database refused a statement; the driver's exception is ``__cause__``."""

    code = "DF-901"


class IntegrityError(DatabaseError):
    """A constraint (unique, not null, foreign key) was violated."""

    code = "DF-902"


class ConnectionLostError(DatabaseError):
    code = "DF-903"


class TransactionConflictError(DatabaseError):
    """The database aborted the transaction to break a deadlock (or a serialization
    conflict): everything in it was rolled back, and running it again is safe. DataFlow
    restarts the operations whose transaction it owns (upserts); inside
    ``db.transaction()`` the caller's block is the unit to retry."""

    code = "DF-904"


__all__ = [name for name in dir() if name.endswith("Error")] + ["did_you_mean"]
