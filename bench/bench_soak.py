"""The soak test's numbers: 16 clients x mixed batches against one service, items/s, batch latency, memory.

    .venv/bin/python -m bench.bench_soak          # sizes: RLVR_SOAK_CLIENTS, RLVR_SOAK_BATCHES, ... as the test

Runs exactly what tests/load/test_soak.py runs (the same service flags, batches and checks: every item right, in
order, nothing masked) and prints what the test does not assert: throughput, p50/p99 batch latency, and the
service tree's memory after the warm-up and after the soak.
"""

from __future__ import annotations

import statistics
import time

from tests.load.conftest import SANDBOXED, WORKERS, LoadService
from tests.load.test_soak import BATCHES, CACHE_SIZE, CLIENTS, WARMUP_BATCHES, _drive


def main() -> None:
    service = LoadService(*WORKERS, *SANDBOXED, "--cache-size", str(CACHE_SIZE))
    service.start()
    try:
        assert _drive(service, "warmup", WARMUP_BATCHES) == []
        warm_mb = service.rss_mb()
        timings: list[tuple[float, int]] = []
        started = time.perf_counter()
        assert _drive(service, "soak", BATCHES, timings) == []
        elapsed = time.perf_counter() - started
        soaked_mb = service.rss_mb()
    finally:
        service.stop()
    latencies = sorted(seconds for seconds, _ in timings)
    scored = sum(n for _, n in timings)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"{CLIENTS} clients x {BATCHES} mixed batches (math, format, language, code), {WARMUP_BATCHES} to warm up\n")
    print("| items | batches | items/s | batch p50 ms | batch p99 ms | memory after warm-up MB | after soak MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {scored:,} | {len(latencies):,} | {scored / elapsed:.1f} | {statistics.median(latencies) * 1000:.0f} "
        f"| {p99 * 1000:.0f} | {warm_mb:.0f} | {soaked_mb:.0f} |"
    )


if __name__ == "__main__":
    main()
