"""The path of a batch: resolve the reward spec, plan, de-duplicate, run, combine.

Exceptions::

    SpecError            the request's reward spec is invalid (the route answers 422 naming the field)
    Overloaded           the sandbox queue cannot take this batch now (the route answers 429 + Retry-After)
    ProfileError         a configured reward profile is invalid (the service refuses to start)

A reward profile is a named spec configured on the server. A request's spec is its `profile` (or none) with its
`rewards` merged on top, per checker and per setting; an item's `profile` replaces the batch's spec for that item
and its `rewards` merge on top of whichever spec it has. A `null` override drops that checker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rewards import (
    CHECKERS,
    Checker,
    CheckerSettings,
    CheckResult,
    FailureKind,
    Sample,
    Status,
    UnknownChecker,
    load_checker,
)
from sandboxes.base import Sandbox, SandboxError, SandboxOverloaded, SandboxUnavailable
from service.metrics import Metrics
from service.models import (
    ComponentResult,
    GroupStats,
    ItemResult,
    RewardSpec,
    ScoreItem,
    ScoreRequest,
    ScoreResponse,
    SpecOverrides,
)
from service.pool import TaskSpec, WorkerPool

__all__ = [
    "BUILTIN_PROFILES",
    "Overloaded",
    "ProfileError",
    "ResultCache",
    "Scorer",
    "SpecError",
    "load_profiles",
    "merge_spec",
]

Plan = dict[str, CheckerSettings]

# DeepSeek-R1's rule rewards: accuracy dominates; the format (0.2) and language-consistency (0.1) bonuses together
# never lift a wrong answer above a right one. The language target is the prompt's language.
BUILTIN_PROFILES: dict[str, RewardSpec] = {
    "r1-math": {"math": {"weight": 1.0}, "format": {"weight": 0.2, "mode": "strict"}, "language": {"weight": 0.1}},
    "math": {"math": {"weight": 1.0}},
    "code": {"code": {"weight": 1.0}},
}


class SpecError(ValueError):
    def __init__(self, loc: Sequence[str | int], message: str, *, valid: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.loc = list(loc)
        self.valid = list(valid)


class ProfileError(ValueError):
    """A configured profile (or the default profile's name) is invalid; the message names it."""


class Overloaded(RuntimeError):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


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
        if self.size == 0 or not _cacheable(result):
            return
        self._entries[key] = result
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _cacheable(result: CheckResult) -> bool:
    # A time-out may be the machine's load, a masked result may be our own passing failure: judge them again.
    return result.failure_kind is None and result.status != Status.TIMEOUT


def _digest(*parts: str | None) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        data = b"\x00" if part is None else part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


@dataclass
class _Slot:
    """One (item, checker) component waiting for its result."""

    item: int
    checker: str


@dataclass(frozen=True)
class _Work:
    """One unique piece of work: the first occurrence of a key."""

    key: bytes
    sample: Sample
    name: str
    settings: CheckerSettings


class Scorer:
    def __init__(
        self,
        pool: WorkerPool,
        metrics: Metrics,
        *,
        cache_size: int,
        sandbox: Sandbox | None = None,
        sandbox_reason: str = "no sandbox backend configured",
        sandbox_queue_limit: int = 1 << 30,
        profiles: Mapping[str, RewardSpec] = BUILTIN_PROFILES,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.cache = ResultCache(cache_size)
        self.sandbox = sandbox
        self.sandbox_reason = sandbox_reason
        self.sandbox_queue_limit = sandbox_queue_limit
        self.profiles = dict(profiles)
        self._settings_cache: dict[tuple[str, str], CheckerSettings] = {}

    # -- resolve ---------------------------------------------------------------------------------------------

    def resolve(self, request: ScoreRequest) -> list[Plan]:
        """Validate the request's spec and each item's overrides; one plan (checker -> settings) per item."""
        spec = self._batch_spec(request)
        base = None if spec is None else self._plan(["body", "rewards"], spec)
        return [self._item_plan(index, item, spec, base) for index, item in enumerate(request.items)]

    def profile_spec(self, loc: list[str | int], name: str) -> RewardSpec:
        try:
            return self.profiles[name]
        except KeyError:
            raise SpecError(loc, f"unknown profile {name!r}", valid=sorted(self.profiles)) from None

    def _batch_spec(self, request: ScoreRequest) -> RewardSpec | None:
        """The batch's spec; None when it names neither but every item names its own profile."""
        if request.profile is None and request.rewards is None:
            if request.items and all(item.profile is not None for item in request.items):
                return None
            message = "give `rewards`, a `profile`, or a `profile` on every item"
            raise SpecError(["body", "rewards"], message, valid=sorted(self.profiles))
        base = {} if request.profile is None else self.profile_spec(["body", "profile"], request.profile)
        return merge_spec(base, request.rewards)

    def _plan(self, loc: list[str | int], spec: RewardSpec) -> Plan:
        if not spec:
            raise SpecError(loc, "at least one checker is required", valid=sorted(CHECKERS))
        return {name: self._settings([*loc, name], name, raw) for name, raw in spec.items()}

    def _item_plan(self, index: int, item: ScoreItem, spec: RewardSpec | None, base: Plan | None) -> Plan:
        loc: list[str | int] = ["body", "items", index]
        if item.profile is not None:
            own = merge_spec(self.profile_spec([*loc, "profile"], item.profile), item.rewards)
            return self._plan([*loc, "rewards"], own)
        assert spec is not None and base is not None
        if not item.rewards:
            return base
        plan = dict(base)
        for name, override in item.rewards.items():
            if override is None:
                plan.pop(name, None)
            else:
                plan[name] = self._settings([*loc, "rewards", name], name, {**spec.get(name, {}), **override})
        if not plan:
            raise SpecError([*loc, "rewards"], "drops every checker: an item needs at least one")
        return plan

    def _settings(self, loc: list[str | int], name: str, raw: dict[str, Any]) -> CheckerSettings:
        key = (name, json.dumps(raw, sort_keys=True, default=str))
        cached = self._settings_cache.get(key)
        if cached is not None:
            return cached
        settings = checker_settings(loc, name, raw)
        if len(self._settings_cache) < 4096:
            self._settings_cache[key] = settings
        return settings

    # -- score -----------------------------------------------------------------------------------------------

    async def score(self, request: ScoreRequest, plans: list[Plan]) -> ScoreResponse:
        started = time.perf_counter()
        samples = [_sample(item) for item in request.items]
        results: list[dict[str, CheckResult]] = [{} for _ in request.items]
        self._admit_code(plans)
        cpu = self._run_cpu(samples, plans, results)
        code = self._run_code(samples, plans, results)
        await asyncio.gather(cpu, code)
        response = _combine(request.items, plans, results)
        for item_results in results:
            for name, result in item_results.items():
                self.metrics.items.labels(name, result.status).inc()
        self.metrics.stage.labels("total").observe(time.perf_counter() - started)
        return response

    def _dedup(
        self, samples: list[Sample], plans: list[Plan], results: list[dict[str, CheckResult]], runs_in: str
    ) -> tuple[list[_Work], dict[bytes, list[_Slot]]]:
        """Unique work of one kind: cache hits and duplicates are settled or joined to the first occurrence."""
        waiting: dict[bytes, list[_Slot]] = {}
        work: list[_Work] = []
        use_cache = runs_in == "cpu"  # sandbox results depend on timing (TLE): judged again in each batch
        for index, (sample, plan) in enumerate(zip(samples, plans, strict=True)):
            for name, settings in plan.items():
                checker = load_checker(name)
                if checker.runs_in != runs_in:
                    continue
                key = _work_key(checker, sample, settings)
                if isinstance(key, CheckResult):
                    results[index][name] = key
                    continue
                hit = self.cache.get(key) if use_cache else None
                self.metrics.cache.labels("hit" if hit is not None else "dedup" if key in waiting else "miss").inc()
                if hit is not None:
                    results[index][name] = hit
                elif key in waiting:
                    waiting[key].append(_Slot(index, name))
                else:
                    waiting[key] = [_Slot(index, name)]
                    work.append(_Work(key, sample, name, settings))
        return work, waiting

    async def _run_cpu(self, samples: list[Sample], plans: list[Plan], results: list[dict[str, CheckResult]]) -> None:
        started = time.perf_counter()
        work, waiting = self._dedup(samples, plans, results, "cpu")
        self.metrics.stage.labels("plan").observe(time.perf_counter() - started)
        if not work:
            return
        started = time.perf_counter()
        specs = [TaskSpec(w.name, w.settings.model_dump_json(), w.sample, w.settings.deadline_s()) for w in work]
        for unit, result in zip(work, await self.pool.run(specs), strict=True):
            self.cache.put(unit.key, result)
            for slot in waiting[unit.key]:
                results[slot.item][slot.checker] = result
        self.metrics.stage.labels("cpu").observe(time.perf_counter() - started)

    def _admit_code(self, plans: list[Plan]) -> None:
        """Refuse a batch with code items while the sandbox queue is already full (429 + Retry-After)."""
        if self.sandbox is None or not any(load_checker(n).runs_in == "sandbox" for plan in plans for n in plan):
            return
        stats: dict[str, Any] = getattr(self.sandbox, "stats", dict)()
        if stats.get("queue_depth", 0) >= self.sandbox_queue_limit:
            raise Overloaded(f"the sandbox queue is full ({stats['queue_depth']} jobs waiting)", retry_after_s=1.0)

    async def _run_code(self, samples: list[Sample], plans: list[Plan], results: list[dict[str, CheckResult]]) -> None:
        work, waiting = self._dedup(samples, plans, results, "sandbox")
        if not work:
            return
        started = time.perf_counter()
        # One batch never holds more sandbox jobs in flight than there are sandboxes: a big batch waits its turn
        # here instead of flooding the shared queue that other requests are admitted against.
        stats: dict[str, Any] = getattr(self.sandbox, "stats", dict)()
        limit = asyncio.Semaphore(max(1, int(stats.get("size", 1))))

        async def bounded(unit: _Work) -> CheckResult:
            async with limit:
                job_started = time.perf_counter()
                result = await self._check_code(unit.sample, unit.name, unit.settings)
                self.metrics.stage.labels("sandbox_item").observe(time.perf_counter() - job_started)
                return result

        for unit, result in zip(work, await asyncio.gather(*map(bounded, work)), strict=True):
            for slot in waiting[unit.key]:
                results[slot.item][slot.checker] = result
        self.metrics.stage.labels("sandbox").observe(time.perf_counter() - started)

    async def _check_code(self, sample: Sample, name: str, settings: CheckerSettings) -> CheckResult:
        if self.sandbox is None:
            return CheckResult.unjudgeable(Status.NO_SANDBOX, FailureKind.NO_SANDBOX, self.sandbox_reason)
        checker = load_checker(name)
        try:
            result = await checker.check(sample, settings, self.sandbox)  # type: ignore[misc]
        except SandboxOverloaded as exc:
            return CheckResult.unjudgeable(Status.ERROR, FailureKind.OVERLOADED, str(exc))
        except SandboxUnavailable as exc:
            return CheckResult.unjudgeable(Status.NO_SANDBOX, FailureKind.NO_SANDBOX, str(exc))
        except SandboxError as exc:
            return CheckResult.unjudgeable(Status.ERROR, FailureKind.SANDBOX_ERROR, str(exc))
        except Exception as exc:  # a bug of ours while judging one item: its status, never its batch's
            reason = f"{name}: judging failed ({type(exc).__name__})"
            return CheckResult.unjudgeable(Status.ERROR, FailureKind.INTERNAL_ERROR, reason)
        assert isinstance(result, CheckResult)
        return result


def merge_spec(base: RewardSpec, overrides: SpecOverrides | None) -> RewardSpec:
    """`overrides` on top of `base`, per checker and per setting; a `None` override drops that checker."""
    merged = dict(base)
    for name, override in (overrides or {}).items():
        if override is None:
            merged.pop(name, None)
        else:
            merged[name] = {**base.get(name, {}), **override}
    return merged


def checker_settings(loc: list[str | int], name: str, raw: dict[str, Any]) -> CheckerSettings:
    """A checker's validated settings, or a SpecError naming the field at `loc`."""
    try:
        checker = load_checker(name)
    except UnknownChecker as exc:
        raise SpecError(loc, f"unknown checker {name!r}", valid=exc.valid) from None
    try:
        return checker.settings_model.model_validate(raw)
    except ValidationError as exc:
        raise _settings_error(loc, checker, exc) from None


def load_profiles(configured: Mapping[str, RewardSpec], default: str) -> dict[str, RewardSpec]:
    """The built-in profiles with the configured ones on top, every one validated; a bad one is a ProfileError."""
    profiles = {**BUILTIN_PROFILES, **configured}
    for name, spec in profiles.items():
        if not spec:
            raise ProfileError(f"RLVR_PROFILES: profile {name!r} has no checkers")
        for checker, raw in spec.items():
            try:
                checker_settings([checker], checker, raw)
            except SpecError as exc:
                where = ".".join(str(part) for part in exc.loc)
                valid = f"; valid: {', '.join(exc.valid)}" if exc.valid else ""
                raise ProfileError(f"RLVR_PROFILES: profile {name!r}: {where}: {exc}{valid}") from None
    if default not in profiles:
        valid = ", ".join(sorted(profiles))
        raise ProfileError(f"RLVR_DEFAULT_PROFILE: unknown profile {default!r}; valid: {valid}")
    return profiles


def _sample(item: ScoreItem) -> Sample:
    tests = tuple(item.tests) if item.tests is not None else None
    return Sample(item.completion, item.prompt, item.reference, item.language, tests)


def _work_key(checker: Checker, sample: Sample, settings: CheckerSettings) -> bytes | CheckResult:
    assert checker.work_key is not None
    try:
        key = checker.work_key(sample, settings)
    except Exception as exc:  # a checker's own failure: masked, the batch goes on
        reason = f"{checker.name}: could not prepare the item ({type(exc).__name__})"
        return CheckResult.unjudgeable(Status.ERROR, FailureKind.INTERNAL_ERROR, reason)
    return _digest(checker.name, settings.cache_token, sample.reference, key)


def _settings_error(loc: list[str | int], checker: Checker, exc: ValidationError) -> SpecError:
    error = exc.errors()[0]
    where = loc + [part for part in error["loc"] if isinstance(part, str | int)]
    valid = sorted(checker.settings_model.model_fields)
    if error["type"] == "extra_forbidden":
        return SpecError(where, f"unknown setting {where[-1]!r} for checker {checker.name!r}", valid=valid)
    return SpecError(where, error["msg"], valid=valid)


def _combine(items: list[ScoreItem], plans: list[Plan], results: list[dict[str, CheckResult]]) -> ScoreResponse:
    out = [_item_result(item, plan, res) for item, plan, res in zip(items, plans, results, strict=True)]
    return ScoreResponse(results=out, groups=_groups(items, out))


def _item_result(item: ScoreItem, plan: Plan, results: dict[str, CheckResult]) -> ItemResult:
    reward: float | None = 0.0
    failed = None
    for name, settings in plan.items():
        result = results[name]
        if settings.weight == 0:
            continue
        if result.masked:
            failed = failed or result
            reward = None
        elif result.score is not None and reward is not None:
            reward += settings.weight * result.score
    components = {name: ComponentResult(**_component(results[name])) for name in plan}
    return ItemResult(
        id=item.id,
        reward=reward,
        mask=failed is not None,
        failure_kind=failed.failure_kind if failed else None,
        failure_reason=failed.failure_reason if failed else None,
        components=components,
    )


def _component(result: CheckResult) -> dict[str, Any]:
    return {
        "score": result.score,
        "status": result.status,
        "details": result.details,
        "failure_kind": result.failure_kind,
        "failure_reason": result.failure_reason,
    }


def _groups(items: list[ScoreItem], results: list[ItemResult]) -> dict[str, GroupStats]:
    rewards: dict[str, list[float | None]] = {}
    for item, result in zip(items, results, strict=True):
        if item.group is not None:
            rewards.setdefault(item.group, []).append(result.reward)
    return {group: _group_stats(values) for group, values in rewards.items()}


def _group_stats(values: list[float | None]) -> GroupStats:
    judged = [v for v in values if v is not None]
    if not judged:
        return GroupStats(size=len(values), mean=None, std=None, uniform=True)
    mean = sum(judged) / len(judged)
    std = math.sqrt(sum((v - mean) ** 2 for v in judged) / len(judged))
    return GroupStats(size=len(values), mean=mean, std=std, uniform=max(judged) - min(judged) < 1e-12)
