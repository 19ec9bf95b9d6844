"""The code checker: pure parts first (no backend), then whole items through a real sandbox of each backend.

The end-to-end tables run every item through ``sandboxes.select.open_sandbox`` with bubblewrap and with docker;
a backend that cannot run here is skipped locally and fails under RLVR_REQUIRE_SANDBOXES=1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, get_args

import pytest
import pytest_asyncio
from pydantic import ValidationError

from rewards.checker import load_checker
from rewards.code import (
    CHECKER,
    COMPARATORS,
    AssertTest,
    CallTest,
    CodeSettings,
    ComparatorName,
    InvalidItem,
    ItemPlan,
    StdinStdoutTest,
    assert_as_calls,
    extract_code,
    language_tags,
    no_code_score,
    plan_item,
    score,
    validate_tests,
    work_key,
)
from rewards.code import (
    check as code_check,
)
from rewards.compare import decode_value
from rewards.result import CheckResult, FailureKind, Sample, Status
from sandboxes.base import (
    ExecResult,
    Job,
    JobResult,
    Run,
    RunStatus,
    Sandbox,
    SandboxError,
    SandboxJobFailed,
    SandboxLost,
    SandboxOverloaded,
    SandboxUnavailable,
)
from sandboxes.config import SandboxConfig
from sandboxes.languages import resolve_language
from sandboxes.select import open_sandbox
from tests.conftest import missing_backend

FENCE = "```"


def block(tag: str, code: str) -> str:
    return f"{FENCE}{tag}\n{code}\n{FENCE}"


# ------------------------------------------------------------------------------------------------ extraction

EXTRACTION = [
    pytest.param(f"{block('python', 'a = 1')}\ntext\n{block('python', 'b = 2')}", "python", "b = 2", id="last_block"),
    pytest.param(block("py", "x = 1"), "python", "x = 1", id="alias_py"),
    pytest.param(block("Python3", "x = 1"), "python", "x = 1", id="alias_case_insensitive"),
    pytest.param(block("c++", "int main(){}"), "cpp", "int main(){}", id="alias_c++"),
    pytest.param(block("js", "f()"), "javascript", "f()", id="alias_js"),
    pytest.param(block("", "x = 1"), "python", "x = 1", id="untagged_fallback"),
    pytest.param(f"{block('python', 'a')}\n{block('', 'b')}", "python", "a", id="tagged_beats_later_untagged"),
    pytest.param(f"{block('python', 'a')}\n{block('bash', 'ls')}", "python", "a", id="other_language_ignored"),
    pytest.param(block("bash", "ls"), "python", None, id="only_other_language"),
    pytest.param(block("cpp", "int main(){}"), "python", None, id="wrong_language_block"),
    pytest.param(
        f"<think>\n{block('python', 'bad')}\n</think>\n{block('python', 'good')}", "python", "good", id="after_think"
    ),
    pytest.param(f"<think>\n{block('python', 'x')}\n</think>\nno code here", "python", None, id="code_only_in_think"),
    pytest.param(f"<think>\n{block('python', 'x')}", "python", None, id="think_never_closed"),
    pytest.param(f"{block('python', 'x')}\n</think>\n{block('python', 'y')}", "python", "y", id="prefilled_think"),
    pytest.param(f"{FENCE}python\nprint(1)", "python", "print(1)", id="unclosed_fence_runs_to_end"),
    pytest.param("~~~python\nx = 1\n~~~", "python", "x = 1", id="tilde_fence"),
    pytest.param("````python\ns = '```'\n````", "python", "s = '```'", id="longer_fence_holds_backticks"),
    pytest.param(f"use {FENCE}python x{FENCE} inline", "python", None, id="inline_backticks_not_a_fence"),
    pytest.param(f"{FENCE}python\r\nx = 1\r\n{FENCE}\r\n", "python", "x = 1", id="crlf"),
    pytest.param(block("python", "   "), "python", None, id="empty_block"),
    pytest.param("no code at all", "python", None, id="no_fence"),
]


@pytest.mark.parametrize(("completion", "language", "expected"), EXTRACTION)
def test_extract_last_block(completion: str, language: str, expected: str | None) -> None:
    assert extract_code(completion, language_tags(resolve_language(language))) == expected


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        pytest.param("<think>plan</think>\nprint(1)\n", "\nprint(1)\n", id="after_think"),
        pytest.param("print(2)", "print(2)", id="no_think"),
        pytest.param("<think>plan</think>  \n", None, id="empty_answer"),
    ],
)
def test_extract_whole(completion: str, expected: str | None) -> None:
    assert extract_code(completion, language_tags(resolve_language("python")), "whole") == expected


# ----------------------------------------------------------------------------------------------- comparators
# The rules themselves are tested in tests/rewards/test_compare.py.


def test_comparator_names_match_the_setting() -> None:
    assert set(get_args(ComparatorName)) == set(COMPARATORS)


# ---------------------------------------------------------------------------------------------------- scores


@pytest.mark.parametrize(
    ("mode", "passed", "total", "compile_error", "expected"),
    [
        pytest.param("pass_rate", 4, 5, False, 0.8, id="pass_rate"),
        pytest.param("pass_rate", 0, 5, True, 0.0, id="pass_rate_compile_error"),
        pytest.param("all_or_nothing", 4, 5, False, 0.0, id="all_or_nothing_miss"),
        pytest.param("all_or_nothing", 5, 5, False, 1.0, id="all_or_nothing_hit"),
        pytest.param("weighted", 5, 5, False, 1.1, id="weighted_all"),
        pytest.param("weighted", 4, 5, False, 0.08, id="weighted_some"),
        pytest.param("weighted", 0, 5, False, 0.0, id="weighted_none"),
        pytest.param("weighted", 0, 5, True, -0.1, id="weighted_compile_error"),
    ],
)
def test_score(mode: Any, passed: int, total: int, compile_error: bool, expected: float) -> None:
    assert score(mode, passed, total, compile_error=compile_error) == pytest.approx(expected)


@pytest.mark.parametrize(("mode", "expected"), [("pass_rate", 0.0), ("all_or_nothing", 0.0), ("weighted", -1.0)])
def test_no_code_score(mode: Any, expected: float) -> None:
    assert no_code_score(mode) == expected


# ----------------------------------------------------------------------------------------------------- tests

STDIN = {"type": "stdin_stdout", "input": "1 2\n", "output": "3\n"}

INVALID_TESTS = [
    pytest.param(None, "tests", id="missing"),
    pytest.param([], "tests", id="empty"),
    pytest.param("1 2", "tests", id="a_string"),
    pytest.param(["x"], "tests[0]", id="not_an_object"),
    pytest.param([{"input": "1", "output": "1"}], "tests[0].type", id="no_type"),
    pytest.param([{"type": "stdin", "input": "1"}], "tests[0].type", id="unknown_type"),
    pytest.param([{"type": "stdin_stdout", "input": "1"}], "tests[0].output", id="no_output"),
    pytest.param([STDIN, {"type": "stdin_stdout", "output": 3}], "tests[1].output", id="output_not_text"),
    pytest.param([{**STDIN, "outputs": "3"}], "tests[0].outputs", id="unknown_key"),
    pytest.param([{"type": "call", "args": [1], "expected": 2}], "tests[0].fn_name", id="call_no_fn_name"),
    pytest.param([{"type": "call", "fn_name": "f(); g", "expected": 2}], "tests[0].fn_name", id="fn_name_not_name"),
    pytest.param([{"type": "call", "fn_name": "f", "args": "1,2", "expected": 3}], "tests[0].args", id="args_text"),
    pytest.param([{"type": "call", "fn_name": "f", "args": [1]}], "tests[0].expected", id="call_no_expected"),
    pytest.param([STDIN, STDIN, {"type": "assert"}], "tests[2].code", id="assert_no_code"),
    pytest.param([{"type": "assert", "code": "assert f()", "entry_point": 3}], "tests[0].entry_point", id="entry"),
]


@pytest.mark.parametrize(("raw", "field"), INVALID_TESTS)
def test_validate_tests_names_the_field(raw: Any, field: str) -> None:
    with pytest.raises(InvalidItem) as caught:
        validate_tests(raw)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, ValueError)


def test_validate_tests_max_tests() -> None:
    with pytest.raises(InvalidItem, match="3 tests, more than max_tests=2"):
        validate_tests([STDIN] * 3, max_tests=2)


def test_validate_tests_parses_each_type() -> None:
    tests = validate_tests(
        [
            {"type": "stdin_stdout", "output": "ok"},
            {"type": "call", "fn_name": "twoSum", "args": [[2, 7], 9], "expected": None},
            {"type": "assert", "code": "def check(f): assert f(1) == 2", "entry_point": "inc"},
        ]
    )
    assert [test.type for test in tests] == ["stdin_stdout", "call", "assert"]
    assert isinstance(tests[0], StdinStdoutTest) and tests[0].input == ""
    assert isinstance(tests[1], CallTest) and tests[1].args == [[2, 7], 9] and tests[1].expected is None


# -------------------------------------------------------------------------------------------------- planning

PY_SUM = block("python", "a, b = map(int, input().split())\nprint(a + b)")


def _plan(sample: Sample, **settings: Any) -> ItemPlan | CheckResult:
    return plan_item(sample, CodeSettings(**settings))


def _masked(result: ItemPlan | CheckResult) -> CheckResult:
    assert isinstance(result, CheckResult)
    assert result.masked and result.score is None and result.failure_kind == FailureKind.INVALID_ITEM
    return result


def test_unknown_language_is_an_invalid_item() -> None:
    result = _masked(_plan(Sample(PY_SUM, language="cobol", tests=(STDIN,))))
    assert result.details["field"] == "language"
    assert "cobol" in (result.failure_reason or "") and "python" in (result.failure_reason or "")


def test_malformed_test_is_an_invalid_item() -> None:
    result = _masked(_plan(Sample(PY_SUM, language="python", tests=(STDIN, {"type": "call", "fn_name": "f"}))))
    assert result.details["field"] == "tests[1].expected"


def test_call_tests_need_a_harness_language() -> None:
    call = {"type": "call", "fn_name": "f", "args": [], "expected": 1}
    result = _masked(_plan(Sample(block("cpp", "int f(){return 1;}"), language="cpp", tests=(call,))))
    assert result.details["field"] == "tests[0].type"
    assert "python" in (result.failure_reason or "")


@pytest.mark.parametrize(("mode", "expected"), [("pass_rate", 0.0), ("weighted", -1.0)])
def test_no_code_is_no_answer(mode: Any, expected: float) -> None:
    result = _plan(Sample("I would loop over the array.", language="python", tests=(STDIN,)), mode=mode)
    assert isinstance(result, CheckResult)
    assert (result.status, result.score, result.masked) == (Status.NO_ANSWER, expected, False)


def test_default_language_applies_when_the_item_names_none() -> None:
    plan = _plan(Sample(block("cpp", "int main(){}"), tests=(STDIN,)), default_language="cpp")
    assert isinstance(plan, ItemPlan) and plan.job.language == "cpp" and plan.job.source == "int main(){}"


def test_expected_values_never_enter_the_sandbox() -> None:
    tests = (
        {"type": "stdin_stdout", "input": "1", "output": "SECRET-OUTPUT"},
        {"type": "call", "fn_name": "f", "args": [1], "expected": "SECRET-EXPECTED"},
        {"type": "assert", "code": "assert f(1) == 'SECRET-CONVERTED'"},  # becomes a call: judged on the host
        {"type": "assert", "code": "assert f(1) in ['SECRET-ASSERT']"},
    )
    plan = _plan(Sample(block("python", "def f(x): return x"), language="python", tests=tests))
    assert isinstance(plan, ItemPlan)
    programs = [plan.job.source, dict(plan.job.files), [(r.stdin, dict(r.files), r.command) for r in plan.job.runs]]
    assert "SECRET" not in json.dumps(programs)
    assert all(run.harness is None for run in plan.job.runs[:3])
    # a general assert's code goes only to its harness, which runs as another uid in a dir the program cannot read
    harness = plan.job.runs[3].harness
    assert harness is not None and "SECRET-ASSERT" in json.dumps(dict(harness.files))


def test_each_test_type_runs_its_own_way() -> None:
    tests = (STDIN, {"type": "call", "fn_name": "f", "args": [1], "expected": 1}, {"type": "assert", "code": "pass"})
    plan = _plan(Sample(block("python", "def f(x): return x"), language="python", tests=tests))
    assert isinstance(plan, ItemPlan)
    bare, call, asserted = plan.job.runs
    assert (bare.command, bare.report, bare.harness) == (None, False, None)  # the program alone, no wrapper
    assert call.command is not None and call.command[-2:] == ("rlvr_server.py", "call") and call.report
    assert asserted.command is not None and asserted.command[-2:] == ("rlvr_server.py", "serve")
    assert asserted.harness is not None and asserted.harness.argv[-1] == "rlvr_harness.py" and not asserted.report
    assert plan.job.source == "def f(x): return x" and set(plan.job.files) == {"rlvr_server.py", "rlvr_wire.py"}


HUMANEVAL = (
    'METADATA = {\'author\': \'x\'}\n\n\ndef check(candidate):\n    """doc"""\n'
    "    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0, 'empty'\n"
)
ASSERT_SHAPES = [
    pytest.param("assert f(1, 'a') == [2, 'b']", None, [("f", [1, "a"], [2, "b"])], id="call_equals_literal"),
    pytest.param(
        "assert (4, 5) == similar((3, 4, 5), (5, 4))", None, [("similar", [(3, 4, 5), (5, 4)], (4, 5))], id="flipped"
    ),
    pytest.param("assert f({1, 2}, None) == {'a': 1.5}, 'm'", None, [("f", [{1, 2}, None], {"a": 1.5})], id="message"),
    pytest.param("assert f(-3) == -1", None, [("f", [-3], -1)], id="negative_literals"),
    pytest.param("assert f(1) == 2\nassert g(2) == 3", None, [("f", [1], 2), ("g", [2], 3)], id="mbpp_asserts"),
    pytest.param(HUMANEVAL, "total", [("total", [[1, 2]], 3), ("total", [[]], 0)], id="humaneval_check"),
    pytest.param("assert f(x=1) == 2", None, None, id="keywords"),
    pytest.param("assert f(*[1]) == 2", None, None, id="starred"),
    pytest.param("assert f(1) != 2", None, None, id="not_equal"),
    pytest.param("assert f(1) == g(2)", None, None, id="call_on_both_sides"),
    pytest.param("assert obj.f(1) == 2", None, None, id="method"),
    pytest.param("assert f(1) == 2 == 2", None, None, id="chained"),
    pytest.param("assert math.isclose(f(1), 2.0)", None, None, id="helper"),
    pytest.param("assert f([x for x in y]) == 2", None, None, id="not_a_literal"),
    pytest.param("assert f(1) == 2\nprint('x')", None, None, id="other_statement"),
    pytest.param("assert f(1) == ", None, None, id="syntax_error"),
    pytest.param("def check(c):\n    assert c(1) == 2\n", None, None, id="check_without_entry_point"),
    pytest.param("def check(c):\n    for i in range(3):\n        assert c(i) == i\n", "f", None, id="loop_in_check"),
    pytest.param("import math\ndef check(c):\n    assert c(1) == 2\n", "f", None, id="import_beside_check"),
    pytest.param("def check(c):\n    assert other(1) == 2\n", "f", None, id="check_calls_another_name"),
]


@pytest.mark.parametrize(("code", "entry_point", "expected"), ASSERT_SHAPES)
def test_which_asserts_become_calls(
    code: str, entry_point: str | None, expected: list[tuple[str, Any, Any]] | None
) -> None:
    calls = assert_as_calls(AssertTest(type="assert", code=code, entry_point=entry_point))
    if expected is None:
        assert calls is None
        return
    assert calls is not None
    found = [(call.fn_name, decode_value(call.args, max_bytes=1000, max_depth=10), call.expected) for call in calls]
    assert found == expected
    assert [type(call.expected) for call in calls] == [type(want) for *_, want in expected]


def test_stdin_only_items_ship_no_server() -> None:
    plan = _plan(Sample(PY_SUM, language="python", tests=(STDIN,) * 3))
    assert isinstance(plan, ItemPlan)
    assert dict(plan.job.files) == {} and all(run == Run(stdin=STDIN["input"]) for run in plan.job.runs)


def test_settings_reject_unknown_keys_and_comparators() -> None:
    with pytest.raises(ValidationError):
        CodeSettings(timeout=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        CodeSettings(comparator="set")  # type: ignore[arg-type]


def test_checker_is_registered() -> None:
    assert load_checker("code") is CHECKER
    assert CHECKER.runs_in == "sandbox" and CHECKER.settings_model is CodeSettings


def test_work_key_follows_the_program_not_the_prose() -> None:
    settings = CodeSettings()
    first = Sample(f"<think>one way</think>\n{PY_SUM}", language="python", tests=(STDIN,))
    second = Sample(f"<think>another</think>\nHere:\n{PY_SUM}", language="py", tests=(STDIN,))
    other_tests = Sample(PY_SUM, language="python", tests=({**STDIN, "output": "4\n"},))
    assert work_key(first, settings) == work_key(second, settings) != work_key(other_tests, settings)


# ------------------------------------------------------------------------------------------ through a sandbox

BACKENDS = [
    pytest.param("bubblewrap", marks=pytest.mark.bwrap, id="bubblewrap"),
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
]
CONFIG = SandboxConfig(pool_size=2)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    try:
        opened = await open_sandbox(request.param, CONFIG)
    except SandboxUnavailable as exc:
        missing_backend(str(exc))
        raise
    yield opened
    await opened.close()


def stdin_tests(*pairs: tuple[str, str]) -> tuple[dict[str, Any], ...]:
    return tuple({"type": "stdin_stdout", "input": given, "output": wanted} for given, wanted in pairs)


SUMS = stdin_tests(("1 2\n", "3\n"), ("5 7", "12"), ("2 2\n", "4\n"))
TWO_LINES = stdin_tests(("2\n", "2\n4\n"), ("3\n", "3\n6\n"))

PY_WRONG = block("python", "a, b = map(int, input().split())\nprint(a - b)")
PY_FIRST_LINE = block("python", "n = int(input())\nprint(n)")
PY_SYNTAX = block("python", "print((1)")
CPP_SUM = block("cpp", "#include <iostream>\nint main() { long long a, b; std::cin >> a >> b; std::cout << a + b; }")
CPP_WRONG = block("cpp", "#include <iostream>\nint main() { long long a, b; std::cin >> a >> b; std::cout << a * b; }")
CPP_BROKEN = block("cpp", "#include <iostream>\nint main() { std::cout << undeclared; }")
CPP_SEGFAULT = block("cpp", "int main() { volatile int *p = nullptr; return *p; }")
JAVA_SUM = block(
    "java",
    "import java.util.*;\npublic class Main {\n  public static void main(String[] a) {\n"
    "    Scanner s = new Scanner(System.in);\n    System.out.println(s.nextLong() + s.nextLong());\n  }\n}",
)
JS_SUM = block(
    "javascript",
    "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\nconsole.log(a + b);",
)
PY_LOOPS_ON_4 = block("python", "n = int(input())\nwhile n == 4:\n    pass\nprint(n * n)")
SQUARES = stdin_tests(*((f"{n}\n", f"{n * n}\n") for n in range(1, 6)))
PY_CRASHES_ON_2 = block("python", "n = int(input())\nassert n != 2\nprint(n * n)")

STDIN_ITEMS = [
    pytest.param("python", f"<think>easy</think>\n{block('python', 'print(sum(map(int, input().split())))')}",
                 SUMS, {}, ["AC", "AC", "AC"], 1.0, id="python_ok"),
    pytest.param("python", PY_WRONG, SUMS, {}, ["WA", "WA", "WA"], 0.0, id="python_wa"),
    pytest.param("python", block("python", "print(sum(map(int, input().split())))\nexit()\nprint(0)"), SUMS, {},
                 ["AC", "AC", "AC"], 1.0, id="python_exit_builtin"),
    pytest.param("python", block("python", "if __name__ == '__main__':\n    print(sum(map(int, input().split())))"),
                 SUMS, {}, ["AC", "AC", "AC"], 1.0, id="python_main_guard"),
    pytest.param("python", PY_FIRST_LINE, TWO_LINES, {}, ["WA", "WA"], 0.0, id="python_first_line_only"),
    pytest.param("python", PY_SYNTAX, SUMS, {"mode": "weighted"}, ["CE", "CE", "CE"], -0.1, id="python_syntax_ce"),
    pytest.param("cpp", CPP_SUM, SUMS, {"mode": "weighted"}, ["AC", "AC", "AC"], 1.1, id="cpp_ok"),
    pytest.param("cpp", CPP_WRONG, SUMS, {}, ["WA", "WA", "AC"], pytest.approx(1 / 3), id="cpp_wa"),
    pytest.param("cpp", CPP_BROKEN, SUMS, {"mode": "weighted"}, ["CE", "CE", "CE"], -0.1, id="cpp_ce"),
    pytest.param("cpp", CPP_SEGFAULT, SUMS[:1], {}, ["RE"], 0.0, id="cpp_segfault"),
    pytest.param("java", JAVA_SUM, SUMS, {}, ["AC", "AC", "AC"], 1.0, id="java_ok"),
    pytest.param("java", JAVA_SUM.replace("class Main", "final class Solution"), SUMS[:1], {}, ["AC"], 1.0,
                 id="java_public_class_not_named_main"),
    pytest.param("javascript", JS_SUM, SUMS, {}, ["AC", "AC", "AC"], 1.0, id="javascript_ok"),
    pytest.param("python", PY_LOOPS_ON_4, SQUARES, {"timeout_s": 1.0}, ["AC", "AC", "AC", "TLE", "AC"], 0.8,
                 id="one_tle_of_five"),
    pytest.param("python", PY_CRASHES_ON_2, SQUARES, {"stop_on_first_failure": True},
                 ["AC", "RE", "SKIPPED", "SKIPPED", "SKIPPED"], 0.2, id="stop_on_first_failure"),
    pytest.param("python", PY_LOOPS_ON_4, SQUARES, {"timeout_s": 1.0, "mode": "all_or_nothing"},
                 ["AC", "AC", "AC", "TLE", "AC"], 0.0, id="all_or_nothing"),
    pytest.param("python", block("python", "x = bytearray(1 << 30)\nprint(1)"), SUMS[:1], {"memory_mb": 128},
                 ["MLE"], 0.0, id="memory_limit"),
    pytest.param("python", block("python", "while True:\n    print('y' * 1000)"), SUMS[:1],
                 {"output_limit_bytes": 4096}, ["OLE"], 0.0, id="output_limit"),
]  # fmt: skip


async def _check(sandbox: Sandbox, language: str, completion: str, tests: Any, settings: dict[str, Any]) -> Any:
    result = await code_check(Sample(completion, language=language, tests=tests), CodeSettings(**settings), sandbox)
    assert isinstance(result, CheckResult)
    assert not result.masked, result.failure_reason
    return result


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("language", "completion", "tests", "settings", "statuses", "expected"), STDIN_ITEMS)
async def test_stdin_items(
    sandbox: Sandbox,
    language: str,
    completion: str,
    tests: Any,
    settings: dict[str, Any],
    statuses: list[str],
    expected: float,
) -> None:
    result = await _check(sandbox, language, completion, tests, settings)
    assert [test["status"] for test in result.details["tests"]] == statuses
    assert result.score == expected


@pytest.mark.asyncio(loop_scope="module")
async def test_details_say_what_happened(sandbox: Sandbox) -> None:
    result = await _check(sandbox, "cpp", CPP_SEGFAULT, SUMS[:1], {})
    (test,) = result.details["tests"]
    assert result.details["verdict"] == "RE" and test["signal"] == 11 and "signal 11" in test["message"]
    compiled = await _check(sandbox, "cpp", CPP_BROKEN, SUMS[:1], {})
    assert "undeclared" in compiled.details["tests"][0]["message"]
    wrong = await _check(sandbox, "python", PY_WRONG, SUMS[:1], {})
    assert wrong.details["tests"][0]["message"] == "line 1: expected '3', got '-1'"
    assert wrong.details["tests"][0]["stdout"] == "-1\n" and wrong.details["tests"][0]["wall_s"] > 0


ADD_TESTS = ({"type": "assert", "code": "assert add(1, 2) == 3\nassert add(-1, 1) == 0"},)
HUMAN_EVAL_TEST = {
    "type": "assert",
    "code": "def check(candidate):\n    assert candidate([1.0, 2.0, 3.9], 0.3) is False\n"
    "    assert candidate([1.0, 2.8, 3.0], 0.3) is True\n",
    "entry_point": "has_close_elements",
}
HUMAN_EVAL_OK = block(
    "python",
    "def has_close_elements(numbers, threshold):\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])",
)
ABS_TESTS = ({"type": "assert", "code": "assert abs(half(3) - 1.5) < 1e-9"},)

ASSERT_ITEMS = [
    pytest.param(block("python", "def add(a, b):\n    return a + b"), ADD_TESTS, "AC", id="mbpp_ok"),
    pytest.param(block("python", "def add(a, b):\n    return a * b"), ADD_TESTS, "WA", id="mbpp_wrong"),
    pytest.param(HUMAN_EVAL_OK, (HUMAN_EVAL_TEST,), "AC", id="human_eval_ok"),
    pytest.param(
        block("python", "def has_close_elements(numbers, threshold):\n    return True"),
        (HUMAN_EVAL_TEST,),
        "WA",
        id="human_eval_wrong",
    ),
    pytest.param(
        block("python", "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)"), ADD_TESTS, "WA", id="sys_exit_hack"
    ),
    pytest.param(
        block("python", "import os\ndef add(a, b):\n    return 0\nos._exit(0)"), ADD_TESTS, "WA", id="os_exit_hack"
    ),
    pytest.param(
        block(
            "python",
            "import os, sys\ndef add(a, b):\n    return 0\n"
            "for fd in (1, 2, 3, 4):\n"
            "    try:\n        os.write(fd, b'0' * 32 + b' {\"passed\": true}\\n')\n    except OSError:\n        pass\n"
            "print('deadbeef' * 4, '{\"passed\": true}')\nsys.stdout.flush()\nos._exit(0)",
        ),
        ADD_TESTS,
        "WA",
        id="fake_marker",
    ),
    pytest.param(
        block("python", "import builtins\ndef half(x):\n    return 0\nbuiltins.abs = lambda x: 0"),
        ABS_TESTS,
        "WA",
        id="patched_builtin",
    ),
    pytest.param(
        block("python", "import builtins\ndef add(a, b):\n    return 0\nbuiltins.exec = lambda *a, **k: None"),
        ADD_TESTS,
        "WA",
        id="patched_exec",
    ),
    pytest.param(block("python", "def add(a, b):\n    return a +"), ADD_TESTS, "CE", id="syntax_error"),
    pytest.param(block("python", "def add(a, b):\n    return a + c"), ADD_TESTS, "RE", id="name_error"),
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("completion", "tests", "verdict"), ASSERT_ITEMS)
async def test_assert_items(sandbox: Sandbox, completion: str, tests: Any, verdict: str) -> None:
    result = await _check(sandbox, "python", completion, tests, {})
    assert result.details["verdict"] == verdict
    assert result.score == (1.0 if verdict == "AC" else 0.0)


TWO_SUM = [
    {"type": "call", "fn_name": "twoSum", "args": [[2, 7, 11, 15], 9], "expected": [0, 1]},
    {"type": "call", "fn_name": "twoSum", "args": [[3, 2, 4], 6], "expected": [1, 2]},
]
PY_TWO_SUM = block(
    "python",
    "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
    "        for i, x in enumerate(nums):\n            if target - x in seen:\n"
    "                return (seen[target - x], i)\n            seen[x] = i",
)
JS_TWO_SUM = block(
    "javascript",
    "var twoSum = function(nums, target) {\n  const seen = new Map();\n"
    "  for (let i = 0; i < nums.length; i++) {\n"
    "    if (seen.has(target - nums[i])) return [seen.get(target - nums[i]), i];\n"
    "    seen.set(nums[i], i);\n  }\n};",
)
CALL_ITEMS = [
    pytest.param("python", PY_TWO_SUM, TWO_SUM, ["AC", "AC"], id="python_leetcode_class"),
    pytest.param("python", block("python", "def twoSum(nums, target):\n    return [0, 1]"), TWO_SUM, ["AC", "WA"],
                 id="python_function_wrong_once"),
    pytest.param("python", block("python", "def twoSum(nums, target):\n    print([1, 2])\n    return [0, 1]"),
                 TWO_SUM[1:], ["WA"], id="printing_the_answer_does_not_count"),
    pytest.param("python", block("python", "import sys\ndef twoSum(nums, target):\n    sys.exit(0)"), TWO_SUM[:1],
                 ["WA"], id="exit_inside_the_call"),
    pytest.param("python", block("python", "def mean(xs):\n    return sum(xs) / len(xs)"),
                 [{"type": "call", "fn_name": "mean", "args": [[0.1, 0.2]], "expected": 0.15}], ["AC"],
                 id="float_result"),
    pytest.param("python", block("python", "def other():\n    pass"), TWO_SUM[:1], ["RE"], id="missing_function"),
    pytest.param("javascript", JS_TWO_SUM, TWO_SUM, ["AC", "AC"], id="javascript_call"),
    pytest.param("javascript", block("javascript", "function twoSum(nums, target) { process.exit(0); }"),
                 TWO_SUM[:1], ["WA"], id="javascript_exit_hack"),
]  # fmt: skip


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("language", "completion", "tests", "statuses"), CALL_ITEMS)
async def test_call_items(sandbox: Sandbox, language: str, completion: str, tests: Any, statuses: list[str]) -> None:
    result = await _check(sandbox, language, completion, tuple(tests), {})
    assert [test["status"] for test in result.details["tests"]] == statuses
    assert result.score == pytest.approx(statuses.count("AC") / len(statuses))


@pytest.mark.asyncio(loop_scope="module")
async def test_javascript_asserts(sandbox: Sandbox) -> None:
    tests = ({"type": "assert", "code": "console.assert(add(1, 2) === 3);\nconsole.assert(add(2, 2) === 4);"},)
    right = await _check(sandbox, "javascript", block("js", "function add(a, b) { return a + b; }"), tests, {})
    wrong = await _check(sandbox, "javascript", block("js", "function add(a, b) { return 3; }"), tests, {})
    assert (right.details["verdict"], wrong.details["verdict"]) == ("AC", "WA")


@pytest.mark.asyncio(loop_scope="module")
async def test_assert_test_that_does_not_compile_is_masked(sandbox: Sandbox) -> None:
    tests = ({"type": "assert", "code": "assert add(1, 2) ==="},)
    sample = Sample(block("python", "def add(a, b):\n    return a + b"), language="python", tests=tests)
    result = await code_check(sample, CodeSettings(), sandbox)
    assert isinstance(result, CheckResult)
    assert result.masked and result.failure_kind == FailureKind.INVALID_ITEM
    assert "test code does not compile" in (result.failure_reason or "")


@pytest.mark.asyncio(loop_scope="module")
async def test_failed_assert_shows_its_line(sandbox: Sandbox) -> None:
    result = await _check(sandbox, "python", block("python", "def add(a, b):\n    return a * b"), ADD_TESTS, {})
    assert "assert add(1, 2) == 3" in result.details["tests"][0]["message"]


@pytest.mark.asyncio(loop_scope="module")
async def test_stdin_and_call_tests_in_one_item(sandbox: Sandbox) -> None:
    code = block(
        "python", "def double(x):\n    return 2 * x\n\nif __name__ == '__main__':\n    print(double(int(input())))"
    )
    tests = (
        {"type": "stdin_stdout", "input": "4\n", "output": "8\n"},
        {**TWO_SUM[0], "fn_name": "double", "args": [5], "expected": 10},
    )
    result = await _check(sandbox, "python", code, tests, {})
    assert [test["status"] for test in result.details["tests"]] == ["AC", "AC"]


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", BACKENDS)
async def test_sandbox_failures(backend: str) -> None:
    """A full queue propagates (the service answers 429/503); a closed sandbox masks the item."""
    try:
        opened = await open_sandbox(backend, SandboxConfig(pool_size=1, queue_limit=0))
    except SandboxUnavailable as exc:
        missing_backend(str(exc))
        raise
    sample = Sample(PY_SUM, language="python", tests=(STDIN,))
    slow = Sample(block("python", "import time\ntime.sleep(3)"), language="python", tests=(STDIN,))
    try:
        busy = asyncio.ensure_future(code_check(slow, CodeSettings(), opened))
        await asyncio.sleep(0.5)
        with pytest.raises(SandboxOverloaded):
            await code_check(sample, CodeSettings(), opened)
        assert (await busy).details["verdict"] == "WA"
    finally:
        await opened.close()
    result = await code_check(sample, CodeSettings(), opened)
    assert isinstance(result, CheckResult)
    assert result.masked and result.score is None
    assert result.failure_kind in (FailureKind.SANDBOX_ERROR, FailureKind.NO_SANDBOX)


# ------------------------------------------------------------------------------- retries (a scripted sandbox)


class ScriptedSandbox:
    """Answers each run() with the next scripted outcome: a JobResult, or an exception to raise."""

    name = "scripted"

    def __init__(self, *outcomes: JobResult | Exception) -> None:
        self.outcomes = list(outcomes)
        self.jobs: list[Job] = []

    async def start(self) -> None:
        return None

    async def run(self, job: Job) -> JobResult:
        self.jobs.append(job)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def close(self) -> None:
        return None


PASSED = JobResult(compile=None, runs=[ExecResult(status=RunStatus.OK, stdout="3\n")])
LOST_RUN = JobResult(compile=None, runs=[ExecResult(status=RunStatus.SANDBOX_ERROR, message="cannot start")])
DIED = SandboxJobFailed("the runner is gone")
LOST = SandboxLost("the container was removed from outside")
DIED_LOOKING_LOST = SandboxJobFailed("lost: the runner is gone")  # a failure's text never makes it a loss

RETRIES = [
    pytest.param([PASSED], 1.0, None, 1, id="no_failure_no_retry"),
    pytest.param([DIED, PASSED], 1.0, None, 2, id="died_once_retried"),
    pytest.param([LOST_RUN, PASSED], 1.0, None, 2, id="sandbox_error_run_retried"),
    pytest.param([DIED, DIED], 0.0, None, 2, id="died_twice_is_the_programs_fault"),
    pytest.param([LOST_RUN, DIED], 0.0, None, 2, id="two_different_failures"),
    pytest.param([LOST, PASSED], 1.0, None, 2, id="lost_once_retried"),
    pytest.param([LOST, DIED], None, FailureKind.SANDBOX_ERROR, 2, id="lost_then_died_is_ours_masked"),
    pytest.param([DIED, LOST], None, FailureKind.SANDBOX_ERROR, 2, id="died_then_lost_is_ours_masked"),
    pytest.param([DIED_LOOKING_LOST, DIED_LOOKING_LOST], 0.0, None, 2, id="a_failure_worded_as_lost_is_not"),
    pytest.param([SandboxError("the pool is closed")], None, FailureKind.SANDBOX_ERROR, 1, id="pool_closed_masks"),
    pytest.param([SandboxUnavailable("no engine")], None, FailureKind.NO_SANDBOX, 1, id="no_sandbox_masks"),
]


@pytest.mark.parametrize(("outcomes", "score_", "failure", "tries"), RETRIES)
async def test_an_infrastructure_failure_is_retried_once(
    outcomes: list[JobResult | Exception], score_: float | None, failure: str | None, tries: int
) -> None:
    sandbox = ScriptedSandbox(*outcomes)
    result = await code_check(Sample(PY_SUM, language="python", tests=(STDIN,)), CodeSettings(), sandbox)
    assert isinstance(result, CheckResult)
    assert (result.score, result.failure_kind, len(sandbox.jobs)) == (score_, failure, tries)
    if score_ == 0.0:
        assert result.details["verdict"] == "BROKE_SANDBOX" and "twice" in result.details["reason"]


async def test_a_broken_sandbox_scores_the_modes_floor_never_a_bonus() -> None:
    sandbox = ScriptedSandbox(DIED, DIED)
    sample = Sample(PY_SUM, language="python", tests=(STDIN,))
    result = await code_check(sample, CodeSettings(mode="weighted"), sandbox)
    assert isinstance(result, CheckResult) and result.score == 0.0 and not result.masked
