"""The Docker engine restarts under a running batch: the docker backend recovers without a restart of its own.

dockerd is stopped with SIGTERM (live-restore is off: every container dies with it) and started again the way
.ci/provision.sh starts it, while jobs are in flight and queued. Every job gets exactly one outcome: its right
answer, or an honest infrastructure failure (``SandboxLost``, or the pool's ``SandboxError`` while it is down),
never a verdict on the program (a failed run, or ``SandboxJobFailed``, which the reward retries once and then
holds against the program). Once the engine answers, the pool refills by itself and new jobs pass.

This restarts the machine's one engine: every other container on it dies too. It needs root and a dockerd that
writes /var/run/docker.pid; the engine is started again whatever the test's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandboxes.base import (
    Job,
    JobResult,
    Limits,
    Run,
    RunStatus,
    Sandbox,
    SandboxError,
    SandboxJobFailed,
)
from tests.conftest import missing_backend
from tests.sandboxes.conftest import TEST_CONFIG, close_and_check_clean, open_or_skip

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PIDFILE = Path("/var/run/docker.pid")
DOCKERD_LOG = os.environ.get("RLVR_DOCKERD_LOG", "/var/log/dockerd.log")
ENGINE_WAIT_S = 90.0
POOL_REFILL_S = 60.0
RUNNING, QUEUED = 2, 4  # on a pool of 2: two running (for long) when the engine goes, four queued behind them


def _engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def _dockerd_pid() -> int | None:
    """The running dockerd's pid, from its pidfile (checked against the process's name)."""
    try:
        pid = int(PIDFILE.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "dockerd" else None


def _wait(condition_met: Callable[[], bool], what: str, timeout_s: float = ENGINE_WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition_met():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s:.0f}s")
        time.sleep(0.2)


def _start_dockerd() -> None:
    """As .ci/provision.sh does: in the background, its own session, logging to DOCKERD_LOG."""
    subprocess.run(["sh", "-c", f'nohup dockerd >>"{DOCKERD_LOG}" 2>&1 &'], check=True, start_new_session=True)
    _wait(_engine_answers, "dockerd did not answer")


def _stop_dockerd() -> None:
    pid = _dockerd_pid()
    assert pid is not None, "no dockerd to stop"
    os.kill(pid, signal.SIGTERM)
    _wait(lambda: not Path(f"/proc/{pid}").exists(), "dockerd did not stop")


@contextlib.contextmanager
def engine_left_running() -> Iterator[None]:
    """Whatever happens inside, the engine answers afterwards."""
    try:
        yield
    finally:
        if not _engine_answers():
            pid = _dockerd_pid()
            if pid is not None:  # stopping, or still starting: let it finish
                with contextlib.suppress(TimeoutError):
                    _wait(lambda: not Path(f"/proc/{pid}").exists() or _engine_answers(), "dockerd")
            if not _engine_answers():
                _start_dockerd()


def _job(tag: int, sleep_s: float = 0.2) -> Job:
    return Job(
        language="python",
        source=f"import time\ntime.sleep({sleep_s})\nprint({tag} * 7)\n",
        runs=[Run()],
        limits=Limits(timeout_s=sleep_s + 10),
    )


def _honest(outcome: JobResult | BaseException, tag: int) -> bool:
    """The right answer, or a failure that says the sandbox broke and holds nothing against the program."""
    if isinstance(outcome, JobResult):
        return [(run.status, run.stdout) for run in outcome.runs] == [(RunStatus.OK, f"{tag * 7}\n")]
    return isinstance(outcome, SandboxError) and not isinstance(outcome, SandboxJobFailed)


async def _until_refilled(sandbox: Sandbox, size: int) -> None:
    async with asyncio.timeout(POOL_REFILL_S):
        while sandbox.stats()["live"] < size:
            await asyncio.sleep(0.2)


async def test_a_restarted_engine_fails_no_job_wrongly_and_the_pool_recovers() -> None:
    if os.geteuid() != 0 or _dockerd_pid() is None:
        missing_backend("restarting dockerd needs root and a dockerd with /var/run/docker.pid")
    config = TEST_CONFIG.model_copy(update={"pool_size": 2})
    sandbox = await open_or_skip("docker", config)
    try:
        with engine_left_running():
            first = await sandbox.run(_job(1))
            assert _honest(first, 1) and isinstance(first, JobResult)
            running = [asyncio.create_task(sandbox.run(_job(tag, sleep_s=30))) for tag in range(10, 10 + RUNNING)]
            await asyncio.sleep(0.5)  # both slots busy
            queued = [asyncio.create_task(sandbox.run(_job(tag))) for tag in range(20, 20 + QUEUED)]
            batch = running + queued
            await asyncio.to_thread(_stop_dockerd)
            await asyncio.to_thread(_start_dockerd)
            outcomes = await asyncio.wait_for(asyncio.gather(*batch, return_exceptions=True), POOL_REFILL_S)
        assert len(outcomes) == RUNNING + QUEUED
        tags = [*range(10, 10 + RUNNING), *range(20, 20 + QUEUED)]
        dishonest = [(tag, repr(o)) for tag, o in zip(tags, outcomes, strict=True) if not _honest(o, tag)]
        assert dishonest == [], "a job got a verdict the restart caused"
        # the engine killed the running ones: lost, and said so (the queued ones ran late, or failed as the pool)
        assert [type(o).__name__ for o in outcomes[:RUNNING]] == ["SandboxLost"] * RUNNING
        await _until_refilled(sandbox, config.pool_size)
        after = await asyncio.gather(*(sandbox.run(_job(tag)) for tag in range(100, 104)))
        assert all(_honest(result, tag) for tag, result in enumerate(after, 100))
    finally:
        await close_and_check_clean(sandbox)
