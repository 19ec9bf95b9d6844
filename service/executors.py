"""The ways the engine runs checks, behind one interface: the CPU worker pool and the sandbox pool.

Each executor owns its capacity, its admission rule and the one place where its failures become results:

- ``admit(jobs)`` is called for a whole batch before any of its work starts. It either admits every job or
  raises ``Overloaded`` (the batch is refused whole, with a ``Retry-After`` hint, and nothing of it runs). An
  admitted job is never refused later: it waits for capacity.
- ``run(work)`` answers one ``CheckResult`` per unit of work, in order, and never raises for an item: an
  infrastructure failure is retried once on a fresh worker or sandbox (the worker pool re-queues a task whose
  worker died; the code checker runs a job again on a fresh sandbox) and only then becomes a masked result.

The CPU executor never refuses a batch: its queue is bounded by the request limits, and a batch waits for
workers. The sandbox executor admits a batch while the code jobs already admitted and waiting for a sandbox
(beyond the sandboxes busy with jobs) leave room under ``queue_limit``; a batch that finds nothing admitted is
always taken, however large. ``Overloaded`` is the only way overload shows, on every front door: ``/v1/score``,
``/get_reward`` and ``/verify`` answer 429, ``/v1/run`` 429, SandboxFusion's ``/run_code`` 504 (the status
veRL's client retries), each with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from rewards import Checker, CheckerSettings, CheckResult, FailureKind, Sample, Status
from sandboxes.base import Job, JobResult, Sandbox, SandboxError, SandboxOverloaded, SandboxUnavailable
from service.pool import PoolError, TaskSpec, WorkerPool

__all__ = ["CpuExecutor", "Executor", "NoSandbox", "Overloaded", "SandboxExecutor", "Work"]

log = logging.getLogger("rlvr.engine")


class Overloaded(RuntimeError):
    """An executor refused a batch whole; nothing of it ran. Retry after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NoSandbox(RuntimeError):
    """A raw job (``run_job``) was given to an engine without a sandbox; the message says why there is none."""


@dataclass(frozen=True)
class Work:
    """One check to run: a checker with its settings on one sample."""

    checker: Checker
    settings: CheckerSettings
    sample: Sample


class Executor(Protocol):
    name: str  # the ``Checker.runs_in`` value of the checkers it runs

    def admit(self, jobs: int) -> AbstractContextManager[None]:
        """Hold ``jobs`` of capacity for one batch while the block runs; raise ``Overloaded`` to refuse it."""
        ...

    async def run(self, work: Sequence[Work]) -> list[CheckResult]: ...

    def stats(self) -> dict[str, Any]:
        """Numbers for metrics and health pages only; no decision is taken from them."""
        ...

    async def close(self) -> None: ...


def _masked(kind: str, reason: str, status: str = Status.ERROR) -> CheckResult:
    return CheckResult.unjudgeable(status, kind, reason)


class CpuExecutor:
    """Checkers that run in worker processes (math, format, language)."""

    name = "cpu"

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    @contextmanager
    def admit(self, jobs: int) -> Iterator[None]:
        yield  # never refused: the batch waits for workers

    async def run(self, work: Sequence[Work]) -> list[CheckResult]:
        specs = [
            TaskSpec(w.checker.name, w.settings.model_dump_json(), w.sample, w.settings.deadline_s()) for w in work
        ]
        try:
            return await self.pool.run(specs)
        except PoolError as exc:
            log.error("worker pool failed: %s", exc)
            return [_masked(FailureKind.INTERNAL_ERROR, f"the worker pool failed: {exc}")] * len(work)

    def stats(self) -> dict[str, Any]:
        return self.pool.stats()

    async def close(self) -> None:
        await self.pool.close()


class SandboxExecutor:
    """Checkers that run programs in a sandbox (code), and raw jobs (``/run_code``, ``/v1/run``).

    At most ``sandbox.size`` jobs are in the sandbox at once, over every batch; the rest wait here, in
    admission order, so the sandbox's own queue never fills.
    """

    name = "sandbox"

    def __init__(
        self, sandbox: Sandbox | None, *, reason: str = "", queue_limit: int = 4096, retry_after_s: float = 1.0
    ) -> None:
        self.sandbox = sandbox
        self.reason = reason or "no sandbox backend configured"
        self.queue_limit = queue_limit
        self.retry_after_s = retry_after_s
        self.capacity = sandbox.size if sandbox is not None else 1
        self._slots = asyncio.Semaphore(self.capacity)
        self._admitted = 0  # jobs of admitted batches that have not finished
        self._refused = 0

    @contextmanager
    def admit(self, jobs: int) -> Iterator[None]:
        waiting = self._admitted + jobs - self.capacity
        if self.sandbox is not None and self._admitted > 0 and waiting > self.queue_limit:
            self._refused += 1
            message = (
                f"the sandbox queue is full: {self._admitted} code jobs admitted for {self.capacity} sandboxes, "
                f"{jobs} more would pass the limit of {self.queue_limit} waiting (RLVR_SANDBOX_QUEUE_LIMIT)"
            )
            raise Overloaded(message, self.retry_after_s)
        self._admitted += jobs
        try:
            yield
        finally:
            self._admitted -= jobs

    async def run(self, work: Sequence[Work]) -> list[CheckResult]:
        return list(await asyncio.gather(*(self._check(unit) for unit in work)))

    async def run_job(self, job: Job) -> JobResult:
        """One raw job (admitted by the caller): SandboxError subclasses reach the caller, who answers them."""
        if self.sandbox is None:
            raise NoSandbox(self.reason)
        async with self._slots:
            return await self.sandbox.run(job)

    async def _check(self, unit: Work) -> CheckResult:
        if self.sandbox is None:
            return _masked(FailureKind.NO_SANDBOX, self.reason, Status.NO_SANDBOX)
        check = unit.checker.sandbox_check
        assert check is not None, f"{unit.checker.name} does not run in a sandbox"
        try:
            async with self._slots:
                return await check(unit.sample, unit.settings, self.sandbox)
        except SandboxUnavailable as exc:
            return _masked(FailureKind.NO_SANDBOX, str(exc), Status.NO_SANDBOX)
        except SandboxOverloaded as exc:  # cannot happen while every job passes _slots; ours if it does
            return _masked(FailureKind.INTERNAL_ERROR, f"the sandbox refused an admitted job: {exc}")
        except SandboxError as exc:
            return _masked(FailureKind.SANDBOX_ERROR, str(exc))
        except Exception as exc:  # a bug of ours while judging one item: its status, never its batch's
            log.exception("%s checker failed", unit.checker.name)
            return _masked(FailureKind.INTERNAL_ERROR, f"{unit.checker.name}: judging failed ({type(exc).__name__})")

    def stats(self) -> dict[str, Any]:
        own = {"admitted": self._admitted, "capacity": self.capacity, "refused_batches": self._refused}
        return {**(self.sandbox.stats() if self.sandbox is not None else {}), **own}

    async def close(self) -> None:
        if self.sandbox is not None:
            await self.sandbox.close()
