"""The pool outlives what runs its instances (``sandboxes._pool``): a slot that died idle is replaced before it
gets a job, and a pool whose instances cannot start (a Docker engine restarting) is down, failing jobs fast, only
until a start succeeds again. Stand-in runners here; test_dockerd_restart.py restarts a real engine."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from sandboxes import _pool
from sandboxes._pool import RUNNER_PROTOCOL, SlotPool
from sandboxes.base import Job, Run, RunStatus, SandboxError, SandboxJobFailed, SandboxLost
from sandboxes.config import SandboxConfig

READY = json.dumps({"ready": True, "protocol": RUNNER_PROTOCOL}).encode() + b"\n"
OK = {"status": "OK", "stdout": base64.b64encode(b"5\n").decode(), "stderr": ""}
JOB = Job(language="python", source="print(5)", runs=[Run()])


class Engine:
    """Starts stand-in runners while ``up``; ``restart()`` kills every one it started, as dockerd does."""

    def __init__(self) -> None:
        self.up = True
        self.started: list[Runner] = []

    async def start(self) -> Runner:
        if not self.up:
            raise SandboxError("no Docker engine reachable")
        runner = Runner()
        self.started.append(runner)
        return runner

    def restart(self) -> None:
        for runner in self.started:
            runner.dead = True


class Runner:
    def __init__(self) -> None:
        self.lines = [READY]
        self.dead = False
        self.jobs = 0

    def alive(self) -> bool:
        return not self.dead

    async def write_line(self, data: bytes) -> None:
        if not self.dead:
            self.jobs += 1
            self.lines.append(json.dumps({"compile": None, "runs": [OK], "dirty": False}).encode() + b"\n")

    async def read_line(self) -> bytes:
        if self.dead or not self.lines:
            raise EOFError("the runner is gone")
        return self.lines.pop(0)

    async def destroy(self) -> None:
        self.dead = True


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "RESTART_FIRST_DELAY_S", 0.01)
    monkeypatch.setattr(_pool, "RESTART_MAX_DELAY_S", 0.05)
    monkeypatch.setattr(_pool, "RESTART_GRACE_S", 0.1)


async def _pool_on(engine: Engine, size: int = 2) -> SlotPool:
    pool = SlotPool("stand-in", engine.start, SandboxConfig(pool_size=size), languages=["python"])
    await pool.start()
    return pool


async def _until(condition: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_slot_that_died_idle_is_replaced_before_it_gets_a_job() -> None:
    engine = Engine()
    pool = await _pool_on(engine)
    try:
        engine.restart()  # both idle slots die; the engine is back at once
        results = [await pool.run(JOB) for _ in range(3)]
        assert [result.runs[0].status for result in results] == [RunStatus.OK] * 3
        assert [runner.jobs for runner in engine.started[:2]] == [0, 0]  # the dead ones never got one
        assert pool.stats()["slots_died_idle"] == 2
    finally:
        await pool.close()


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param("short", id="back_before_the_slots_count_as_lost"),
        pytest.param("long", id="the_pool_is_down_then_back"),
    ],
)
async def test_a_pool_comes_back_when_its_engine_does(outage: str) -> None:
    engine = Engine()
    pool = await _pool_on(engine)
    try:
        engine.up = False
        engine.restart()
        waiting = asyncio.create_task(pool.run(JOB))  # finds the dead slots, waits for a fresh one
        await asyncio.sleep(0.03)  # a start or two fails meanwhile (a slot is lost after 0.1 s at the least)
        if outage == "long":
            with pytest.raises(SandboxError, match="failed to restart") as raised:
                await waiting
            assert not isinstance(raised.value, SandboxJobFailed | SandboxLost)
            with pytest.raises(SandboxError, match="failed to restart"):  # down: a new job fails fast
                await pool.run(JOB)
        engine.up = True
        await _until(lambda: pool.stats()["live"] == 2)
        if outage == "short":
            assert (await waiting).runs[0].status == RunStatus.OK
        results = await asyncio.gather(*(pool.run(JOB) for _ in range(4)))
        assert [result.runs[0].status for result in results] == [RunStatus.OK] * 4
        assert pool.stats()["idle"] == 2
    finally:
        await pool.close()


async def test_a_pool_that_closes_stops_trying_to_start_slots() -> None:
    engine = Engine()
    pool = await _pool_on(engine, size=1)
    engine.up = False
    engine.restart()
    with pytest.raises(SandboxError):
        await pool.run(JOB)
    await asyncio.wait_for(pool.close(), 5)
    started = len(engine.started)
    engine.up = True
    await asyncio.sleep(0.2)
    assert len(engine.started) == started
