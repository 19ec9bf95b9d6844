"""Limits: request-level ones refuse the request naming the limit and its variable; per-item ones settle the item
(masked when the dataset is at fault, a score of 0 when the completion is) and score the rest of its batch; the
per-client limit of batches in flight refuses one more with 429."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.service.conftest import gated_app, until

LIMITS = {"max_items": 3, "max_body_bytes": 2048, "max_tests": 2, "max_code_bytes": 64}


BIG_PROGRAM = {"id": "big", "language": "python", "source": "print('é')#" + "#" * 53}  # 64 characters, 65 bytes


def score_body(*completions: str) -> dict[str, Any]:
    return {"rewards": {"format": {}}, "items": [{"id": str(i), "completion": c} for i, c in enumerate(completions)]}


def get_reward_body(samples: int) -> dict[str, Any]:
    return {"query": ["q \\boxed{1}"] * samples, "prompts": ["q "] * samples, "labels": ["1"] * samples}


@pytest.mark.parametrize(
    ("path", "body", "code", "named"),
    [
        pytest.param(
            "/v1/score", score_body("a", "b", "c", "d"), "too_many_items", ["RLVR_MAX_ITEMS", "3"], id="items"
        ),
        pytest.param("/get_reward", get_reward_body(4), "too_many_items", ["RLVR_MAX_ITEMS", "3"], id="items_openrlhf"),
        pytest.param("/v1/score", score_body("x" * 3000), "too_large", ["RLVR_MAX_BODY_BYTES", "2048"], id="bytes"),
        pytest.param("/verify", {"pad": "x" * 3000}, "too_large", ["RLVR_MAX_BODY_BYTES", "2048"], id="bytes_verify"),
        pytest.param(
            "/v1/run",
            {"programs": [{"id": "p", "language": "python", "source": "print(1)"}, BIG_PROGRAM]},
            "too_large",
            ["programs.1.source", "65 bytes", "RLVR_MAX_CODE_BYTES", "64"],
            id="code_bytes_run",
        ),
    ],
)
async def test_a_request_over_a_limit_is_413_naming_the_limit_and_its_variable(
    path: str, body: dict[str, Any], code: str, named: list[str]
) -> None:
    async with gated_app(**LIMITS) as gated, gated.client() as client:
        response = await client.post(path, json=body)
    assert response.status_code == 413
    assert response.json()["code"] == code
    assert all(part in response.json()["message"] for part in named), response.json()["message"]


@pytest.mark.parametrize(
    ("code", "status", "named"),
    [
        pytest.param(BIG_PROGRAM["source"], "SandboxError", ["code: 65 bytes", "RLVR_MAX_CODE_BYTES"], id="over"),
        pytest.param("#" * 64, "SandboxError", ["no code sandbox"], id="at_the_limit"),  # judged: then no sandbox
    ],
)
async def test_run_code_over_the_code_limit_is_a_sandbox_error_naming_it(
    code: str, status: str, named: list[str]
) -> None:
    """SandboxFusion's shape for a program it will not run: a 200 with status SandboxError, a failed test to veRL."""
    async with gated_app(**LIMITS) as gated, gated.client() as client:
        response = await client.post("/run_code", json={"code": code, "language": "python"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    assert all(part in response.json()["message"] for part in named), response.json()["message"]


def code_item(item_id: str, completion: str, tests: int) -> dict[str, Any]:
    tests_list = [{"type": "stdin_stdout", "input": "", "output": "ok\n"}] * tests
    return {"id": item_id, "completion": completion, "language": "python", "tests": tests_list, "profile": "code"}


async def test_an_item_over_a_per_item_limit_is_settled_alone_and_the_rest_of_its_batch_is_scored() -> None:
    small = "```python\nprint('ok')\n```"
    items = [
        code_item("big_program", "```python\n" + "#" * 100 + "\nprint('ok')\n```", tests=1),
        code_item("non_ascii_program", "```python\nprint('éé')\n" + "#" * 38 + "\n```", tests=1),  # 64 characters
        code_item("many_tests", small, tests=3),
        code_item("within_limits", small, tests=2),
        {"id": "math", "completion": "\\boxed{1}", "reference": "1"},
    ]
    async with gated_app(**{**LIMITS, "max_items": 8, "max_body_bytes": 1 << 20}) as gated, gated.client() as client:
        response = await client.post("/v1/score", json={"profile": "math", "items": items})
    assert response.status_code == 200, response.text
    results = {result["id"]: result for result in response.json()["results"]}
    masked = results["many_tests"]  # the dataset's doing: masked
    assert (masked["reward"], masked["mask"], masked["failure_kind"]) == (None, True, "invalid_item")
    reason = masked["failure_reason"]
    assert all(part in reason for part in ["3 tests", "RLVR_MAX_TESTS", "2"]), reason
    for item_id, named in [  # the completion's doing: a huge answer scores what a wrong one does, never a mask
        ("big_program", ["RLVR_MAX_CODE_BYTES", "64"]),
        ("non_ascii_program", ["a completion of 66 bytes", "RLVR_MAX_CODE_BYTES"]),
    ]:
        failed = results[item_id]
        assert (failed["reward"], failed["mask"], failed["failure_kind"]) == (0.0, False, None), item_id
        reason = failed["components"]["code"]["details"]["reason"]
        assert all(part in reason for part in named), reason
    assert [results[i]["reward"] for i in ("within_limits", "math")] == [1.0, 1.0]


Who = tuple[str | None, str]  # a client: (its bearer token or None, its address)
TOKENS = {"api_tokens": ["token-a", "token-b"]}


@pytest.mark.parametrize(
    ("settings", "holder", "other", "path", "status"),
    [
        pytest.param(TOKENS, ("token-a", "10.0.0.1"), ("token-a", "10.0.0.2"), "/v1/score", 429, id="same_token"),
        pytest.param(TOKENS, ("token-a", "10.0.0.1"), ("token-b", "10.0.0.1"), "/v1/score", 200, id="other_token"),
        pytest.param({}, (None, "10.0.0.1"), (None, "10.0.0.1"), "/v1/score", 429, id="same_address"),
        pytest.param({}, (None, "10.0.0.1"), (None, "10.0.0.2"), "/v1/score", 200, id="other_address"),
        pytest.param({}, (None, "10.0.0.1"), (None, "10.0.0.1"), "/get_reward", 429, id="same_client_openrlhf"),
        pytest.param({}, (None, "10.0.0.1"), (None, "10.0.0.1"), "/run_code", 504, id="same_client_sandbox_fusion"),
    ],
)
async def test_a_client_at_its_limit_of_batches_in_flight_is_refused_until_one_is_answered(
    settings: dict[str, Any], holder: Who, other: Who, path: str, status: int
) -> None:
    body = get_reward_body(1) if path == "/get_reward" else score_body("quick")
    if path == "/run_code":
        body = {"code": "print(1)", "language": "python"}
    async with gated_app(max_concurrent_batches_per_client=2, **settings) as gated:
        async with gated.client(*holder) as first, gated.client(*other) as second:
            held = [asyncio.create_task(first.post("/v1/score", json=score_body("hold"))) for _ in range(2)]
            await until(lambda: gated.held == 2)
            response = await second.post(path, json=body)
            assert response.status_code == status, response.text
            if status != 200:
                assert response.json()["code"] == "too_many_batches"
                assert "RLVR_MAX_CONCURRENT_BATCHES_PER_CLIENT=2" in response.json()["message"]
                assert response.headers["Retry-After"] == "1"
            gated.release()
            assert [(await task).status_code for task in held] == [200, 200]
            assert (await second.post("/v1/score", json=score_body("quick"))).status_code == 200


async def test_an_invalid_token_holds_no_slot_and_gets_401() -> None:
    async with gated_app(max_concurrent_batches_per_client=1, **TOKENS) as gated:
        async with gated.client("token-a") as holder, gated.client("wrong") as stranger:
            held = asyncio.create_task(holder.post("/v1/score", json=score_body("hold")))
            await until(lambda: gated.held == 1)
            assert [(await stranger.post("/v1/score", json=score_body("quick"))).status_code for _ in range(2)] == [
                401,
                401,
            ]
            gated.release()
            assert (await held).status_code == 200


async def test_no_limit_by_default() -> None:
    async with gated_app() as gated, gated.client() as client:
        held = [asyncio.create_task(client.post("/v1/score", json=score_body("hold"))) for _ in range(20)]
        await until(lambda: gated.held == 20)
        gated.release()
        assert {(await task).status_code for task in held} == {200}
