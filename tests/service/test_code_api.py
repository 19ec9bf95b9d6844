"""Code through the service: `/v1/score` code items, `/v1/run`, no-sandbox behaviour and backpressure."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService, missing_backend, start_service, stop_service

CODE_ITEM = {
    "id": "c",
    "completion": "```python\nprint(input())\n```",
    "tests": [{"type": "stdin_stdout", "input": "1", "output": "1"}],
}

ADD = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
WRONG = "```python\nprint(0)\n```"
STDIN_TESTS = [
    {"type": "stdin_stdout", "input": "1 2\n", "output": "3\n"},
    {"type": "stdin_stdout", "input": "5 7\n", "output": "12\n"},
]


def post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(
        url + path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}, timeout=180
    )


HOSTILE = [
    pytest.param("while True:\n    pass", "TLE", id="infinite_loop"),
    pytest.param("import os\nwhile True:\n    os.fork()", None, id="fork_bomb"),
    pytest.param("x = bytearray(1 << 34)", None, id="memory_bomb"),
    pytest.param("import sys\nsys.setrecursionlimit(10**9)\ndef f(n): return f(n+1)\nf(0)", None, id="deep_recursion"),
    pytest.param("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)", "RE", id="socket_out"),
]


@pytest.mark.parametrize(("program", "status"), HOSTILE)
def test_hostile_programs_score_zero_and_the_service_keeps_serving(
    sandboxed: LiveService, program: str, status: str | None
) -> None:
    items = [
        {"id": "good", "completion": ADD, "language": "python", "tests": STDIN_TESTS},
        {"id": "evil", "completion": f"```python\n{program}\n```", "language": "python", "tests": [STDIN_TESTS[0]]},
    ]
    response = post(
        sandboxed.url, "/v1/score", {"rewards": {"code": {"timeout_s": 2, "memory_mb": 256}}, "items": items}
    )
    assert response.status_code == 200, response.text
    good, evil = response.json()["results"]
    assert (good["reward"], evil["reward"], evil["mask"]) == (1.0, 0.0, False), response.text[:2000]
    if status:
        assert evil["components"]["code"]["details"]["tests"][0]["status"] == status
    assert httpx.get(f"{sandboxed.url}/healthz").status_code == 200


def test_code_items_mix_with_math_in_one_batch(sandboxed: LiveService) -> None:
    items = [
        {"id": "c-ok", "completion": ADD, "language": "python", "tests": STDIN_TESTS},
        {"id": "c-wrong", "completion": WRONG, "language": "python", "tests": STDIN_TESTS},
        {
            "id": "m",
            "completion": "$\\boxed{2}$",
            "reference": "2",
            "rewards": {"math": {"weight": 1.0}, "code": {"weight": 0.0}},
        },
    ]
    response = post(sandboxed.url, "/v1/score", {"rewards": {"code": {}}, "items": items})
    assert response.status_code == 200, response.text
    assert [r["reward"] for r in response.json()["results"]] == [1.0, 0.0, 1.0]


def test_raw_run_returns_each_run(sandboxed: LiveService) -> None:
    body = {
        "programs": [
            {"id": "rev", "language": "python", "source": "print(input()[::-1])"},
            {
                "id": "cpp",
                "language": "cpp",
                "source": "#include <iostream>\nint main(){std::string s;std::cin>>s;std::cout<<s.size();}",
            },
        ],
        "inputs": [{"stdin": "abc\n"}, {"stdin": "hello\n"}],
    }
    response = post(sandboxed.url, "/v1/run", body)
    assert response.status_code == 200, response.text
    rev, cpp = response.json()["results"]
    assert [r["stdout"] for r in rev["runs"]] == ["cba\n", "olleh\n"]
    assert cpp["compile"]["status"] == "OK" and [r["stdout"] for r in cpp["runs"]] == ["3", "5"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        pytest.param(
            "/v1/run",
            {"programs": [{"id": "x", "language": "cobol", "source": ""}]},
            422,
            "unknown_language",
            id="unknown_language",
        ),
        pytest.param(
            "/v1/run", {"programs": [{"id": "x", "language": "python"}]}, 422, "invalid_request", id="missing_source"
        ),
    ],
)
def test_bad_code_requests(live_service: LiveService, path: str, body: Any, status: int, code: str) -> None:
    response = post(live_service.url, path, body)
    if response.status_code == 503:
        missing_backend("the service found no code sandbox")
    assert (response.status_code, response.json()["code"]) == (status, code)


def test_without_a_sandbox_code_is_masked_and_math_still_works(no_sandbox: LiveService) -> None:
    items = [
        {"id": "c", "completion": ADD, "language": "python", "tests": STDIN_TESTS},
        {
            "id": "m",
            "completion": "$\\boxed{2}$",
            "reference": "2",
            "rewards": {"math": {"weight": 1.0}, "code": {"weight": 0.0}},
        },
    ]
    response = post(no_sandbox.url, "/v1/score", {"rewards": {"code": {}}, "items": items})
    code, math = response.json()["results"]
    assert (code["reward"], code["mask"], code["failure_kind"]) == (None, True, "no_sandbox")
    assert math["reward"] == 1.0
    run = post(no_sandbox.url, "/v1/run", {"programs": [{"id": "x", "language": "python", "source": "pass"}]})
    assert run.status_code == 503 and run.json()["code"] == "no_sandbox" and "Retry-After" in run.headers
    assert httpx.get(f"{no_sandbox.url}/readyz").json()["sandbox"]["available"] is False


@pytest.fixture(scope="module")
def tiny_queue(sandboxed: LiveService) -> Iterator[LiveService]:
    backend = httpx.get(f"{sandboxed.url}/readyz").json()["sandbox"]["backend"]
    service, server, thread = start_service(workers=1, sandbox={"backend": backend, "pool_size": 1, "queue_limit": 1})
    yield service
    stop_service(server, thread)


def test_a_full_sandbox_queue_answers_429_with_retry_after(tiny_queue: LiveService) -> None:
    # One sandbox, room for one waiting job. A batch that finds nothing admitted is always taken, however large;
    # while its jobs wait, a batch that would wait beyond the limit is refused whole, on every front door.
    sleepers = [{"id": str(i), "language": "python", "source": "import time\ntime.sleep(1.5)"} for i in range(3)]
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, tiny_queue.url, "/v1/run", {"programs": sleepers})
        _wait_until_busy(tiny_queue.url)
        refused = {
            "/v1/run": post(tiny_queue.url, "/v1/run", {"programs": sleepers[:1]}),
            "/v1/score": post(tiny_queue.url, "/v1/score", {"rewards": {"code": {}}, "items": [CODE_ITEM]}),
            "/run_code": post(tiny_queue.url, "/run_code", {"code": "print(1)", "language": "python"}),
        }
        assert first.result().status_code == 200
    for door, response in refused.items():
        assert response.status_code == (504 if door == "/run_code" else 429), door
        assert int(response.headers["Retry-After"]) >= 1, door
    assert refused["/v1/run"].json()["code"] == "overloaded"
    assert refused["/run_code"].json()["status"] == "SandboxError"
    after = post(tiny_queue.url, "/v1/run", {"programs": sleepers[:1]})
    assert after.status_code == 200


def _wait_until_busy(url: str) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/readyz").json()["sandbox"]["stats"]["admitted"] == 0:
        assert time.monotonic() < deadline, "the first batch never reached the sandbox"
        time.sleep(0.02)


def test_an_item_over_the_test_limit_is_masked_and_its_batch_is_scored(live_service: LiveService) -> None:
    items = [
        {"id": "many", "completion": ADD, "tests": [STDIN_TESTS[0]] * 1001},
        {"id": "math", "completion": "$\\boxed{2}$", "reference": "2", "rewards": {"code": None, "math": {}}},
    ]
    response = post(live_service.url, "/v1/score", {"rewards": {"code": {}}, "items": items})
    assert response.status_code == 200
    many, math = response.json()["results"]
    assert (many["mask"], many["failure_kind"]) == (True, "invalid_item")
    assert "1001 tests" in many["failure_reason"] and "RLVR_MAX_TESTS" in many["failure_reason"]
    assert math["reward"] == 1.0
