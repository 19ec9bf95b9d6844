"""NeMo Gym 0.7's resources-server `/verify`, posted as its math (`math_with_judge`) and code (`code_gen`) servers
receive it: the dataset row plus the Responses-API response."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService

PROGRAM = "```python\nprint(sum(map(int, input().split())))\n```"
SOLUTION = "```python\nclass Solution:\n    def add(self, a, b):\n        return a + b\n```"


def message(*texts: str) -> dict[str, Any]:
    parts = [{"type": "output_text", "text": text, "annotations": []} for text in texts]
    return {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": parts}


def rollout(*output: dict[str, Any], **task: Any) -> dict[str, Any]:
    """What NeMo Gym's simple agent posts: every field of the row, the response, a rollout id."""
    return {
        "responses_create_params": {"input": [{"role": "user", "content": "Solve it."}]},
        "response": {"id": "resp_1", "object": "response", "model": "policy", "output": list(output)},
        "_ng_rollout_id": "r-7",
        "agent_ref": {"name": "math_agent"},
        **task,
    }


def packed(inputs: list[str], outputs: list[str]) -> str:
    return base64.b64encode(zlib.compress(json.dumps({"inputs": inputs, "outputs": outputs}).encode())).decode()


def verify(service: LiveService, body: Any, profile: str | None = None) -> httpx.Response:
    params = {} if profile is None else {"profile": profile}
    return httpx.post(f"{service.url}/verify", json=body, params=params, timeout=120)


TOOL_CALL = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "2"}]}
STDIN_TESTS = {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"], "fn_name": None}

CASES = [
    pytest.param(
        rollout(message("The sum is \\boxed{1}."), expected_answer="1", question="What is 1/2 + 1/2?"),
        None, 1.0, False, {"math": 1.0}, id="math_right",
    ),
    pytest.param(
        rollout(REASONING, message("Half of it: ", "\\boxed{3}"), expected_answer="1/2"),
        None, 0.0, False, {"math": 0.0}, id="math_wrong_reasoning_ignored",
    ),
    pytest.param(
        rollout(message("First: \\boxed{1}. "), TOOL_CALL,
                message("Checked: \\boxed{2}"), expected_answer="2"),
        None, 1.0, False, {"math": 1.0}, id="math_all_messages_joined_last_box_wins",
    ),
    pytest.param(
        rollout(message("\\boxed{1}"), expected_answer="\\frac{"),
        None, 0.0, True, {"math": 0.0}, id="math_bad_reference_masked",
    ),
    pytest.param(
        rollout(message("\\boxed{1}"), expected_answer="1", question="What is 1?"),
        "r1-math", 1.0, False, {"math": 1.0, "format": 0.0}, id="profile_query_overrides",
    ),
    pytest.param(
        rollout(message("```\nno fence language\n```"), verifier_metadata={"unit_tests": {"inputs": [],
                                                                                          "outputs": []}}),
        None, 0.0, True, {"code": 0.0}, id="code_no_tests_masked_not_passed",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "profile", "reward", "masked", "components"), CASES)
def test_verify_scores_math_and_masks_what_cannot_be_judged(
    live_service: LiveService,
    body: dict[str, Any],
    profile: str | None,
    reward: float,
    masked: bool,
    components: dict[str, float],
) -> None:
    response = verify(live_service, body, profile)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["reward"], answer["mask_sample"]) == (reward, masked)
    assert {k: v for k, v in answer["reward_components"].items() if k in components} == components
    assert (answer["failure_kind"] is not None) == masked
    assert (answer["failure_reason"] is not None) == masked
    echoed = {k: v for k, v in body.items() if k != "_ng_rollout_id"}
    assert {k: answer[k] for k in echoed} == echoed
    assert "_ng_rollout_id" not in answer


CODE_CASES = [
    pytest.param(PROGRAM, STDIN_TESTS, 1.0, id="stdin_tests_pass"),
    pytest.param(PROGRAM.replace("sum(map(int, input().split()))", "3"), STDIN_TESTS, 0.5, id="stdin_tests_half"),
    pytest.param(PROGRAM, {"packed": packed(["1 2\n"], ["3\n"])}, 1.0, id="packed_tests"),
    pytest.param(SOLUTION, {"inputs": ["1\n2", "5\n-5"], "outputs": ["3", "0"], "fn_name": "add"}, 1.0, id="call"),
]


@pytest.mark.docker
@pytest.mark.parametrize(("text", "unit_tests", "reward"), CODE_CASES)
def test_verify_runs_code_requests_against_their_unit_tests(
    live_service: LiveService, text: str, unit_tests: dict[str, Any], reward: float
) -> None:
    body = rollout(message(text), verifier_metadata={"unit_tests": unit_tests, "difficulty": "easy"})
    answer = verify(live_service, body).json()
    assert (answer["reward"], answer["mask_sample"], answer["reward_components"]) == (reward, False, {"code": reward})
    assert answer["verifier_metadata"] == body["verifier_metadata"]


BAD = [
    pytest.param({"response": {"output": []}, "expected_answer": "1"}, ["body", "responses_create_params"],
                 id="no_create_params"),
    pytest.param(rollout(expected_answer="1") | {"response": {"id": "r"}}, ["body", "response", "output"],
                 id="response_without_output"),
    pytest.param(rollout(message("x")), ["body"], id="neither_math_nor_code"),
    pytest.param(rollout(message("x"), verifier_metadata={"unit_tests": {"inputs": ["1"], "outputs": []}}),
                 ["body", "verifier_metadata", "unit_tests"], id="unit_test_lists_differ"),
    pytest.param(rollout(message("x"), verifier_metadata={"unit_tests": {"packed": "not base64!"}}),
                 ["body", "verifier_metadata", "unit_tests"], id="packed_not_base64"),
    pytest.param(rollout(message("x"), verifier_metadata={"unit_tests": {"inputs": ["{"], "outputs": ["1"],
                                                                         "fn_name": "f"}}),
                 ["body", "verifier_metadata", "unit_tests"], id="call_inputs_not_json"),
    pytest.param("not an object", ["body"], id="not_json_object"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "loc"), BAD)
def test_malformed_requests_get_fastapis_422_and_never_a_traceback(
    live_service: LiveService, body: Any, loc: list[str]
) -> None:
    response = verify(live_service, body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [e["loc"][: len(loc)] for e in detail][0] == loc, detail
    assert all(isinstance(e["msg"], str) and e["type"] for e in detail)
    assert "Traceback" not in response.text


def test_unknown_profile_is_a_validation_error_naming_the_query(live_service: LiveService) -> None:
    response = verify(live_service, rollout(message("\\boxed{1}"), expected_answer="1"), profile="nope")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "profile"]
