"""Prometheus metrics of one fabric (its own registry, rendered by prometheus-client)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


@dataclass
class ProductMetrics:
    """One product's metric children, looked up once (``labels()`` takes a lock each call)."""

    ok: Any
    latency: Any
    hits: Any
    misses: Any


class FabricMetrics:
    def __init__(self) -> None:
        self._products: dict[str, ProductMetrics] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("dataflow_fabric_requests", "Product requests served",
                                ["product", "status"], registry=r)
        self.latency = Histogram("dataflow_fabric_request_seconds", "Product request latency",
                                 ["product"], registry=r)
        self.cache_hits = Counter("dataflow_fabric_cache_hits", "Requests answered from cache",
                                  ["product"], registry=r)
        self.cache_misses = Counter("dataflow_fabric_cache_misses", "Requests that computed",
                                    ["product"], registry=r)
        self.refresh_seconds = Histogram("dataflow_fabric_refresh_seconds", "Product computation time",
                                         ["product"], registry=r)
        self.refresh_failures = Counter("dataflow_fabric_refresh_failures", "Failed computations",
                                        ["product"], registry=r)
        self.source_up = Gauge("dataflow_fabric_source_up", "1 when the source's circuit is not open",
                               ["source"], registry=r)
        self.source_circuit = Gauge("dataflow_fabric_source_circuit_state",
                                    "0 closed, 1 half-open, 2 open", ["source"], registry=r)
        self.source_failures = Gauge("dataflow_fabric_source_consecutive_failures",
                                     "Consecutive failed reads", ["source"], registry=r)

    def product(self, name: str) -> ProductMetrics:
        found = self._products.get(name)
        if found is None:
            found = self._products[name] = ProductMetrics(
                self.requests.labels(name, "200"), self.latency.labels(name),
                self.cache_hits.labels(name), self.cache_misses.labels(name))
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
