"""Checkers that misbehave on purpose, to test the worker pool's hard deadline and crash handling.

``stuck`` spins in a loop with SIGALRM blocked, like sympy stuck in C where no signal reaches (and sleeps a
little on "slow"); ``crash`` kills its own process with SIGSEGV. Both only misbehave when the completion asks
them to.
"""

from __future__ import annotations

import os
import signal
import time

from pydantic import Field

from rewards import Checker, CheckerSettings, CheckResult, Sample, Status


class Settings(CheckerSettings):
    deadline: float = Field(0.5, description="Soft time-out the pool is told about.")

    def deadline_s(self) -> float:
        return self.deadline


def _stuck(sample: Sample, settings: Settings) -> CheckResult:
    if sample.completion == "slow":
        time.sleep(0.3)
    if sample.completion == "hang":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            pass
    return CheckResult(score=float(len(sample.completion)), status=Status.OK, details={"pid": os.getpid()})


def _crash(sample: Sample, settings: Settings) -> CheckResult:
    if sample.completion == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    return CheckResult(score=1.0, status=Status.OK)


def _key(sample: Sample, settings: Settings) -> str:
    return sample.completion


STUCK = Checker("stuck", "spins when asked to", Settings, _key, check=_stuck, hang_score=0.0)
CRASH = Checker("crash", "segfaults when asked to", Settings, _key, check=_crash)
CRASH_BLAMED = Checker(
    "crash_blamed", "segfaults; a crash is the completion's", Settings, _key, check=_crash, hang_score=0.0
)
STUCK_OURS = Checker("stuck_ours", "spins; a hang is our fault", Settings, _key, check=_stuck)
