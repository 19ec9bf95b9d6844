"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _StatsCollector(Collector):
    """Gauges read from a pool's ``stats()`` at scrape time."""

    def __init__(self, prefix: str, stats: Callable[[], dict[str, Any] | None]) -> None:
        self._prefix = prefix
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats() or {}
        for key, value in stats.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            yield GaugeMetricFamily(f"{self._prefix}_{key}", f"{self._prefix} {key.replace('_', ' ')}", value=value)
        for key, value in stats.items():
            if isinstance(value, dict):
                family = GaugeMetricFamily(f"{self._prefix}_{key}", f"{self._prefix} {key}", labels=["name"])
                for label, count in value.items():
                    family.add_metric([str(label)], count)
                yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.items = Counter(
            "rlvr_items", "Component results by checker and status", ["checker", "status"], registry=self.registry
        )
        self.scored_items = Counter("rlvr_scored_items", "Items answered, masked or not", registry=self.registry)
        self.masked_items = Counter(
            "rlvr_masked_items", "Items answered mask: true, by failure kind", ["failure_kind"], registry=self.registry
        )
        self.cache = Counter("rlvr_cache", "Result cache lookups", ["result"], registry=self.registry)
        self.stage = Histogram(
            "rlvr_stage_seconds",
            "Latency per stage of a request",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.worker_kills = Counter(
            "rlvr_worker_kills", "Worker processes killed past a hard deadline", ["checker"], registry=self.registry
        )

    def watch(self, prefix: str, stats: Callable[[], dict[str, Any] | None]) -> None:
        self.registry.register(_StatsCollector(prefix, stats))
