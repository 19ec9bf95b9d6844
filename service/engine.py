"""The scoring engine under every front door: samples and plans in, one outcome per item and group statistics out.

It knows nothing of HTTP. The routes, the CLI and the tests use it; so can a script that scores a dataset::

    async with Engine(Settings(workers=4)) as engine:
        scored = await engine.score(items, profile="r1-math")

    with SyncEngine(Settings()) as engine:          # the same, for code without an event loop
        scored = engine.score(items, rewards={"math": {}})

The path of a batch (``run``): each (item, checker) component is settled at once when it can be (an item
over a per-item limit, a checker that cannot prepare it), found in the cross-batch cache, joined to an identical
component of the same batch, or becomes one unit of work for the executor its checker runs in
(``Checker.runs_in``). Every executor with work admits the batch before any work starts, or the batch is
refused whole with ``Overloaded`` (see ``service.executors``). Components combine into a reward by their
weights; a masked component with a non-zero weight masks its item.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rewards import CheckResult, FailureKind, Sample, Status
from rlvr.types import GroupStats
from rlvr.types import group_stats as rlvr_group_stats
from sandboxes.base import Job, JobResult, Sandbox, SandboxError
from service.executors import CpuExecutor, Executor, NoSandbox, Overloaded, SandboxExecutor, Work
from service.limits import code_too_long
from service.metrics import Metrics
from service.models import ScoreItem, SpecOverrides
from service.pool import WorkerPool
from service.settings import Settings
from service.specs import Plan, Planned, Resolver, load_profiles

__all__ = ["Engine", "GroupStats", "ItemOutcome", "NoSandbox", "Overloaded", "ResultCache", "Scored", "SyncEngine"]

T = TypeVar("T")


@dataclass(frozen=True)
class ItemOutcome:
    reward: float | None  # None: masked
    mask: bool
    failure_kind: str | None
    failure_reason: str | None
    components: dict[str, CheckResult]


@dataclass(frozen=True)
class Scored:
    items: list[ItemOutcome]
    groups: dict[str, GroupStats] = field(default_factory=dict)


class ResultCache:
    """Bounded LRU of component results keyed by a digest of (checker, settings, reference, work key)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, CheckResult] = OrderedDict()

    def get(self, key: bytes) -> CheckResult | None:
        result = self._entries.get(key)
        if result is not None:
            self._entries.move_to_end(key)
        return result

    def put(self, key: bytes, result: CheckResult) -> None:
        # A time-out may be the machine's load, a masked result may be our own passing failure: judge them again.
        if self.size == 0 or result.failure_kind is not None or result.status == Status.TIMEOUT:
            return
        self._entries[key] = result
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


# Executors whose results depend only on their input: their results are cached across batches. A sandbox's
# depend on timing (TLE), so code is judged again in each batch (identical items of one batch still run once).
_CACHED_EXECUTORS = frozenset({"cpu"})
_METRIC_PREFIX = {"cpu": "rlvr_pool", "sandbox": "rlvr_sandbox"}


@dataclass
class _Unit:
    """One unique piece of work and the (item, checker) slots waiting for its result."""

    key: bytes
    work: Work
    slots: list[tuple[int, str]]


