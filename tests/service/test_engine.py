"""The engine without HTTP, with fake executors: planning, de-duplication, caching, admission, combination.

The fakes judge by the completion's text: "right" scores 1, "wrong" 0, "ours" is masked as our failure. The
end-to-end tests (test_score.py, test_code_api.py) run the same engine with the real pools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from rewards import CheckResult, FailureKind, Sample, Status
from sandboxes.base import Job, JobResult, SandboxError, SandboxJobFailed, SandboxUnavailable
from service.engine import Engine, Overloaded, SyncEngine
from service.executors import SandboxExecutor, Work
from service.settings import Settings
from service.specs import SpecError


def judge(sample: Sample) -> CheckResult:
    if sample.completion == "ours":
        return CheckResult.unjudgeable(Status.ERROR, FailureKind.INTERNAL_ERROR, "the fake failed")
    return CheckResult(score=1.0 if sample.completion == "right" else 0.0, status=Status.OK)


class FakeExecutor:
    def __init__(self, name: str, *, refuse: bool = False) -> None:
        self.name = name
        self.refuse = refuse
        self.batches: list[list[str]] = []  # the completions of each run() call
        self.admitted = 0

    @contextmanager
    def admit(self, jobs: int) -> Iterator[None]:
        if self.refuse:
            raise Overloaded(f"{self.name} is full", 2.0)
        self.admitted += jobs
        try:
            yield
        finally:
            self.admitted -= jobs

    async def run(self, work: Sequence[Work]) -> list[CheckResult]:
        self.batches.append([unit.sample.completion for unit in work])
        return [judge(unit.sample) for unit in work]

    def stats(self) -> dict[str, Any]:
        return {"admitted": self.admitted}

    async def close(self) -> None:
        pass


def engine_with(**executors: FakeExecutor) -> Engine:
    settings = Settings(workers=1, max_tests=3, sandbox={"backend": "none"})
    return Engine(settings, executors=list(executors.values()) or [FakeExecutor("cpu"), FakeExecutor("sandbox")])


def item(completion: str, **fields: Any) -> dict[str, Any]:
    return {"id": completion, "completion": completion, "reference": "r", **fields}


MATH_AND_FORMAT = {"math": {"weight": 1.0}, "format": {"weight": 0.5}}


@pytest.mark.parametrize(
    ("completions", "rewards", "expected"),
    [
        pytest.param(["right", "wrong"], {"math": {}}, [1.0, 0.0], id="one_checker"),
        pytest.param(["right", "wrong"], MATH_AND_FORMAT, [1.5, 0.0], id="weights_add_up"),
        pytest.param(["ours", "right"], MATH_AND_FORMAT, [None, 1.5], id="a_masked_component_masks_its_item"),
        pytest.param(["ours"], {"math": {}, "format": {"weight": 0}}, [None], id="weight_zero_still_masks_via_math"),
        pytest.param(["ours"], {"math": {"weight": 0}, "format": {}}, [None], id="masked_format_masks"),
        pytest.param([], {"math": {}}, [], id="empty_batch"),
    ],
)
async def test_every_item_gets_one_outcome_in_order(
    completions: list[str], rewards: dict[str, Any], expected: list[float | None]
) -> None:
    async with engine_with() as engine:
        scored = await engine.score([item(c) for c in completions], rewards=rewards)
    assert [outcome.reward for outcome in scored.items] == expected
    assert [outcome.mask for outcome in scored.items] == [reward is None for reward in expected]


async def test_a_component_with_weight_zero_never_masks_its_item() -> None:
    async with engine_with() as engine:
        scored = await engine.score([item("ours")], rewards={"math": {"weight": 0}})
    assert (scored.items[0].reward, scored.items[0].mask) == (0.0, False)
    assert scored.items[0].components["math"].failure_kind == FailureKind.INTERNAL_ERROR


async def test_identical_work_runs_once_per_batch_and_cpu_results_are_cached_across_batches() -> None:
    cpu, sandbox = FakeExecutor("cpu"), FakeExecutor("sandbox")
    one, two = (f"\\boxed{{{n}}}\n```python\nprint({n})\n```" for n in (1, 2))
    tests = [{"stdin": "", "expected_stdout": ""}]
    items = [item(one, id="a", tests=tests), item(one, id="b", tests=tests), item(two, id="c", tests=tests)]
    async with engine_with(cpu=cpu, sandbox=sandbox) as engine:
        first = await engine.score(items, rewards={"math": {}, "code": {}})
        second = await engine.score(items, rewards={"math": {}, "code": {}})
    assert cpu.batches == [[one, two]]  # the second batch is all cache hits
    assert sandbox.batches == [[one, two], [one, two]]  # code is judged again in every batch (time-outs vary)
    assert len(first.items) == len(second.items) == 3


async def test_an_overloaded_executor_refuses_the_batch_whole_before_anything_runs() -> None:
    cpu, sandbox = FakeExecutor("cpu"), FakeExecutor("sandbox", refuse=True)
    async with engine_with(cpu=cpu, sandbox=sandbox) as engine:
        with pytest.raises(Overloaded) as refused:
            await engine.score([item("right", tests=[])], rewards={"math": {}, "code": {}})
        assert refused.value.retry_after_s == 2.0
        assert cpu.batches == [] and cpu.admitted == 0  # cpu's admission was released, nothing ran
        scored = await engine.score([item("right")], rewards={"math": {}})  # no code: the sandbox is not asked
    assert scored.items[0].reward == 1.0


async def test_an_item_over_the_test_limit_is_masked_without_running() -> None:
    sandbox = FakeExecutor("sandbox")
    async with engine_with(cpu=FakeExecutor("cpu"), sandbox=sandbox) as engine:
        test = {"stdin": "", "expected_stdout": ""}
        scored = await engine.score(
            [item("right", tests=[test] * 4), item("wrong", tests=[test] * 3)], rewards={"code": {}}
        )
    over, within = scored.items
    assert (over.mask, over.failure_kind) == (True, FailureKind.INVALID_ITEM)
    assert "4 tests, more than the service's limit of 3 (RLVR_MAX_TESTS)" in (over.failure_reason or "")
    assert (within.reward, sandbox.batches) == (0.0, [["wrong"]])


async def test_a_checker_without_its_executor_is_masked_as_ours() -> None:
    async with engine_with(cpu=FakeExecutor("cpu")) as engine:
        scored = await engine.score([item("right", tests=[])], rewards={"math": {}, "code": {}})
    code = scored.items[0].components["code"]
    assert (scored.items[0].mask, code.failure_kind) == (True, FailureKind.INTERNAL_ERROR)
    assert "no sandbox executor" in (code.failure_reason or "")


@pytest.mark.parametrize(
    ("completions", "groups", "expected"),
    [
        pytest.param(["right", "wrong"], ["g", "g"], {"g": (2, 0.5, 0.5, False)}, id="mixed"),
        pytest.param(["right", "right"], ["g", "g"], {"g": (2, 1.0, 0.0, True)}, id="uniform"),
        pytest.param(["right", "ours", "wrong"], ["g"] * 3, {"g": (3, 0.5, 0.5, False)}, id="masked_left_out"),
        pytest.param(["ours"], ["g"], {"g": (1, None, None, True)}, id="all_masked"),
        pytest.param(["right", "wrong"], ["a", None], {"a": (1, 1.0, 0.0, True)}, id="ungrouped_left_out"),
    ],
)
async def test_group_statistics(
    completions: list[str], groups: list[str | None], expected: dict[str, tuple[Any, ...]]
) -> None:
    items = [item(c, id=str(i), group=g) for i, (c, g) in enumerate(zip(completions, groups, strict=True))]
    async with engine_with() as engine:
        scored = await engine.score(items, rewards={"math": {}})
    assert {name: (g.size, g.mean, g.std, g.uniform) for name, g in scored.groups.items()} == expected


@pytest.mark.parametrize(
    ("rewards", "profile", "items", "loc"),
    [
        pytest.param({"nope": {}}, None, [item("x")], ["body", "rewards", "nope"], id="unknown_checker"),
        pytest.param(None, "nope", [item("x")], ["body", "profile"], id="unknown_profile"),
        pytest.param(None, None, [item("x")], ["body", "rewards"], id="no_spec"),
        pytest.param(
            {"math": {}}, None, [item("x", rewards={"math": None})], ["body", "items", 0, "rewards"], id="drop_all"
        ),
    ],
)
async def test_a_bad_spec_is_a_spec_error_naming_the_field(
    rewards: Any, profile: str | None, items: list[dict[str, Any]], loc: list[Any]
) -> None:
    async with engine_with() as engine:
        with pytest.raises(SpecError) as raised:
            await engine.score(items, rewards=rewards, profile=profile)
    assert raised.value.loc == loc


async def test_mixed_batches_per_item_profile_and_null_drop() -> None:
    cpu, sandbox = FakeExecutor("cpu"), FakeExecutor("sandbox")
    items = [item("right"), item("wrong", profile="code", tests=[]), item("right", rewards={"format": None})]
    async with engine_with(cpu=cpu, sandbox=sandbox) as engine:
        scored = await engine.score(items, rewards=MATH_AND_FORMAT)
    assert [sorted(outcome.components) for outcome in scored.items] == [["format", "math"], ["code"], ["math"]]
    assert [outcome.reward for outcome in scored.items] == [1.5, 0.0, 1.0]


def test_the_sync_engine_scores_without_an_event_loop() -> None:
    with SyncEngine(Settings(workers=1, sandbox={"backend": "none"}), executors=[FakeExecutor("cpu")]) as engine:
        scored = engine.score([item("right"), item("wrong")], profile="math")
    assert [outcome.reward for outcome in scored.items] == [1.0, 0.0]


# -- the sandbox executor, over a fake sandbox ----------------------------------------------------------------


class FakeSandbox:
    """Runs nothing: each job waits until released, and counts how many ran at once."""

    name = "fake"
    languages = ("python",)

    def __init__(self, size: int, error: Exception | None = None) -> None:
        self.size = size
        self.error = error
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()

    def stats(self) -> dict[str, Any]:
        return {"running": self.running}

    async def start(self) -> None:
        pass

    async def run(self, job: Job) -> JobResult:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
            if self.error is not None:
                raise self.error
            return JobResult(compile=None, runs=[])
        finally:
            self.running -= 1

    async def close(self) -> None:
        pass


JOB = Job(language="python", source="pass", runs=[])


async def test_the_sandbox_executor_admits_a_first_batch_of_any_size_then_refuses_past_the_queue_limit() -> None:
    sandbox = FakeSandbox(size=2)
    executor = SandboxExecutor(sandbox, queue_limit=3, retry_after_s=4.0)  # type: ignore[arg-type]
    with executor.admit(10):  # nothing admitted yet: taken, however large
        with pytest.raises(Overloaded) as refused:
            with executor.admit(1):
                pass
        assert refused.value.retry_after_s == 4.0
    with executor.admit(5):  # 5 jobs for 2 sandboxes: 3 wait, the limit
        with pytest.raises(Overloaded):
            with executor.admit(1):
                pass
    with executor.admit(4), executor.admit(1):  # 4 + 1 - 2 = 3 waiting: still within the limit
        pass
    assert executor.stats()["admitted"] == 0 and executor.stats()["refused_batches"] == 2


async def test_the_sandbox_executor_never_runs_more_jobs_than_sandboxes() -> None:
    sandbox = FakeSandbox(size=2)
    executor = SandboxExecutor(sandbox)  # type: ignore[arg-type]
    jobs = asyncio.gather(*(executor.run_job(JOB) for _ in range(5)))
    await asyncio.sleep(0.05)
    assert sandbox.running == 2
    sandbox.release.set()
    assert len(await jobs) == 5 and sandbox.most == 2


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        pytest.param(SandboxUnavailable("engine gone"), Status.NO_SANDBOX, FailureKind.NO_SANDBOX, id="unavailable"),
        pytest.param(SandboxJobFailed("runner died twice"), Status.ERROR, FailureKind.SANDBOX_ERROR, id="job_failed"),
        pytest.param(SandboxError("pool closed"), Status.ERROR, FailureKind.SANDBOX_ERROR, id="sandbox_error"),
        pytest.param(RuntimeError("bug"), Status.ERROR, FailureKind.INTERNAL_ERROR, id="our_bug"),
    ],
)
async def test_the_sandbox_executor_turns_each_failure_into_a_masked_result(
    error: Exception, status: str, kind: str
) -> None:
    from rewards.code import CHECKER, CodeSettings

    async def broken(sample: Sample, settings: Any, sandbox: Any) -> CheckResult:
        raise error

    checker = CHECKER.__class__(**{**CHECKER.__dict__, "sandbox_check": broken})
    executor = SandboxExecutor(FakeSandbox(size=1))  # type: ignore[arg-type]
    [result] = await executor.run([Work(checker, CodeSettings(), Sample("x"))])
    assert (result.status, result.failure_kind, result.masked) == (status, kind, True)


async def test_without_a_sandbox_code_is_masked_and_raw_jobs_are_refused_with_the_reason() -> None:
    from rewards.code import CHECKER, CodeSettings
    from service.executors import NoSandbox

    executor = SandboxExecutor(None, reason="no Docker engine here")
    [result] = await executor.run([Work(CHECKER, CodeSettings(), Sample("x"))])
    assert (result.failure_kind, result.failure_reason) == (FailureKind.NO_SANDBOX, "no Docker engine here")
    with pytest.raises(NoSandbox, match="no Docker engine here"):
        await executor.run_job(JOB)


# -- the real engine: a sandbox container killed mid-batch -----------------------------------------------------


async def test_a_container_killed_mid_batch_costs_no_item() -> None:
    """Its job runs again on a fresh container; every item gets the score its program earns, none is masked."""
    from sandboxes.docker import INSTANCE_LABEL
    from tests.conftest import missing_backend

    settings = Settings(workers=1, sandbox={"backend": "docker", "pool_size": 2})
    async with Engine(settings) as engine:
        if engine.sandbox is None:
            missing_backend(f"no docker sandbox ({engine.sandbox_reason})")
        import docker

        client = docker.from_env()
        instance = engine.sandbox.stats()["instance"]
        program = "```python\nimport time\ntime.sleep(1.5)\nprint(int(input()) * {k})\n```"
        items = [
            {
                "id": str(k),
                "completion": program.format(k=k),
                "tests": [{"type": "stdin_stdout", "input": "3", "output": "6"}],
            }
            for k in (1, 2, 3, 2)
        ]
        scoring = asyncio.ensure_future(engine.score(items, rewards={"code": {}}))
        await asyncio.sleep(0.8)  # both containers hold a sleeping job now
        running = client.containers.list(filters={"label": f"{INSTANCE_LABEL}={instance}"})
        assert running, "no container of this engine is running"
        running[0].kill()
        scored = await scoring
        client.close()
        assert engine.executors["sandbox"].stats()["sandbox_errors"] >= 1  # the kill was seen, and survived
    assert [(o.reward, o.mask) for o in scored.items] == [(0.0, False), (1.0, False), (0.0, False), (1.0, False)]
