"""`rlvr.verl`: veRL 0.9.1's reward-loop call shape against the real service.

veRL awaits ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=, **reward_kwargs)`` once per
sample, from one asyncio task per sample, and indexes every sample by the first answer's keys.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from rlvr import verl
from rlvr.verl import apps_tests, compute_score, compute_score_sync
from tests.conftest import LiveService

Sample = tuple[str, str, Any]  # data_source, solution_str, ground_truth


def reward_loop(samples: list[Sample], **reward_kwargs: Any) -> list[dict[str, float]]:
    """What veRL's naive reward manager does with a batch: one task per sample, awaited together."""

    async def run() -> list[dict[str, float]]:
        calls = [
            compute_score(data_source=s, solution_str=r, ground_truth=g, extra_info={"index": i}, **reward_kwargs)
            for i, (s, r, g) in enumerate(samples)
        ]
        return await asyncio.gather(*calls)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("sample", "score"),
    [
        pytest.param(("openai/gsm8k", "so 8 * 9 = 72\n#### 72", "72"), 1.0, id="gsm8k_hashes"),
        pytest.param(("openai/gsm8k", "so the answer is $\\boxed{72}$", "72"), 0.0, id="gsm8k_is_strict"),
        pytest.param(("lighteval/MATH", "so $\\boxed{\\frac{1}{2}}$", "\\frac12"), 1.0, id="MATH"),
        pytest.param(("HuggingFaceH4/MATH-500", "so $\\boxed{3}$", "\\frac12"), 0.0, id="MATH_500_wrong"),
        pytest.param(("math_dapo", "Answer: $\\boxed{204}$", "204"), 1.0, id="math_dapo"),
        pytest.param(("aime2024", "so $\\boxed{33}$", "33"), 1.0, id="aime_prefix"),
    ],
)
def test_data_sources_follow_verls_dispatch(live_service: LiveService, sample: Sample, score: float) -> None:
    [answer] = reward_loop([sample], url=live_service.url)
    assert answer["score"] == score and answer["rlvr_masked"] == 0.0


def test_every_sample_returns_the_same_keys(live_service: LiveService) -> None:
    samples: list[Sample] = [
        ("openai/gsm8k", "#### 1", "1"),
        ("lighteval/MATH", "$\\boxed{2}$", "2"),
        ("apps", "print(1)", "this is not json"),  # masked without a round trip
    ]
    answers = reward_loop(samples, url=live_service.url)
    assert {tuple(sorted(a)) for a in answers} == {("code", "math", "rlvr_masked", "score")}
    assert [a["score"] for a in answers] == [1.0, 1.0, 0.0]
    assert [a["rlvr_masked"] for a in answers] == [0.0, 0.0, 1.0]


def test_a_masked_sample_gets_masked_score(live_service: LiveService) -> None:
    [answer] = reward_loop([("apps", "print(1)", "{}")], url=live_service.url, masked_score=-0.5)
    assert answer["score"] == -0.5 and answer["rlvr_masked"] == 1.0


def test_concurrent_calls_are_coalesced_into_few_batches(live_service: LiveService) -> None:
    samples: list[Sample] = [("lighteval/MATH", f"$\\boxed{{{i}}}$", str(i % 5)) for i in range(200)]
    options = {"url": live_service.url, "window_ms": 20.0}
    answers = reward_loop(samples, **options)
    assert [a["score"] for a in answers] == [float(i % 5 == i) for i in range(200)]
    batches = verl._scorer(options).batcher.batches
    assert 1 <= batches <= 20  # not 200 single-item requests


def test_the_sync_form_scores_the_same(live_service: LiveService) -> None:
    answer = compute_score_sync("openai/gsm8k", "#### 7", "7", None, url=live_service.url)
    assert answer["score"] == 1.0


