"""Shared helpers of the load and fault suites: a real `rlvr serve` in its own process, items whose reward is
known from how they are built, and the one check every test makes of what a trainer gets back.

The check is the user's contract: every item comes back exactly once, in input order, with the reward its
construction implies, or masked honestly (``mask: true``, ``reward: null`` and a ``failure_kind``). A wrong
score is never acceptable, whatever was killed or filled up on the way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bench._service import _children, rss_mb
from rlvr import ItemResult, ScoreResult
from tests.conftest import ServiceProcess, missing_backend


def env_int(name: str, default: int) -> int:
    """A size of the suite, overridable from the environment (a longer soak: RLVR_SOAK_BATCHES=100)."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# -- the service under test -------------------------------------------------------------------------------------


class LoadService(ServiceProcess):
    """`python -m service serve` in its own process group (SIGKILL of the group with ``kill()``, back on the same
    port with ``start()``), and what the tests read of it from outside: its pids, its memory, its containers."""

    def __init__(self, *flags: str) -> None:
        super().__init__(*flags)
        self.owners: set[str] = set()  # the sandbox owner label of every process it ran as

    def start(self) -> None:
        super().start()
        stats = self.readyz()["sandbox"]["stats"]
        if stats:
            self.owners.add(stats["owner"])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def readyz(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/readyz", timeout=30).json()
        return body

    def gauge(self, name: str) -> float:
        """One unlabelled gauge of its /metrics (``rlvr_batches_in_flight``: requests not yet fully answered)."""
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
        assert found, f"{name} is not in /metrics"
        return float(found.group(1))

    def tree(self) -> list[int]:
        """The service process and every descendant: the forkserver, the CPU workers, the resource tracker."""
        found, stack = [], [self.pid]
        while stack:
            pid = stack.pop()
            found.append(pid)
            stack.extend(_children(pid))
        return found

    def worker_pids(self) -> list[int]:
        """The CPU worker processes: the grandchildren of the service (forkserver workers)."""
        return [pid for child in _children(self.pid) for pid in _children(child)]

    def rss_mb(self) -> float:
        """Resident memory of the whole process tree now (VmRSS, not the peak: a leak is memory that stays)."""
        return sum(rss_mb(pid) for pid in self.tree())

    def containers(self) -> list[Any]:
        """This service's running sandbox containers (label ``rlvr.sandbox=1``, owned by this process)."""
        owner = self.readyz()["sandbox"]["stats"]["owner"]
        with docker_client() as client:
            return list(client.containers.list(filters={"label": ["rlvr.sandbox=1", f"rlvr.owner={owner}"]}))


@contextmanager
def docker_client() -> Iterator[Any]:
    import docker

    client = docker.from_env()
    try:
        yield client
    finally:
        client.close()


WORKERS = ("--workers", "2")  # every load service's CPU workers, whatever the machine's cores
SANDBOXED = ("--sandbox-backend", "docker", "--sandbox-pool-size", "2")


@pytest.fixture
def start() -> Iterator[Callable[..., LoadService]]:
    """``start(*flags)``: a ready service with 2 CPU workers and the given flags; with a docker backend in the
    flags it must have found its sandbox (a skip locally, a failure under RLVR_REQUIRE_SANDBOXES=1). Every service
    started is stopped after the test, and the containers of every process it ran as are removed."""
    made: list[LoadService] = []

    def started(*flags: str) -> LoadService:
        service = LoadService(*WORKERS, *flags)
        made.append(service)
        service.start()
        sandbox = service.readyz()["sandbox"]
        if not sandbox["available"] and "docker" in flags:
            missing_backend(f"the service found no docker sandbox ({sandbox['reason']})")
        return service

    yield started
    for service in made:
        service.stop()
    _remove_containers({owner for service in made for owner in service.owners})


def _remove_containers(owners: set[str]) -> None:
    """What a SIGKILLed service left behind (a restarted one reaps those of its predecessor, a last one cannot)."""
    if not owners:
        return
    with docker_client() as client:
        for owner in owners:
            for container in client.containers.list(all=True, filters={"label": f"rlvr.owner={owner}"}):
                container.remove(force=True)


# -- items whose reward is known from their construction ----------------------------------------------------------

# The batch spec of every load test: math by default; other items name their own checkers (an item's `rewards`
# merge over the batch's, `null` drops math) or the `code` profile, so one batch mixes all four checkers.
BATCH_SPEC: dict[str, dict[str, Any]] = {"math": {}}
ONLY = {
    "format": {"math": None, "format": {"mode": "strict"}},
    "language": {"math": None, "language": {"target": "en"}},
}


@dataclass(frozen=True)
class Case:
    """One item and the reward its construction implies."""

    item: dict[str, Any]
    reward: float

    @property
    def id(self) -> str:
        return str(self.item["id"])


ENGLISH = "First I add the two numbers together, then I check the result with care before I answer ({n})."
FRENCH = "Je commence par additionner les deux nombres, puis je vérifie le résultat avec soin avant de répondre ({n})."
R1 = "<think>\n{think}\n</think>\n<answer>\n{answer}\n</answer>"


def _math(item_id: str, n: int, right: bool) -> Case:
    if n % 2:  # a fraction the checker has to simplify
        completion, reference = f"Halving {2 * n} gives $\\boxed{{\\frac{{{2 * n}}}{{4}}}}$", f"{n}/2"
    else:
        completion, reference = f"So the answer is $\\boxed{{{n}}}$.", str(n)
    if not right:
        reference = f"{n}/3" if n % 2 else str(n + 1)
    return Case({"id": item_id, "completion": completion, "reference": reference}, 1.0 if right else 0.0)


def _format(item_id: str, n: int, right: bool) -> Case:
    think = ENGLISH.format(n=n)
    completion = R1.format(think=think, answer=n) if right else f"<think>{think}</think> the answer is {n}"
    return Case({"id": item_id, "completion": completion, "rewards": ONLY["format"]}, 1.0 if right else 0.0)


def _language(item_id: str, n: int, right: bool) -> Case:
    # Numbers belong to no language: `n` makes each completion new to the cache without moving its score.
    think = (ENGLISH if right else FRENCH).format(n=n)
    completion = R1.format(think=think, answer=n)
    return Case({"id": item_id, "completion": completion, "rewards": ONLY["language"]}, 1.0 if right else 0.0)


# Python stdin programs: k makes each one new; the tests are x -> x * k for a small and a large x.
CODE = {
    1.0: "k = {k}\nx = int(input())\nprint(x * k)\n",
    0.5: "k = {k}\nx = int(input())\nprint(x * k if x < 100 else -1)\n",  # right on the small x only
    0.0: "k = {k}\nx = int(input())\nprint(x + k)\n",
}


def code_item(item_id: str, source: str, tests: Sequence[tuple[str, str]], reward: float) -> Case:
    item = {
        "id": item_id,
        "profile": "code",
        "completion": f"Here is my program:\n```python\n{source}```",
        "tests": [{"type": "stdin_stdout", "input": stdin, "output": stdout} for stdin, stdout in tests],
    }
    return Case(item, reward)


def _code(item_id: str, n: int, reward: float) -> Case:
    k = n + 2
    return code_item(item_id, CODE[reward].format(k=k), [("3\n", f"{3 * k}\n"), ("300\n", f"{300 * k}\n")], reward)


# One entry per kind of item: (name, builder(id, n) -> Case). A mixed batch cycles through them.
KINDS: list[tuple[str, Callable[[str, int], Case]]] = [
    ("math_right", lambda i, n: _math(i, n, True)),
    ("math_wrong", lambda i, n: _math(i, n, False)),
    ("format_right", lambda i, n: _format(i, n, True)),
    ("format_wrong", lambda i, n: _format(i, n, False)),
    ("language_right", lambda i, n: _language(i, n, True)),
    ("language_wrong", lambda i, n: _language(i, n, False)),
    ("code_right", lambda i, n: _code(i, n, 1.0)),
    ("code_half", lambda i, n: _code(i, n, 0.5)),
    ("code_wrong", lambda i, n: _code(i, n, 0.0)),
]


def math_batch(tag: str, size: int, start: int = 0) -> list[Case]:
    """Distinct math items (the cache answers none of them), every third one wrong."""
    return [_math(f"{tag}-{i}", start + i, bool(i % 3)) for i in range(size)]


def mixed_batch(tag: str, seed: int, size: int) -> list[Case]:
    """``size`` items of every kind in turn, starting at a kind that moves with ``seed``, all new to the cache
    (``seed`` numbers them), plus one repeat of the first item under a new id (deduplicated within the batch)."""
    cases = []
    for index in range(size - 1):
        name, build = KINDS[(seed + index) % len(KINDS)]
        cases.append(build(f"{tag}-{index}-{name}", seed * 64 + index))
    first = cases[0]
    cases.append(Case({**first.item, "id": f"{tag}-{size - 1}-repeat"}, first.reward))
    return cases


def items(cases: Sequence[Case]) -> list[dict[str, Any]]:
    return [case.item for case in cases]


# -- the check ----------------------------------------------------------------------------------------------------


def check(result: ScoreResult, cases: Sequence[Case]) -> list[ItemResult]:
    """Assert every item came back once, in order, with its expected reward or masked honestly; return the
    masked ones (each test says how many it tolerates)."""
    assert [r.id for r in result.results] == [case.id for case in cases], "items lost, repeated or out of order"
    wrong, masked = [], []
    for got, case in zip(result.results, cases, strict=True):
        if got.mask:
            masked.append(got)
            if got.reward is not None or not got.failure_kind:
                wrong.append(f"{case.id}: masked without a failure_kind or with a reward: {_brief(got)}")
        elif got.reward != case.reward:
            wrong.append(f"{case.id}: reward {got.reward}, expected {case.reward}: {_brief(got)}")
    assert not wrong, f"{len(wrong)} of {len(cases)} items wrong:\n" + "\n".join(wrong[:20])
    return masked


def _brief(got: ItemResult) -> str:
    parts = [f"failure_kind={got.failure_kind} ({got.failure_reason})"] if got.failure_kind else []
    for name, component in got.components.items():
        verdict = component.details.get("verdict")
        parts.append(f"{name}={component.score} [{component.status}{f', {verdict}' if verdict else ''}]")
    return ", ".join(parts)
