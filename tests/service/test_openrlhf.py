"""OpenRLHF's remote reward protocol (`--remote_rm_url .../get_reward`), as OpenRLHF posts it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.routes.openrlhf import strip_end_tokens
from tests.conftest import LiveService

PROMPT = "<|im_start|>user\nWhat is half of one? Answer in English.<|im_end|>\n<|im_start|>assistant\n"
RIGHT = "<think>\nOne half of one is a half.\n</think>\n<answer>\n$\\boxed{\\frac{1}{2}}$\n</answer>"
WRONG = RIGHT.replace("\\frac{1}{2}", "3")


def get_reward(service: LiveService, body: Any, profile: str | None = None) -> httpx.Response:
    path = "/get_reward" if profile is None else f"/get_reward/{profile}"
    return httpx.post(f"{service.url}{path}", json=body, timeout=120)


def request(*samples: tuple[str, str, Any]) -> dict[str, Any]:
    """(query, prompt, label) per sample, plus the extra fields newer OpenRLHF versions send."""
    return {
        "query": [q for q, _, _ in samples],
        "prompts": [p for _, p, _ in samples],
        "labels": [label for _, _, label in samples],
        "metadata": [{"step": 3}] * len(samples),
    }


CASES = [
    pytest.param(
        None,
        [(PROMPT + RIGHT + "<|im_end|>", PROMPT, "\\frac{1}{2}")],
        [1.3],  # scores: 1.0
        {"math": [1.0], "format": [1.0], "language": [1.0]},
        id="default_profile_r1_math_end_token_ignored",
    ),
    pytest.param(
        None,
        [(PROMPT + WRONG, PROMPT, "1/2"), (PROMPT + RIGHT, PROMPT, 0.5)],
        [0.3, 1.3],
        {"math": [0.0, 1.0], "format": [1.0, 1.0], "language": [1.0, 1.0]},
        id="wrong_answer_keeps_format_bonus_numeric_label",
    ),
    pytest.param(
        "math",
        [(PROMPT + RIGHT, PROMPT, "1/2"), (PROMPT + WRONG, PROMPT, "1/2")],
        [1.0, 0.0],
        {"math": [1.0, 0.0]},
        id="profile_in_path",
    ),
    pytest.param(
        "math",
        [("1/2 = " + PROMPT + RIGHT, PROMPT, "1/2")],
        [1.0],
        {"math": [1.0], "rlvr_prompt_not_found": [1.0]},
        id="query_without_its_prompt_is_scored_whole",
    ),
]


@pytest.mark.parametrize(("profile", "samples", "rewards", "logs"), CASES)
def test_rewards_scores_and_logs(
    live_service: LiveService,
    profile: str | None,
    samples: list[tuple[str, str, Any]],
    rewards: list[float],
    logs: dict[str, list[float]],
) -> None:
    response = get_reward(live_service, request(*samples), profile)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rewards"] == pytest.approx(rewards)
    assert body["scores"] == pytest.approx([min(1.0, max(0.0, r)) for r in rewards])
    for name, values in logs.items():
        assert body["extra_logs"][name] == pytest.approx(values)
    assert body["extra_logs"]["rlvr_masked"] == [0.0] * len(samples)
    assert all(len(v) == len(samples) for v in body["extra_logs"].values())


def test_the_prompt_is_not_scored(live_service: LiveService) -> None:
    # The prompt holds a right boxed answer; only the response (a wrong one) may be judged.
    prompt = PROMPT + "Example: $\\boxed{\\frac{1}{2}}$\n"
    body = get_reward(live_service, request((prompt + WRONG, prompt, "1/2")), "math").json()
    assert body["rewards"] == [0.0]
    assert body["extra_logs"]["rlvr_prompt_not_found"] == [0.0]


def test_a_masked_sample_is_flagged_never_a_silent_zero(live_service: LiveService) -> None:
    samples = [(PROMPT + RIGHT, PROMPT, "???"), (PROMPT + RIGHT, PROMPT, None), (PROMPT + RIGHT, PROMPT, "1/2")]
    body = get_reward(live_service, request(*samples), "math").json()
    assert body["rewards"] == [0.0, 0.0, 1.0]
    assert body["scores"] == [0.0, 0.0, 1.0]
    assert body["extra_logs"]["rlvr_masked"] == [1.0, 1.0, 0.0]
    assert body["extra_logs"]["rlvr_masked_count"] == [2.0, 2.0, 2.0]


BAD = [
    pytest.param(
        {"query": ["a", "b"], "prompts": ["a"], "labels": ["1", "2"]},
        None,
        "length_mismatch",
        ["query has 2", "prompts has 1", "labels has 2"],
        id="mismatched_lengths_named",
    ),
    pytest.param({"query": ["a"], "labels": ["1"]}, None, "invalid_request", ["prompts"], id="missing_prompts"),
    pytest.param(
        {"query": "a", "prompts": ["a"], "labels": ["1"]}, None, "invalid_request", ["query"], id="query_not_a_list"
    ),
    pytest.param(
        {"query": ["a"], "prompts": ["a"], "labels": ["1"]},
        "r2-math",
        "invalid_spec",
        ["path.profile", "valid: code, math, r1-math"],
        id="unknown_profile_in_path",
    ),
]


@pytest.mark.parametrize(("body", "profile", "code", "mentions"), BAD)
def test_bad_requests_get_422_with_a_json_message(
    live_service: LiveService, body: dict[str, Any], profile: str | None, code: str, mentions: list[str]
) -> None:
    response = get_reward(live_service, body, profile)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == code
    for text in mentions:
        assert text in error["message"]
    assert "Traceback" not in response.text


def test_malformed_json_is_a_json_error(live_service: LiveService) -> None:
    response = httpx.post(
        f"{live_service.url}/get_reward", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


END_TOKENS = [
    pytest.param("answer<|im_end|>", "answer", id="im_end"),
    pytest.param("answer <|eot_id|>\n<|endoftext|>  ", "answer", id="several_with_whitespace"),
    pytest.param("answer</s>", "answer", id="eos"),
    pytest.param("answer  \n", "answer  \n", id="no_token_keeps_whitespace"),
    pytest.param("a <|not a token|>", "a <|not a token|>", id="not_a_token_name"),
    pytest.param("<|im_end|>", "", id="only_a_token"),
    pytest.param(" " * 200_000 + "x", " " * 200_000 + "x", id="long_whitespace_is_linear"),
    pytest.param("x" + "<|a|>" * 50_000, "x", id="many_tokens_is_linear"),
]


@pytest.mark.parametrize(("text", "expected"), END_TOKENS)
def test_end_of_turn_tokens_are_stripped(text: str, expected: str) -> None:
    assert strip_end_tokens(text) == expected