@pytest.mark.parametrize(
    ("reward_kwargs", "sample", "score"),
    [
        pytest.param({"sources": {"my_set": "math"}}, ("my_set", "$\\boxed{2}$", "2"), 1.0, id="added_source"),
        pytest.param(
            {"sources": {"openai/gsm8k": {"profile": "math"}}},
            ("openai/gsm8k", "$\\boxed{72}$", "72"),
            1.0,
            id="replaced_source",
        ),
        pytest.param({"profile": "math"}, ("unknown/set", "$\\boxed{2}$", "2"), 1.0, id="one_profile_for_all"),
    ],
)
def test_reward_kwargs_override_the_mapping(
    live_service: LiveService, reward_kwargs: dict[str, Any], sample: Sample, score: float
) -> None:
    [answer] = reward_loop([sample], url=live_service.url, **reward_kwargs)
    assert answer["score"] == score


def test_an_unknown_data_source_is_named(live_service: LiveService) -> None:
    with pytest.raises(ValueError, match="no rlvr profile for data_source 'nope/set'"):
        reward_loop([("nope/set", "x", "1")], url=live_service.url)


def test_a_misspelt_ground_truth_kind_is_an_error_not_apps_tests(live_service: LiveService) -> None:
    sources = {"mine": {"profile": "code", "ground_truth": "app"}}
    with pytest.raises(ValueError, match="ground_truth must be 'reference' or 'apps', got 'app'"):
        reward_loop([("mine", "x", "1")], url=live_service.url, sources=sources)


def test_no_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLVR_URL", raising=False)
    with pytest.raises(ValueError, match="reward_kwargs.url"):
        compute_score_sync("openai/gsm8k", "#### 1", "1")


@pytest.mark.parametrize(
    ("ground_truth", "tests"),
    [
        pytest.param(
            {"inputs": ["1 2\n"], "outputs": ["3\n"]},
            [{"type": "stdin_stdout", "input": "1 2\n", "output": "3\n"}],
            id="stdin",
        ),
        pytest.param(
            json.dumps({"inputs": [[1, 2]], "outputs": [[3]], "fn_name": "add"}),
            [{"type": "call", "fn_name": "add", "args": [1, 2], "expected": 3}],
            id="apps_call_output_unwrapped",
        ),
        pytest.param(
            {"inputs": [[[1, 2]]], "outputs": [[1, 2]], "fn_name": "f"},
            [{"type": "call", "fn_name": "f", "args": [[1, 2]], "expected": [1, 2]}],
            id="longer_list_output_kept",
        ),
    ],
)
def test_apps_ground_truth_becomes_tests(ground_truth: Any, tests: list[dict[str, Any]]) -> None:
    assert apps_tests(ground_truth) == (tests, "python")


@pytest.mark.parametrize(
    "ground_truth",
    [
        pytest.param("[1, 2]", id="not_an_object"),
        pytest.param({"inputs": ["1"], "outputs": []}, id="lengths_differ"),
        pytest.param({"inputs": [], "outputs": []}, id="no_tests"),
    ],
)
def test_bad_apps_ground_truth_is_an_error(ground_truth: Any) -> None:
    with pytest.raises(ValueError):
        apps_tests(ground_truth)


@pytest.mark.docker
def test_code_data_sources_run_the_program(sandboxed: LiveService) -> None:
    stdin = json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]})
    call = json.dumps({"inputs": [[1, 2], [5, 5]], "outputs": [[3], [10]], "fn_name": "add"})
    samples: list[Sample] = [
        ("codecontests", "```python\na, b = map(int, input().split())\nprint(a + b)\n```", stdin),
        ("apps", "```python\nprint(3)\n```", stdin),
        ("taco", "```python\ndef add(a, b):\n    return a + b\n```", call),
    ]
    answers = reward_loop(samples, url=sandboxed.url)
    assert [a["score"] for a in answers] == [1.0, 0.5, 1.0]
    assert [a["code"] for a in answers] == [1.0, 0.5, 1.0]
