"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["COUNTED", "Metrics"]

_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


# The keys of the executors' and the lifecycle's ``stats()`` that only grow (until a restart): exported as counters
# (``<prefix>_<key>_total``), so that rate() and increase() treat a restart as a reset; every other number is a gauge.
COUNTED = frozenset(
    {
        "jobs",
        "recycles",
        "slots_died_idle",
        "sandbox_errors",
        "runs_by_status",
        "compile_cache_hits",
        "compile_cache_misses",
        "compile_cache_waits",
        "compile_cache_evictions",
        "orphans_reaped",
        "kills",
        "died_idle",
        "refused_batches",
        "refused_client_limit",
        "cut_at_shutdown",
    }
)


class _StatsCollector(Collector):
    """Gauges, and counters for the keys in COUNTED, read from a ``stats()`` at scrape time; a dict value is one
    family labelled ``name``, and text is left out."""

    def __init__(self, prefix: str, stats: Callable[[], dict[str, Any] | None]) -> None:
        self._prefix = prefix
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats() or {}
        for key, value in stats.items():
            name, documentation = f"{self._prefix}_{key}", f"{self._prefix} {key.replace('_', ' ')}"
            family: CounterMetricFamily | GaugeMetricFamily
            kind = CounterMetricFamily if key in COUNTED else GaugeMetricFamily
            if isinstance(value, dict):
                family = kind(name, documentation, labels=["name"])
                for label, count in value.items():
                    family.add_metric([str(label)], count)
                yield family
            elif isinstance(value, int | float) and not isinstance(value, bool):
                yield kind(name, documentation, value=value)


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
