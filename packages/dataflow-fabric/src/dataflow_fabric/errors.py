"""The fabric's errors (DF-11xx), each with the HTTP status it is served with."""

from __future__ import annotations

from dataflow.errors import DataFlowError, ValidationError


class FabricError(DataFlowError):
    code = "DF-1100"
    status = 500


class UnknownProductError(FabricError):
    code = "DF-1101"
    status = 404


class ParameterError(ValidationError):
    """A query parameter that does not fit the product function's signature."""

    code = "DF-1102"
    status = 400


class ProductFailedError(FabricError):
    """A product function raised; the cause is logged, never served."""

    code = "DF-1103"
    status = 500


class SourceError(FabricError):
    """A source could not be read (network, HTTP status, parse)."""

    code = "DF-1104"
    status = 502


class AddressRefusedError(SourceError):
    """A REST source resolved to an address the SSRF policy refuses; nothing was sent."""

    code = "DF-1105"
    status = 502


class CircuitOpenError(SourceError):
    code = "DF-1106"
    status = 503


class StaleDataError(SourceError):
    """A source's last good data is older than its StalenessPolicy allows."""

    code = "DF-1107"
    status = 503


class TenantMissingError(FabricError):
    code = "DF-1108"
    status = 401


class FabricConfigError(FabricError):
    """Bad product or source declaration, or a runtime used in the wrong state."""

    code = "DF-1109"
    status = 500


class WebhookRejectedError(FabricError):
    """A webhook call with a bad signature, a stale timestamp or a replayed nonce."""

    code = "DF-1110"
    status = 401


class CoordinationError(FabricError):
    """The coordination backend (Redis, PostgreSQL) could not be reached or refused a write."""

    code = "DF-1111"
    status = 503


class WebhookNotEnabledError(FabricError):
    """A webhook for a source that does not exist or has no ``webhook_secret_env``."""

    code = "DF-1112"
    status = 404
