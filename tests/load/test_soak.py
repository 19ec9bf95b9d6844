"""Soak: many trainers' clients at once against one real service, mixed batches of all four checkers, and no
item lost, reordered, wrongly scored or masked, and no memory that stays behind.

Sizes (environment): RLVR_SOAK_CLIENTS (16 threads, each its own RewardClient), RLVR_SOAK_BATCHES (mixed batches
per client after the warm-up), RLVR_SOAK_WARMUP_BATCHES, RLVR_SOAK_BATCH_SIZE (largest batch; they vary from 8).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr import ItemResult, RewardClient
from tests.load.conftest import BATCH_SPEC, SANDBOXED, LoadService, check, env_int, items, mixed_batch

pytestmark = [pytest.mark.load, pytest.mark.docker, pytest.mark.slow]

CLIENTS = env_int("RLVR_SOAK_CLIENTS", 16)
BATCHES = env_int("RLVR_SOAK_BATCHES", 40)
WARMUP_BATCHES = env_int("RLVR_SOAK_WARMUP_BATCHES", 4)
BATCH_SIZE = env_int("RLVR_SOAK_BATCH_SIZE", 16)

# The cross-batch result cache is bounded by design (LRU, RLVR_CACHE_SIZE, 100,000 entries by default): it grows
# until full, which a soak of a few thousand items would read as a leak. A small cache is full (at its steady
# size) after the warm-up, so whatever grows after it is not the cache.
CACHE_SIZE = 256

# Memory after the soak may exceed memory after the warm-up by 10%, plus this much: the tree is five Python
# processes (server, forkserver, resource tracker, 2 workers), and CPython's and glibc's allocators keep freed
# arenas, so each reading moves by a few MB on a service that leaks nothing. A leak is far above it: 40 batches x
# 16 clients are ~7,700 items (the default), and ~7 kB kept per item (a result, a request body) is ~54 MB, past
# the bound (10% of the ~290 MB tree + 20 MB = ~49 MB); with RLVR_SOAK_BATCHES=100 (~19,000 items), ~3 kB.
SLACK_MB = 20.0

PHASES = ["warmup", "soak"]  # every phase's items are new to the cache


def _drive(
    service: LoadService, phase: str, batches: int, timings: list[tuple[float, int]] | None = None
) -> list[ItemResult]:
    """CLIENTS threads, each with its own client, each scoring `batches` mixed batches one after another;
    every batch is checked as it comes back. Returns the masked items; ``timings`` gets (seconds, items) per
    batch (bench/bench_soak.py reports them)."""

    failed = threading.Event()  # the first failure stops every client (no waiting out the whole soak)

    def client_loop(client_index: int) -> list[ItemResult]:
        masked: list[ItemResult] = []
        # batch_size 8: the larger batches go out as two concurrent requests that the client merges back.
        with RewardClient(service.url, rewards=BATCH_SPEC, batch_size=8, concurrency=2) as client:
            for batch in range(batches):
                if failed.is_set():
                    break
                size = 8 + (client_index + batch) % (BATCH_SIZE - 7)
                seed = PHASES.index(phase) * 1_000_000 + client_index * 10_000 + batch
                cases = mixed_batch(f"{phase}-c{client_index}-b{batch}", seed, size)
                try:
                    started = time.perf_counter()
                    result = client.score(items(cases))
                    if timings is not None:
                        timings.append((time.perf_counter() - started, len(cases)))
                    masked += check(result, cases)
                except BaseException:
                    failed.set()
                    raise
        return masked

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [item for masked in pool.map(client_loop, range(CLIENTS)) for item in masked]


def test_sixteen_clients_of_mixed_batches_get_every_item_right_and_memory_stays_flat(
    start: Callable[..., LoadService],
) -> None:
    service = start(*SANDBOXED, "--cache-size", str(CACHE_SIZE))
    assert _drive(service, "warmup", WARMUP_BATCHES) == []
    warm_mb = service.rss_mb()
    assert _drive(service, "soak", BATCHES) == []
    soaked_mb = service.rss_mb()
    assert soaked_mb <= 1.10 * warm_mb + SLACK_MB, f"memory grew from {warm_mb:.0f} MB to {soaked_mb:.0f} MB"
    stats = service.readyz()
    assert stats["workers"]["kills"] == 0
    assert stats["sandbox"]["stats"]["sandbox_errors"] == 0
