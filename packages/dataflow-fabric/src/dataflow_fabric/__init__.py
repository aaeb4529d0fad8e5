"""DataFlow's data fabric: external sources, data products, and their HTTP endpoints.

Use it as ``dataflow.fabric``; ``db.source``, ``db.product``, ``db.start`` and
``db.stop`` arrive on every DataFlow instance through this package's plugin.
"""

from __future__ import annotations

from .app import FabricApp, create_app
from .breaker import CircuitBreaker
from .config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    CircuitBreakerConfig,
    CloudSourceConfig,
    DatabaseSourceConfig,
    FileSourceConfig,
    RestSourceConfig,
    SourceBehaviour,
    StalenessPolicy,
    StreamSourceConfig,
)
from .errors import (
    AddressRefusedError,
    CircuitOpenError,
    FabricConfigError,
    FabricError,
    ParameterError,
    ProductFailedError,
    SourceError,
    StaleDataError,
    TenantMissingError,
    UnknownProductError,
    WebhookNotEnabledError,
    WebhookRejectedError,
)
from .products import ProductContext
from .runtime import Fabric, fabric_of
from .server import FabricServer
from .source import Source
from .ssrf import AddressPolicy
from .webhooks import sign as sign_webhook

__all__ = [
    "AddressPolicy", "AddressRefusedError", "ApiKeyAuth", "BasicAuth", "BearerAuth", "CircuitBreaker",
    "CircuitBreakerConfig", "CloudSourceConfig", "CircuitOpenError", "DatabaseSourceConfig",
    "Fabric", "FabricApp",
    "FabricConfigError", "FabricError", "FabricServer", "FileSourceConfig", "ParameterError",
    "ProductContext", "ProductFailedError", "RestSourceConfig", "Source", "SourceBehaviour", "SourceError",
    "StaleDataError", "StreamSourceConfig", "StalenessPolicy", "TenantMissingError",
    "UnknownProductError", "create_app",
    "WebhookNotEnabledError", "WebhookRejectedError", "fabric_of", "sign_webhook",
]