class Engine:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        executors: Sequence[Executor] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``executors`` replace the worker and sandbox pools that ``start`` would open; each runs the checkers
        whose ``runs_in`` is its ``name``."""
        self.settings = settings or Settings()
        self.metrics = metrics or Metrics()
        self.resolver = Resolver(load_profiles(self.settings.profiles, self.settings.default_profile))
        self.cache = ResultCache(self.settings.cache_size)
        self.executors: dict[str, Executor] = {executor.name: executor for executor in executors or ()}
        self._opened = executors is None
        self.started = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._opened:
            pool = WorkerPool(
                self.settings.workers,
                chunk_size=self.settings.chunk_size,
                grace_s=self.settings.hard_grace_s,
                on_kill=lambda checker: self.metrics.worker_kills.labels(checker).inc(),
            )
            await pool.start()
            self.executors["cpu"] = CpuExecutor(pool)
            self.executors["sandbox"] = await _sandbox_executor(self.settings)
        for name, executor in self.executors.items():
            self.metrics.watch(_METRIC_PREFIX.get(name, f"rlvr_{name}"), executor.stats)
        self.started = True

    async def close(self) -> None:
        self.started = False
        if self._opened:
            await asyncio.gather(*(executor.close() for executor in self.executors.values()))

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def profiles(self) -> dict[str, Any]:
        return self.resolver.profiles

    @property
    def sandbox(self) -> Sandbox | None:
        executor = self.executors.get("sandbox")
        return executor.sandbox if isinstance(executor, SandboxExecutor) else None

    @property
    def sandbox_reason(self) -> str:
        executor = self.executors.get("sandbox")
        return executor.reason if isinstance(executor, SandboxExecutor) else "no sandbox executor"

    # -- scoring ---------------------------------------------------------------------------------------------

    async def score(
        self,
        items: Sequence[ScoreItem | Mapping[str, Any]],
        *,
        rewards: SpecOverrides | None = None,
        profile: str | None = None,
    ) -> Scored:
        """Score items given as ``/v1/score`` items (dicts or ``ScoreItem``) with a spec, a profile or both.

        Raises pydantic's ValidationError for a malformed item, ``SpecError`` for a bad spec and ``Overloaded``
        when the batch is refused; otherwise every item gets exactly one outcome, in order."""
        parsed = [item if isinstance(item, ScoreItem) else ScoreItem.model_validate(item) for item in items]
        plans = self.resolver.resolve(parsed, rewards=rewards, profile=profile)
        return await self.run([sample_of(item) for item in parsed], plans, [item.group for item in parsed])

    async def run(
        self, samples: Sequence[Sample], plans: Sequence[Plan], groups: Sequence[str | None] | None = None
    ) -> Scored:
        """Score resolved work: one outcome per sample, in order, and statistics per group."""
        started = time.perf_counter()
        results: list[dict[str, CheckResult]] = [{} for _ in samples]
        units = self._plan_work(samples, plans, results)
        self.metrics.stage.labels("plan").observe(time.perf_counter() - started)
        with ExitStack() as admitted:
            for name, queue in units.items():
                admitted.enter_context(self.executors[name].admit(len(queue)))
            await asyncio.gather(*(self._execute(name, queue, results) for name, queue in units.items()))
        outcomes = [_outcome(plan, res) for plan, res in zip(plans, results, strict=True)]
        for item_results in results:
            for name, result in item_results.items():
                self.metrics.items.labels(name, result.status).inc()
        self.metrics.scored_items.inc(len(outcomes))
        for outcome in outcomes:
            if outcome.mask:
                self.metrics.masked_items.labels(outcome.failure_kind or "unknown").inc()
        self.metrics.stage.labels("total").observe(time.perf_counter() - started)
        return Scored(outcomes, group_stats(groups or [None] * len(samples), outcomes))

    async def run_job(self, job: Job) -> JobResult:
        """One raw program run (``/run_code``, ``/v1/run``), admitted like a batch of one code job.

        Raises ``Overloaded``, ``NoSandbox``, ``UnknownLanguage`` or a ``SandboxError`` for the caller to answer."""
        executor = self.executors.get("sandbox")
        if not isinstance(executor, SandboxExecutor):
            raise NoSandbox("no sandbox executor")
        with executor.admit(1):
            return await executor.run_job(job)

    async def run_jobs(self, jobs: Sequence[Job]) -> list[JobResult | SandboxError | ValueError]:
        """Several raw jobs admitted together; a job's own failure (a SandboxError, an unknown language) is
        returned in its place."""
        executor = self.executors.get("sandbox")
        if not isinstance(executor, SandboxExecutor):
            raise NoSandbox("no sandbox executor")
        sandbox = executor

        async def one(job: Job) -> JobResult | SandboxError | ValueError:
            try:
                return await sandbox.run_job(job)
            except (SandboxError, ValueError) as exc:
                return exc

        with executor.admit(len(jobs)):
            return list(await asyncio.gather(*(one(job) for job in jobs)))

    def _plan_work(
        self, samples: Sequence[Sample], plans: Sequence[Plan], results: list[dict[str, CheckResult]]
    ) -> dict[str, list[_Unit]]:
        units: dict[str, list[_Unit]] = {}
        by_key: dict[bytes, _Unit] = {}
        for index, (sample, plan) in enumerate(zip(samples, plans, strict=True)):
            for name, planned in plan.items():
                settled = self._settled(sample, planned)
                if settled is not None:
                    results[index][name] = settled
                    continue
                executor = planned.checker.runs_in
                key = _work_key(sample, planned)
                if isinstance(key, CheckResult):
                    results[index][name] = key
                    continue
                hit = self.cache.get(key) if executor in _CACHED_EXECUTORS else None
                self.metrics.cache.labels("hit" if hit is not None else "dedup" if key in by_key else "miss").inc()
                if hit is not None:
                    results[index][name] = hit
                elif key in by_key:
                    by_key[key].slots.append((index, name))
                else:
                    unit = by_key[key] = _Unit(key, Work(planned.checker, planned.settings, sample), [(index, name)])
                    units.setdefault(executor, []).append(unit)
        return units

    def _settled(self, sample: Sample, planned: Planned) -> CheckResult | None:
        """A component's result known before any work: an item over a service limit, or no executor for it."""
        too_long = self._program_too_long(sample, planned)
        if too_long is not None:
            return too_long
        tests, limit = sample.tests, self.settings.max_tests
        if planned.checker.reads_tests and isinstance(tests, Sequence) and len(tests) > limit:
            reason = f"{len(tests)} tests, more than the service's limit of {limit} (RLVR_MAX_TESTS)"
            return CheckResult.unjudgeable(Status.INVALID_ITEM, FailureKind.INVALID_ITEM, reason, field="tests")
        if planned.checker.runs_in not in self.executors:
            reason = f"{planned.checker.name}: no {planned.checker.runs_in} executor in this engine"
            return CheckResult.unjudgeable(Status.ERROR, FailureKind.INTERNAL_ERROR, reason)
        return None

    def _program_too_long(self, sample: Sample, planned: Planned) -> CheckResult | None:
        """A completion too large to run in a sandbox is the completion's doing: it scores what failing every test
        scores (0 in every code mode), never a mask, or a policy could dodge a wrong answer by writing a huge one."""
        if planned.checker.runs_in != "sandbox":
            return None
        if (too_long := code_too_long(sample.completion, self.settings.max_code_bytes)) is None:
            return None
        reason = f"a completion of {too_long}"
        return CheckResult(score=0.0, status=Status.OK, details={"verdict": "too_long", "reason": reason})

    async def _execute(self, name: str, units: list[_Unit], results: list[dict[str, CheckResult]]) -> None:
        started = time.perf_counter()
        outcomes = await self.executors[name].run([unit.work for unit in units])
        for unit, result in zip(units, outcomes, strict=True):
            if name in _CACHED_EXECUTORS:
                self.cache.put(unit.key, result)
            for index, checker in unit.slots:
                results[index][checker] = result
        self.metrics.stage.labels(name).observe(time.perf_counter() - started)


