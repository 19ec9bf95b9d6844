"""The worker pool kills what hangs, survives what crashes, and answers every task exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from rewards import Sample
from service.pool import TaskSpec, WorkerPool

REGISTRY = {
    "stuck": "tests.service.misbehaving_checkers:STUCK",
    "stuck_ours": "tests.service.misbehaving_checkers:STUCK_OURS",
    "crash": "tests.service.misbehaving_checkers:CRASH",
    "crash_blamed": "tests.service.misbehaving_checkers:CRASH_BLAMED",
}


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(2, chunk_size=4, grace_s=0.5, registry=REGISTRY)
    await pool.start()
    yield pool
    await pool.close()


def spec(checker: str, completion: str) -> TaskSpec:
    return TaskSpec(checker, '{"deadline": 0.5}', Sample(completion=completion), 0.5)


CASES = [
    pytest.param("stuck", "timeout", 0.0, None, id="hang_blamed_on_completion_scores_zero"),
    pytest.param("stuck_ours", "timeout", None, "internal_timeout", id="hang_blamed_on_us_is_masked"),
]


@pytest.mark.parametrize(("checker", "status", "score", "kind"), CASES)
async def test_a_hung_item_is_killed_and_only_it_is_marked(
    pool: WorkerPool, checker: str, status: str, score: float | None, kind: str | None
) -> None:
    completions = ["a", "bb", "hang", "cccc", "ddddd", "e", "ff", "ggg"]
    results = await pool.run([spec(checker, c) for c in completions])
    assert len(results) == len(completions)
    for completion, result in zip(completions, results, strict=True):
        if completion == "hang":
            assert (result.status, result.score, result.failure_kind) == (status, score, kind)
        else:
            assert (result.status, result.score) == ("ok", float(len(completion)))
    assert pool.kills == 1
    again = await pool.run([spec(checker, "zz")])
    assert again[0].score == 2.0


async def test_an_item_that_crashes_two_workers_is_masked(pool: WorkerPool) -> None:
    results = await pool.run([spec("crash", c) for c in ["x", "crash", "y", "z"]])
    assert [r.status for r in results] == ["ok", "error", "ok", "ok"]
    assert results[1].failure_kind == "internal_error" and results[1].score is None
    assert "two crash worker processes died" in (results[1].failure_reason or "")
    assert pool.kills == 2  # it was given a second, fresh worker before it was masked


async def test_a_completion_that_crashes_the_checker_twice_scores_its_hang_score_not_a_mask(pool: WorkerPool) -> None:
    # A policy must not escape a wrong score by making math-verify crash: a reproducible crash is the completion's.
    results = await pool.run([spec("crash_blamed", c) for c in ["x", "crash"]])
    assert [(r.score, r.masked) for r in results] == [(1.0, False), (0.0, False)]
    assert results[1].details == {"reason": "two crash_blamed worker processes died on this item", "worker_deaths": 2}
    assert pool.kills == 2
    again = await pool.run([spec("crash", c) for c in "uvw"])
    assert [r.status for r in again] == ["ok"] * 3


async def test_many_hangs_in_one_batch_all_answered(pool: WorkerPool) -> None:
    completions = ["hang", "a", "hang", "b", "hang", "c"]
    results = await pool.run([spec("stuck", c) for c in completions])
    assert [r.status for r in results] == ["timeout", "ok", "timeout", "ok", "timeout", "ok"]
    assert pool.kills == 3


async def test_a_worker_killed_from_outside_mid_batch_costs_no_item(pool: WorkerPool) -> None:
    # An OOM kill or an operator's kill -9 is not the item's doing: its task runs again on a fresh worker.
    batch = asyncio.ensure_future(pool.run([spec("stuck", c) for c in ["slow"] * 6]))
    while pool.stats()["busy"] == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    victims = [w.process.pid for w in pool._workers if w is not None]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    results = await batch
    assert [(r.status, r.score) for r in results] == [("ok", 4.0)] * 6
    assert pool.kills == len(victims)


async def test_a_worker_killed_while_idle_is_replaced_and_counted(pool: WorkerPool) -> None:
    assert [r.score for r in await pool.run([spec("stuck", c) for c in ["a", "bb"]])] == [1.0, 2.0]  # both spawned
    victims = [w.process for w in pool._workers if w is not None]
    for victim in victims:
        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.to_thread(victim.join, 30)  # dead before the next batch reaches it
    results = await pool.run([spec("stuck", c) for c in ["ccc", "dddd", "eeeee", "ffffff"]])
    assert [(r.status, r.score) for r in results] == [("ok", 3.0), ("ok", 4.0), ("ok", 5.0), ("ok", 6.0)]
    assert (pool.kills, pool.died_idle) == (0, len(victims))


async def test_close_ends_a_driver_that_swallowed_a_cancel(pool: WorkerPool) -> None:
    """Python 3.11's wait_for can swallow a cancel that races with a worker's answer: close() must not hang."""

    async def swallows_one_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # as wait_for does when the answer arrived in the same loop turn
        await asyncio.sleep(3600)

    pool._drivers.append(asyncio.create_task(swallows_one_cancel()))
    await asyncio.sleep(0)
    await asyncio.wait_for(pool.close(), timeout=30)  # bounds a hang; not a timing assertion
    assert all(driver.done() for driver in pool._drivers)
