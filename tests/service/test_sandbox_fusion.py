"""SandboxFusion's `POST /run_code` through a live service: the response shapes and statuses veRL reads.

`verl_verdict` classifies a response the way veRL's `sandbox_fusion` reward does (from its published
`check_correctness`): True pass, False wrong answer, -1 API or sandbox error, -2 runtime error, -3 time-out,
-4 compile error. Each case asserts both our exact response and the verdict veRL would draw from it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService, missing_backend, start_service, stop_service

RESPONSE_KEYS = {"status", "message", "compile_result", "run_result", "executor_pod_name", "files"}
RESULT_KEYS = {"status", "execution_time", "return_code", "stdout", "stderr"}


def run_code(url: str, body: Any) -> httpx.Response:
    payload = json.dumps(body).encode()
    return httpx.post(f"{url}/run_code", content=payload, headers={"content-type": "application/json"}, timeout=120)


def verl_verdict(response: dict[str, Any], expected_stdout: str) -> bool | int:
    status, compiled, ran = response["status"], response["compile_result"], response["run_result"]
    if status == "SandboxError":
        return -1
    if status == "Success":
        return ran["stdout"].rstrip("\n") == expected_stdout.rstrip("\n")
    if compiled and (compiled["status"] != "Finished" or compiled["return_code"] != 0):
        return -4
    if ran and ran["status"] == "TimeLimitExceeded":
        return -3
    return -2 if ran and (ran["status"] == "Error" or ran["return_code"] != 0) else -1


def assert_shape(body: dict[str, Any]) -> None:
    assert set(body) == RESPONSE_KEYS and body["executor_pod_name"] is None and body["files"] == {}
    assert isinstance(body["message"], str)
    for stage in (body["compile_result"], body["run_result"]):
        assert stage is None or set(stage) == RESULT_KEYS


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


REVERSE = "print(input()[::-1])"
CPP_ADD = "#include <iostream>\nint main() { int a, b; std::cin >> a >> b; std::cout << a + b << std::endl; }"

# (request, status, compile_result (status, return_code) or None, run_result (status, return_code) or None,
#  a substring of the run's stdout or stderr, veRL's verdict given expected stdout "cba")
CASES = [
    pytest.param(
        {"code": REVERSE, "language": "python", "stdin": "abc\n"},
        "Success", None, ("Finished", 0), "cba\n", True, id="python_pass",
    ),
    pytest.param(
        {"code": "print('abc')", "language": "python3", "stdin": None, "fetch_files": ["out.txt"], "extra": 1},
        "Success", None, ("Finished", 0), "abc\n", False, id="python3_wrong_answer_extra_fields_ignored",
    ),
    pytest.param(
        {"code": "import sys\nsys.exit(4)", "language": "python"},
        "Failed", None, ("Finished", 4), "", -2, id="python_non_zero_exit",
    ),
    pytest.param(
        {"code": "1 / 0", "language": "python"},
        "Failed", None, ("Finished", 1), "ZeroDivisionError", -2, id="python_exception",
    ),
    pytest.param(
        {"code": "def f(:\n", "language": "python"},
        "Failed", None, ("Finished", 1), "SyntaxError", -2, id="python_syntax_error_like_cpython",
    ),
    pytest.param(
        {"code": "while True:\n    pass", "language": "python", "run_timeout": 1},
        "Failed", None, ("TimeLimitExceeded", None), "", -3, id="python_time_limit",
    ),
    pytest.param(
        {"code": "x = bytearray(1 << 31)\nprint('no')", "language": "python", "memory_limit_MB": 128},
        "Failed", None, ("Finished", "non-zero"), "", -2, id="python_memory_limit",
    ),
    pytest.param(
        {"code": "print(open('data/in.txt').read().strip()[::-1])", "language": "python",
         "files": {"data/in.txt": b64("abc\n"), "ignored.bin": None}},
        "Success", None, ("Finished", 0), "cba", True, id="python_reads_a_file",
    ),
    pytest.param(
        {"code": CPP_ADD, "language": "cpp", "stdin": "1 2\n"},
        "Success", ("Finished", 0), ("Finished", 0), "3\n", False, id="cpp_compiles_and_runs",
    ),
    pytest.param(
        {"code": "int main() { return undefined_name; }", "language": "cpp"},
        "Failed", ("Finished", "non-zero"), None, "", -4, id="cpp_compile_error",
    ),
    pytest.param(
        {"code": "const s = require('fs').readFileSync(0, 'utf8').trim();\nconsole.log([...s].reverse().join(''));",
         "language": "nodejs", "stdin": "abc\n"},
        "Success", None, ("Finished", 0), "cba\n", True, id="nodejs_pass",
    ),
    pytest.param(
        {"code": "console.log(;", "language": "nodejs"},
        "Failed", None, ("Finished", "non-zero"), "SyntaxError", -2, id="nodejs_syntax_error_is_a_run_failure",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("request_body", "status", "compiled", "ran", "output", "verdict"), CASES)
def test_run_code_answers_as_sandbox_fusion_does(
    sandboxed: LiveService,
    request_body: dict[str, Any],
    status: str,
    compiled: tuple[str, int | str | None] | None,
    ran: tuple[str, int | str | None] | None,
    output: str,
    verdict: bool | int,
) -> None:
    response = run_code(sandboxed.url, request_body)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_shape(body)
    assert (body["status"], body["message"]) == (status, ""), body
    for expected, stage in ((compiled, body["compile_result"]), (ran, body["run_result"])):
        if expected is None:
            assert stage is None, body
            continue
        assert stage["status"] == expected[0] and isinstance(stage["execution_time"], float), body
        code = stage["return_code"]
        assert code not in (0, None) if expected[1] == "non-zero" else code == expected[1], body
    if ran is not None:
        assert output in body["run_result"]["stdout"] + body["run_result"]["stderr"], body
        assert "rlvr" not in body["run_result"]["stderr"], body
    assert verl_verdict(body, "cba") == verdict


BAD = [
    pytest.param(
        {"code": "print(1)", "language": "php"}, "'php' is not supported", id="sandbox_fusion_language_we_lack"
    ),
    pytest.param({"code": "print(1)", "language": "python", "files": {"a": "!!"}}, "files['a']", id="bad_base64"),
    pytest.param(
        {"code": "print(1)", "language": "python", "files": {"a": base64.b64encode(b"\xff\xfe").decode()}},
        "UTF-8",
        id="binary_file",
    ),
]


@pytest.mark.parametrize(("request_body", "message"), BAD)
def test_what_we_cannot_run_is_a_sandbox_error(
    sandboxed: LiveService, request_body: dict[str, Any], message: str
) -> None:
    response = run_code(sandboxed.url, request_body)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_shape(body)
    assert body["status"] == "SandboxError" and message in body["message"], body
    assert (body["compile_result"], body["run_result"]) == (None, None)
    assert verl_verdict(body, "") == -1


MALFORMED = [
    pytest.param({"code": "print(1)", "language": "klingon"}, ["body", "language"], id="unknown_language"),
    pytest.param({"language": "python"}, ["body", "code"], id="no_code"),
    pytest.param(
        {"code": "print(1)", "language": "python", "run_timeout": "soon"}, ["body", "run_timeout"], id="bad_timeout"
    ),
    pytest.param(
        {"code": "print(1)", "language": "python", "run_timeout": 0}, ["body", "run_timeout"], id="zero_timeout"
    ),
    pytest.param({"code": "print(1)", "language": "python", "files": ["a"]}, ["body", "files"], id="files_not_a_dict"),
]


@pytest.mark.parametrize(("request_body", "loc"), MALFORMED)
def test_malformed_requests_are_a_422_at_the_field(
    sandboxed: LiveService, request_body: dict[str, Any], loc: list[str]
) -> None:
    # SandboxFusion's own answer to these (its `language` is an enum): FastAPI's 422 with `detail[].loc`.
    response = run_code(sandboxed.url, request_body)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"][0]["loc"] == loc and body["code"] in {"invalid_request", "unknown_language"}, body
    assert "Traceback" not in response.text


def test_without_a_sandbox_every_request_is_a_sandbox_error(no_sandbox: LiveService) -> None:
    response = run_code(no_sandbox.url, {"code": REVERSE, "language": "python", "stdin": "abc\n"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_shape(body)
    assert body["status"] == "SandboxError" and "no code sandbox" in body["message"], body
    assert verl_verdict(body, "cba") == -1


def test_invalid_json_is_a_422_without_a_traceback(sandboxed: LiveService) -> None:
    response = httpx.post(
        f"{sandboxed.url}/run_code", content=b"{not json", headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"
    assert "Traceback" not in response.text


WRITES_FILES = """
import os, sys
open('out.txt', 'w').write('written\\n')
os.mkdir('sub')
open('sub/data.bin', 'wb').write(bytes(range(256)))
os.symlink('/etc/passwd', 'evil')
os.symlink('../../something', 'up')
print('done')
sys.exit(int(input()))
"""


@pytest.mark.parametrize(("exit_code", "status"), [(0, "Success"), (3, "Failed")])
def test_fetch_files_come_back_base64_and_nothing_else_does(
    sandboxed: LiveService, exit_code: int, status: str
) -> None:
    fetch = ["out.txt", "sub/data.bin", "missing.txt", "evil", "up", "../x", "/etc/passwd", "../../something"]
    body = {"code": WRITES_FILES, "language": "python", "stdin": f"{exit_code}\n", "fetch_files": fetch}
    response = run_code(sandboxed.url, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["status"], answer["run_result"]["return_code"]) == (status, exit_code), answer
    assert answer["run_result"]["stdout"] == "done\n"
    # fetched whatever the run's status; a missing file, a symlink, `..` and an absolute path are absent
    files = {path: base64.b64decode(data) for path, data in answer["files"].items()}
    assert files == {"out.txt": b"written\n", "sub/data.bin": bytes(range(256))}


def test_a_compiled_program_fetches_its_files_too(sandboxed: LiveService) -> None:
    code = '#include <cstdio>\nint main() { FILE *f = std::fopen("out.txt", "w"); std::fputs("42", f); }'
    response = run_code(sandboxed.url, {"code": code, "language": "cpp", "fetch_files": ["out.txt", "main"]})
    answer = response.json()
    assert answer["status"] == "Success", answer
    assert base64.b64decode(answer["files"]["out.txt"]) == b"42"


@pytest.fixture(scope="module")
def small_budget() -> Iterator[LiveService]:
    """A service whose jobs may send back at most 3 MB (``max_result_mb``; a run's outputs reserve 2 of them)."""
    backend = os.environ.get("RLVR_TEST_SANDBOX_BACKEND", "auto")
    service, server, thread = start_service(
        workers=1, sandbox={"backend": backend, "pool_size": 1, "max_result_mb": 3, "compile_cache_mb": 0}
    )
    try:
        sandbox = httpx.get(f"{service.url}/readyz").json()["sandbox"]
        if not sandbox["available"]:
            missing_backend(f"the service found no code sandbox ({sandbox['reason']})")
        yield service
    finally:
        stop_service(server, thread)


def test_a_fetched_file_past_the_result_budget_is_absent(small_budget: LiveService) -> None:
    code = "open('big.bin', 'wb').write(b'x' * 4_000_000)\nopen('small.txt', 'w').write('ok')\nprint('done')"
    response = run_code(small_budget.url, {"code": code, "language": "python", "fetch_files": ["big.bin", "small.txt"]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["status"], answer["run_result"]["stdout"]) == ("Success", "done\n"), answer
    assert {path: base64.b64decode(data) for path, data in answer["files"].items()} == {"small.txt": b"ok"}