class SyncEngine:
    """An ``Engine`` on an event loop of its own, in a background thread, for code that has none."""

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        self.engine = Engine(settings, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rlvr-engine", daemon=True)

    def __enter__(self) -> SyncEngine:
        self._thread.start()
        self._call(self.engine.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call(self.engine.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def score(
        self,
        items: Sequence[ScoreItem | Mapping[str, Any]],
        *,
        rewards: SpecOverrides | None = None,
        profile: str | None = None,
    ) -> Scored:
        return self._call(self.engine.score(items, rewards=rewards, profile=profile))

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


async def _sandbox_executor(settings: Settings) -> SandboxExecutor:
    config = settings.sandbox
    if config.backend == "none":
        reason = "code sandboxes are disabled (RLVR_SANDBOX_BACKEND=none)"
        return SandboxExecutor(None, reason=reason)
    from sandboxes.select import open_sandbox

    try:
        sandbox = await open_sandbox(config.backend, config)
    except SandboxError as exc:
        return SandboxExecutor(None, reason=str(exc))
    return SandboxExecutor(sandbox, queue_limit=config.queue_limit, retry_after_s=config.retry_after_s)


def sample_of(item: ScoreItem) -> Sample:
    tests = tuple(item.tests) if item.tests is not None else None
    return Sample(item.completion, item.prompt, item.reference, item.language, tests)


def _digest(*parts: str | None) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        data = b"\x00" if part is None else part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


def _work_key(sample: Sample, planned: Planned) -> bytes | CheckResult:
    checker, settings = planned.checker, planned.settings
    try:
        key = checker.work_key(sample, settings)
    except Exception as exc:  # a checker's own failure: masked, the batch goes on
        reason = f"{checker.name}: could not prepare the item ({type(exc).__name__})"
        return CheckResult.unjudgeable(Status.ERROR, FailureKind.INTERNAL_ERROR, reason)
    return _digest(checker.name, settings.cache_token, sample.reference, key)


def _outcome(plan: Plan, results: dict[str, CheckResult]) -> ItemOutcome:
    reward: float | None = 0.0
    failed = None
    for name, planned in plan.items():
        result = results[name]
        weight = planned.settings.weight
        if weight == 0:
            continue
        if result.masked:
            failed = failed or result
            reward = None
        elif result.score is not None and reward is not None:
            reward += weight * result.score
    return ItemOutcome(
        reward=reward,
        mask=failed is not None,
        failure_kind=failed.failure_kind if failed else None,
        failure_reason=failed.failure_reason if failed else None,
        components={name: results[name] for name in plan},
    )


def group_stats(groups: Sequence[str | None], outcomes: Sequence[ItemOutcome]) -> dict[str, GroupStats]:
    """Per group: size, mean and population std of the judged rewards, uniform. The SDK's definition, which it also
    uses to merge a group split over several requests, so that the two can never disagree."""
    return rlvr_group_stats(groups, [outcome.reward for outcome in outcomes])
