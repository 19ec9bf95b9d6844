"""Code: does the completion's program pass the item's tests, run in a sandbox it is given?

The path of one item:

1. ``extract_code`` takes the answer region (after the last ``</think>``; nothing when a ``<think>`` is never
   closed) and the last fenced block tagged with the item's language (any alias of it), else the last untagged
   block; or, with ``extract="whole"``, the whole region.
2. ``validate_tests`` turns ``sample.tests`` into frozen models, told apart by ``type``: ``stdin_stdout``
   (program reads ``input``, must print ``output``), ``call`` (LeetCode/APPS: ``fn_name(*args)`` must return
   ``expected``) and ``assert`` (HumanEval/MBPP: ``code`` runs after the program, ``check(entry_point)`` is
   called when both exist).
3. The program becomes ONE ``Job`` whose runs are the tests: compiled once (Python and JavaScript get a
   syntax check, so that a syntax error is a CE as in C++), then each run under the limits. The judge never
   shares a process, an address space or a uid with the program (see rewards/harnesses/):

   - a stdin test runs the program bare, as its own process;
   - a call test runs it under our server (in the program's own process), which calls ``fn_name(*args)`` and
     writes the return value as tagged JSON on a pipe to the runner: plain values of exact types; any other
     object is an opaque handle that equals nothing. The value is judged on the host by exact rules
     (rewards/compare.py), so the expected value never enters the sandbox;
   - an assert test runs the program as a server, driven over two pipes by a harness in another process, as
     another uid, in a dir the program cannot read. The assertions run there, on plain data decoded from the
     program's replies; the program's other objects are proxies that equal only themselves. The verdict goes
     to the runner on a pipe only the harness holds.

   Java runs class ``Main``; a program whose public class has another name gets a ``Main`` that calls it.
4. Each run is judged (in a worker thread, never on the event loop): the sandbox's TLE/MLE/OLE/RE carry over;
   an OK run is AC or WA by the comparator (stdin tests), the returned value (call tests) or the harness's
   verdict (assert tests). Anything unreadable the program sent is its failure (WA), never a mask.
5. The score by ``mode``: ``pass_rate``, ``all_or_nothing`` or ``weighted`` (1[all pass] + 0.1 x pass rate,
   compile error -0.1, no code -1). A TLE is one failed test, never the whole sample.

Unjudgeable items are masked: malformed tests or an unknown language (``invalid_item``), the sandbox absent
(``no_sandbox``) or failing (``sandbox_error``). A sandbox that fails while it holds the job (its instance died,
hung, or answered garbage) gets the job once more on a fresh instance; when that fails too, the program is the
cause: the item scores as failing every test (verdict ``BROKE_SANDBOX``), unmasked. ``SandboxOverloaded``
propagates: the service answers 429/503.

Exceptions::

    ValueError
    └── InvalidItem     the item's tests or language cannot be judged as given: .field (e.g. "tests[2].fn_name")
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from rewards.checker import Checker, CheckerSettings
from rewards.compare import COMPARATORS, MalformedValue, decode_value, describe_value, encode_value, json_equal
from rewards.result import CheckResult, FailureKind, Sample, Status
from sandboxes.base import (
    ExecResult,
    Harness,
    Job,
    JobResult,
    Limits,
    Run,
    RunStatus,
    Sandbox,
    SandboxError,
    SandboxJobFailed,
    SandboxLost,
    SandboxOverloaded,
    SandboxUnavailable,
)
from sandboxes.languages import (
    COMPILE_ERROR_EXIT,
    COMPILE_ERROR_MARK,
    LanguageSpec,
    UnknownLanguage,
    resolve_language,
)

__all__ = [
    "CHECKER",
    "COMPARATORS",
    "AssertCall",
    "AssertTest",
    "CallTest",
    "CodeSettings",
    "InvalidItem",
    "ItemPlan",
    "StdinStdoutTest",
    "TestCase",
    "Verdict",
    "assert_as_calls",
    "check",
    "extract_code",
    "find_code_blocks",
    "java_entry",
    "json_equal",
    "judge",
    "plan_item",
    "score",
    "validate_tests",
    "work_key",
]

ScoreMode = Literal["pass_rate", "all_or_nothing", "weighted"]
ComparatorName = Literal["lines_float", "lines", "tokens_float", "exact"]

_TRIM_CHARS = 300
_CODE_CHARS = 4000
_MAX_VALUE_DEPTH = 256  # nesting of a returned value the host decodes; deeper is the program's failure
_MAX_VERDICT_CHARS = 1 << 20
_MAX_CONVERTED_ASSERT_CHARS = 100_000
_MAX_CONVERTED_CALLS = 256
_IDENTIFIER = r"^[A-Za-z_$][A-Za-z0-9_$]*$"
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_JAVA_PUBLIC_CLASS = re.compile(r"^public\s+(?:final\s+)?class\s+([A-Za-z_$][\w$]*)", re.MULTILINE)
_JAVA_MAIN_CLASS = re.compile(r"\bclass\s+Main\b")


class Verdict:
    """Per-test statuses (and the item's ``details["verdict"]``: AC, or the first failing test's status)."""

    AC = "AC"
    WA = "WA"
    TLE = "TLE"
    MLE = "MLE"
    OLE = "OLE"
    RE = "RE"
    CE = "CE"
    SANDBOX_ERROR = "SANDBOX_ERROR"
    SKIPPED = "SKIPPED"  # not run, or not counted after stop_on_first_failure: a failure
    BROKE_SANDBOX = "BROKE_SANDBOX"  # item only: the sandbox failed under the program twice (scored, not masked)


class InvalidItem(ValueError):
    """The item cannot be judged as given; ``field`` names the culprit (``language``, ``tests[2].fn_name``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# ---------------------------------------------------------------------------------------------------- tests


class _TestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StdinStdoutTest(_TestModel):
    type: Literal["stdin_stdout"]
    input: str = Field("", description="Sent to the program's stdin.")
    output: str = Field(description="What the program must print (compared by the configured comparator).")


class CallTest(_TestModel):
    type: Literal["call"]
    fn_name: str = Field(pattern=_IDENTIFIER, description="Function (or method of class Solution) to call.")
    args: list[JsonValue] = Field(default_factory=list, description="Positional arguments, as a JSON list.")
    expected: JsonValue = Field(description="The JSON value the call must return (numbers within the tolerance).")


class AssertTest(_TestModel):
    type: Literal["assert"]
    code: str = Field(min_length=1, description="Test code run after the program, in its namespace.")
    entry_point: str | None = Field(
        None, pattern=_IDENTIFIER, description="When set and the code defines check(), check(<entry_point>) runs."
    )


TestCase = Annotated[StdinStdoutTest | CallTest | AssertTest, Field(discriminator="type")]


@cache
def _test_adapter() -> TypeAdapter[TestCase]:
    return TypeAdapter(TestCase)


def _error_path(index: int, raw: dict[str, Any], error: Any) -> str:
    loc = list(error["loc"])
    if loc and loc[0] == raw.get("type"):
        loc = loc[1:]
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        loc = ["type"]
    return f"tests[{index}]" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _validate_test(index: int, raw: Any) -> TestCase:
    if not isinstance(raw, dict):
        raise InvalidItem(f"tests[{index}]", f"expected an object, got {type(raw).__name__}")
    try:
        return _test_adapter().validate_python(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidItem(_error_path(index, raw, error), error["msg"]) from None


def validate_tests(raw: Any, *, max_tests: int | None = None) -> list[TestCase]:
    """The item's tests as models; raises ``InvalidItem`` naming the first bad field."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise InvalidItem("tests", "expected a list of tests")
    if not raw:
        raise InvalidItem("tests", "at least one test is required")
    if max_tests is not None and len(raw) > max_tests:
        raise InvalidItem("tests", f"{len(raw)} tests, more than max_tests={max_tests}")
    return [_validate_test(index, test) for index, test in enumerate(raw)]


# ------------------------------------------------------------------------------------------------- settings


class CodeSettings(CheckerSettings):
    """How to find the program, run it and turn its test results into a score."""

    mode: ScoreMode = Field(
        "pass_rate",
        description="pass_rate: passed / total. all_or_nothing: 1 when every test passes. weighted: "
        "1[all pass] + 0.1 x pass rate, -0.1 on a compile error, -1 when no code is found.",
    )
    extract: Literal["last_block", "whole"] = Field(
        "last_block",
        description="last_block: the last fenced block in the item's language, else the last untagged one. "
        "whole: the whole answer (after the last </think>).",
    )
    comparator: ComparatorName = Field(
        "lines_float",
        description="stdin tests: lines_float (per line, trailing whitespace and trailing empty lines ignored, "
        "numbers within float_tolerance), lines (the same without number tolerance), tokens_float (whitespace-"
        "separated tokens, numbers within float_tolerance), exact.",
    )
    float_tolerance: float = Field(1e-6, ge=0, description="Absolute or relative tolerance for numbers.")
    default_language: str = Field("python", description="Language of items that name none.")
    timeout_s: float = Field(5.0, gt=0, le=300, description="Wall-clock limit per test.")
    compile_timeout_s: float = Field(30.0, gt=0, le=600, description="Wall-clock limit of the compile step.")
    memory_mb: int = Field(512, ge=16, le=65536, description="Memory cap per test run.")
    output_limit_bytes: int = Field(
        1 << 20, ge=1024, le=16 << 20, description="Cap on each of stdout and stderr; more is OLE."
    )
    stop_on_first_failure: bool = Field(
        False, description="Stop at the first failing test; the tests after it count as failed."
    )


# ----------------------------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class CodeBlock:
    tag: str  # the info string's first word, lower-cased ("" when untagged)
    code: str


def answer_region(completion: str) -> str:
    """The text after the last ``</think>``; empty when a ``<think>`` is never closed."""
    _, closed, tail = completion.rpartition("</think>")
    if closed:
        return tail
    return "" if "<think>" in completion else completion


def _closing_line(lines: list[str], start: int, fence: str) -> int:
    for index in range(start, len(lines)):
        line = lines[index].strip()
        if len(lines[index]) - len(lines[index].lstrip(" ")) <= 3 and line and set(line) == {fence[0]}:
            if len(line) >= len(fence):
                return index
    return len(lines)  # an unclosed fence runs to the end (CommonMark)


def find_code_blocks(text: str) -> list[CodeBlock]:
    """Fenced code blocks (``` or ~~~), in order."""
    lines = text.replace("\r\n", "\n").split("\n")
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        opened = _FENCE_OPEN.match(lines[index])
        if opened is None or (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            index += 1
            continue
        end = _closing_line(lines, index + 1, opened.group(1))
        words = opened.group(2).split()
        blocks.append(CodeBlock(words[0].lower().strip("{}.") if words else "", "\n".join(lines[index + 1 : end])))
        index = end + 1
    return blocks


def extract_code(completion: str, tags: frozenset[str], extract: str = "last_block") -> str | None:
    """The program to run, or None. ``tags``: the item language's name and aliases, lower-cased."""
    region = answer_region(completion)
    if extract == "whole":
        return region if region.strip() else None
    blocks = find_code_blocks(region)
    chosen = next((block for block in reversed(blocks) if block.tag in tags), None)
    chosen = chosen or next((block for block in reversed(blocks) if not block.tag), None)
    return chosen.code if chosen is not None and chosen.code.strip() else None


def language_tags(spec: LanguageSpec) -> frozenset[str]:
    return frozenset(tag.lower() for tag in (spec.name, *spec.aliases))


# ---------------------------------------------------------------------------------------------- comparators
# The exact rules (an expected integer is matched only by an integer; tolerance only where a float is expected;
# nothing non-finite equals anything finite) and the bounded decoding of returned values: rewards/compare.py.


# ---------------------------------------------------------------------------------------------------- score


def score(mode: ScoreMode, passed: int, total: int, *, compile_error: bool = False) -> float:
    """The item's score from its test counts (a compile error means no test passed)."""
    if mode == "weighted" and compile_error:
        return -0.1
    rate = passed / total if total else 0.0
    if mode == "pass_rate":
        return rate
    all_passed = float(total > 0 and passed == total)
    return all_passed if mode == "all_or_nothing" else all_passed + 0.1 * rate


def no_code_score(mode: ScoreMode) -> float:
    return -1.0 if mode == "weighted" else 0.0


# -------------------------------------------------------------------------------------------------- harness

_HARNESS_DIR = Path(__file__).with_name("harnesses")


@dataclass(frozen=True)
class HarnessSources:
    """How a language runs call and assert tests: a program server inside the candidate's process, and a judge
    harness in a process (and uid) of its own."""

    server: str  # the server's source: a file beside the program, run with the language's own command
    harness: str  # the harness's source, run in the harness's private dir
    server_file: str
    harness_file: str
    support: dict[str, str]  # files both of them import


@cache
def _harnesses() -> dict[str, HarnessSources]:
    def read(name: str) -> str:
        return (_HARNESS_DIR / name).read_text(encoding="utf-8")

    def load(language: str, suffix: str, support: tuple[str, ...] = ()) -> HarnessSources:
        return HarnessSources(
            server=read(f"{language}_server.{suffix}"),
            harness=read(f"{language}_harness.{suffix}"),
            server_file=f"rlvr_server.{suffix}",
            harness_file=f"rlvr_harness.{suffix}",
            support={f"rlvr_{name}.{suffix}": read(f"{language}_{name}.{suffix}") for name in support},
        )

    return {"python": load("python", "py", ("wire",)), "javascript": load("javascript", "js")}


HARNESS_LANGUAGES = ("python", "javascript")

# ----------------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class AssertCall:
    """One ``assert f(<literals>) == <literal>`` (or ``<literal> == f(...)``): the program's process returns the
    value, the host compares it with Python's own ``==`` on plain data (the assert's exact meaning)."""

    fn_name: str
    args: str  # tagged JSON of the argument list (tuples stay tuples, sets stay sets)
    expected: Any
    source: str = ""  # the assert as written, for messages


def _literal_call(statement: ast.stmt, names: dict[str, str]) -> AssertCall | None:
    """The call an ``assert`` statement amounts to; ``names`` maps a called name to the program's function
    (HumanEval's ``candidate`` to the entry point); None when the statement has another shape."""
    if not isinstance(statement, ast.Assert) or not isinstance(statement.test, ast.Compare):
        return None
    compare = statement.test
    if len(compare.ops) != 1 or not isinstance(compare.ops[0], ast.Eq):
        return None
    call, literal = compare.left, compare.comparators[0]
    if not isinstance(call, ast.Call):
        call, literal = literal, call
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.keywords:
        return None
    if call.func.id not in names:
        return None
    try:
        args = [ast.literal_eval(arg) for arg in call.args]  # a Starred argument is no literal: refused here
        expected = ast.literal_eval(literal)
        return AssertCall(names[call.func.id], encode_value(args), expected, _trim(ast.unparse(statement), 200))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _is_inert(statement: ast.stmt) -> bool:
    """A docstring, ``pass``, or a module-level assignment of a literal (HumanEval's ``METADATA = {...}``)."""
    if isinstance(statement, ast.Pass) or (
        isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
    ):
        return True
    if isinstance(statement, ast.Assign) and all(isinstance(target, ast.Name) for target in statement.targets):
        try:
            ast.literal_eval(statement.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        return True
    return False


def _check_body(statements: list[ast.stmt], entry_point: str) -> list[ast.stmt] | None:
    """The asserts of HumanEval's ``def check(candidate)``, when the module holds nothing else of substance."""
    checks = [s for s in statements if isinstance(s, ast.FunctionDef) and s.name == "check"]
    rest = [s for s in statements if not isinstance(s, ast.FunctionDef) or s.name != "check"]
    if len(checks) != 1 or not all(_is_inert(statement) for statement in rest):
        return None
    check = checks[0]
    arguments = check.args
    if check.decorator_list or len(arguments.args) != 1 or arguments.vararg or arguments.kwarg:
        return None
    if arguments.kwonlyargs or arguments.posonlyargs:
        return None
    return [statement for statement in check.body if not _is_inert(statement)] if entry_point else None


def assert_as_calls(test: AssertTest) -> tuple[AssertCall, ...] | None:
    """The calls an assert test amounts to, when it is only ``assert f(literals) == literal`` statements (MBPP),
    or a ``def check(candidate)`` of only such asserts on ``candidate`` with an entry point (HumanEval); None
    for anything else (it runs under the harness)."""
    if len(test.code) > _MAX_CONVERTED_ASSERT_CHARS:
        return None
    try:
        statements = ast.parse(test.code).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if test.entry_point is None:
        names = {name: name for name in _called_names(statements)}
        body: list[ast.stmt] | None = statements
    else:
        body = _check_body(statements, test.entry_point)
        check = next((s for s in statements if isinstance(s, ast.FunctionDef) and s.name == "check"), None)
        names = {check.args.args[0].arg: test.entry_point} if check is not None and check.args.args else {}
    if not body:
        return None
    calls = [_literal_call(statement, names) for statement in body]
    if any(call is None for call in calls) or len(calls) > _MAX_CONVERTED_CALLS:
        return None
    return tuple(call for call in calls if call is not None)


def _called_names(statements: list[ast.stmt]) -> set[str]:
    return {
        node.func.id
        for node in ast.walk(ast.Module(body=statements, type_ignores=[]))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


@dataclass(frozen=True)
class ItemPlan:
    """What ``check`` sends to the sandbox for one item, and what it needs to judge the results."""

    code: str
    spec: LanguageSpec
    tests: list[TestCase]
    job: Job
    calls: tuple[tuple[AssertCall, ...] | None, ...] = ()  # per test: the calls an assert test was turned into


def _check_supported(tests: list[TestCase], spec: LanguageSpec) -> None:
    for index, test in enumerate(tests):
        if not isinstance(test, StdinStdoutTest) and spec.name not in HARNESS_LANGUAGES:
            raise InvalidItem(
                f"tests[{index}].type",
                f"{test.type} tests run only in {', '.join(HARNESS_LANGUAGES)}; this item's language is {spec.name}",
            )


def _limits(settings: CodeSettings) -> Limits:
    return Limits(
        timeout_s=settings.timeout_s,
        compile_timeout_s=settings.compile_timeout_s,
        memory_mb=settings.memory_mb,
        output_bytes=settings.output_limit_bytes,
    )


def java_entry(code: str) -> str:
    """Java runs class ``Main``: a program whose public class has another name gets a ``Main`` that calls it."""
    found = _JAVA_PUBLIC_CLASS.search(code)
    if found is None or found.group(1) == "Main" or _JAVA_MAIN_CLASS.search(code):
        return code
    declaration = found.group(0).removeprefix("public").lstrip()
    code = code[: found.start()] + declaration + code[found.end() :]
    entry = f"public static void main(String[] args) throws Exception {{ {found.group(1)}.main(args); }}"
    return f"{code}\n\nclass Main {{\n    {entry}\n}}\n"


SOURCE_ADAPTERS: dict[str, Callable[[str], str]] = {"java": java_entry}


def _with_script(spec: LanguageSpec, script: str, *extra: str) -> tuple[str, ...]:
    """The language's run command with the program's file swapped for one of ours."""
    return (*(script if arg == spec.source_file else arg for arg in spec.run), *extra)


def _run_for(test: TestCase, spec: LanguageSpec, calls: tuple[AssertCall, ...] | None) -> Run:
    """Stdin tests run the program bare. A call test runs it under our server, which reports the return value
    on a pipe of the program's own (judged on the host: the expected value never enters the sandbox). An assert
    test runs it as a server that a harness in another process and uid drives."""
    if isinstance(test, StdinStdoutTest):
        return Run(stdin=test.input)
    harness = _harnesses()[spec.name]
    if isinstance(test, CallTest) or calls is not None:
        if calls is not None:
            each = ", ".join(f'{{"fn_name": {json.dumps(call.fn_name)}, "args": {call.args}}}' for call in calls)
            case = f'{{"calls": [{each}], "tagged": true}}'
        else:
            assert isinstance(test, CallTest)
            case = json.dumps({"fn_name": test.fn_name, "args": test.args})
        command = _with_script(spec, harness.server_file, "call")
        return Run(command=command, files={"rlvr_call.json": case}, report=True)
    case = json.dumps({"code": test.code, "entry_point": test.entry_point})
    judge = Harness(
        argv=_with_script(spec, harness.harness_file),
        files={harness.harness_file: harness.harness, "rlvr_case.json": case, **harness.support},
    )
    return Run(command=_with_script(spec, harness.server_file, "serve"), harness=judge)


def plan_job(code: str, spec: LanguageSpec, tests: list[TestCase], settings: CodeSettings) -> ItemPlan:
    """One job for the item: the program compiled once, one run per test."""
    files: dict[str, str] = {}
    if any(not isinstance(test, StdinStdoutTest) for test in tests):
        harness = _harnesses()[spec.name]
        files = {harness.server_file: harness.server, **harness.support}
    convert = spec.name == "python"
    calls = tuple(assert_as_calls(test) if convert and isinstance(test, AssertTest) else None for test in tests)
    job = Job(
        language=spec.name,
        source=SOURCE_ADAPTERS.get(spec.name, str)(code),
        runs=[_run_for(test, spec, call) for test, call in zip(tests, calls, strict=True)],
        limits=_limits(settings),
        files=files,
        stop_on_first_failure=settings.stop_on_first_failure,
    )
    return ItemPlan(code=code, spec=spec, tests=tests, job=job, calls=calls)


# ---------------------------------------------------------------------------------------------------- judge


@dataclass(frozen=True)
class _Outcome:
    status: str  # a Verdict
    message: str = ""
    run: ExecResult | None = None
    shown: dict[str, Any] | None = None  # what to show besides the run (result / expected values)


def _trim(text: str, limit: int = _TRIM_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more]"


def _trim_tail(text: str, limit: int = _TRIM_CHARS) -> str:
    return text if len(text) <= limit else f"[{len(text) - limit} more] ..." + text[-limit:]


def _failed_run(run: ExecResult) -> _Outcome:
    if run.status == RunStatus.RE:
        how = f"killed by signal {run.signal}" if run.signal else f"exit code {run.exit_code}"
        return _Outcome(Verdict.RE, how, run)
    known = {RunStatus.TLE, RunStatus.MLE, RunStatus.OLE, RunStatus.SANDBOX_ERROR, RunStatus.CE}
    status = run.status if run.status in known else Verdict.SANDBOX_ERROR
    return _Outcome(status, run.message or f"run status {run.status}", run)


def _judge_stdin(test: StdinStdoutTest, run: ExecResult, settings: CodeSettings) -> _Outcome:
    difference = COMPARATORS[settings.comparator](run.stdout, test.output, settings.float_tolerance)
    shown = {"expected": _trim(test.output)}
    return _Outcome(Verdict.WA if difference else Verdict.AC, difference or "", run, shown)


def _judge_call(
    expected: Any, run: ExecResult, settings: CodeSettings, equal: Callable[[Any], bool], report: str | None = None
) -> _Outcome:
    """A returned value against the expected one: the value is data (decoded strictly, bounded), never code."""
    expected_shown = {"expected": describe_value(expected, _TRIM_CHARS)}
    text = (run.report or "") if report is None else report
    try:
        value = decode_value(text, max_bytes=settings.output_limit_bytes, max_depth=_MAX_VALUE_DEPTH)
    except MalformedValue as exc:
        reason = f"the returned value cannot be judged: {_trim(str(exc), 200)}"
        return _Outcome(Verdict.WA, reason, run, expected_shown)
    shown = {"result": describe_value(value, _TRIM_CHARS), **expected_shown}
    if equal(value):
        return _Outcome(Verdict.AC, "", run, shown)
    return _Outcome(Verdict.WA, "the call returned a different value", run, shown)


def _python_equal(expected: Any) -> Callable[[Any], bool]:
    return lambda value: bool(value == expected)


def _judge_calls(calls: tuple[AssertCall, ...], run: ExecResult, settings: CodeSettings) -> _Outcome:
    """An assert test run as calls: one returned value a line, each against its literal with Python's ``==``,
    which is safe here: both sides are plain values of exact builtin types built on the host (a program's other
    objects decode to handles, which equal only themselves)."""
    lines = (run.report or "").split("\n")
    for index, call in enumerate(calls):
        if index >= len(lines) or not lines[index]:
            return _Outcome(Verdict.WA, f"no value for assert {index + 1}: the program ended before it", run)
        outcome = _judge_call(call.expected, run, settings, _python_equal(call.expected), lines[index])
        if outcome.status != Verdict.AC:
            message = f"assert {index + 1} of {len(calls)} ({call.source}): {outcome.message}"
            return _Outcome(outcome.status, message, run, outcome.shown)
    return _Outcome(Verdict.AC, "", run)


def _verdict(report: str | None) -> dict[str, Any] | None:
    """The harness's verdict line (written by our harness, in its own process and uid)."""
    if not report:
        return None
    try:
        verdict = json.loads(report[:_MAX_VERDICT_CHARS])
    except (ValueError, RecursionError):
        return None
    return verdict if isinstance(verdict, dict) else None


def _judge_assert(run: ExecResult) -> _Outcome:
    verdict = _verdict(run.report)
    if verdict is None:
        note = f" (harness exit code {run.harness_exit})" if run.harness_exit else ""
        return _Outcome(Verdict.WA, f"no verdict: the test did not finish{note}", run)
    if "bad_test" in verdict:
        raise InvalidItem("tests", f"test code does not compile: {_trim_tail(str(verdict['bad_test']))}")
    if verdict.get("passed") is True:
        return _Outcome(Verdict.AC, "", run)
    if "raised" in verdict:  # the program raised while the test called it
        return _Outcome(Verdict.RE, _trim_tail(str(verdict["raised"])), run)
    reason = verdict.get("failed") or verdict.get("error") or "assertion failed"
    return _Outcome(Verdict.WA, _trim_tail(str(reason)), run)


def judge_run(
    test: TestCase, run: ExecResult | None, settings: CodeSettings, calls: tuple[AssertCall, ...] | None = None
) -> _Outcome:
    """One test's outcome from its run (None: the sandbox skipped it)."""
    if run is None:
        return _Outcome(Verdict.SKIPPED, "not run: an earlier test failed")
    if run.status != RunStatus.OK:
        return _failed_run(run)
    if isinstance(test, StdinStdoutTest):
        return _judge_stdin(test, run, settings)
    if isinstance(test, CallTest):
        expected = test.expected
        return _judge_call(expected, run, settings, lambda value: json_equal(value, expected, settings.float_tolerance))
    if calls is not None:
        return _judge_calls(calls, run, settings)
    return _judge_assert(run)


def _stop_after_first_failure(outcomes: list[_Outcome]) -> list[_Outcome]:
    first = next((index for index, outcome in enumerate(outcomes) if outcome.status != Verdict.AC), None)
    if first is None:
        return outcomes
    skipped = _Outcome(Verdict.SKIPPED, f"not counted: stop_on_first_failure after test {first}")
    return [*outcomes[: first + 1], *(skipped for _ in outcomes[first + 1 :])]


def _run_details(run: ExecResult) -> dict[str, Any]:
    details = {
        "wall_s": round(run.wall_s, 4),
        "cpu_s": round(run.cpu_s, 4),
        "peak_memory_kb": run.peak_memory_kb,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "stdout": _trim(run.stdout),
        "stderr": _trim_tail(run.stderr),
    }
    if run.harness_stderr:
        details["harness_stderr"] = _trim_tail(run.harness_stderr)
    return details


def _outcome_details(index: int, test: TestCase, outcome: _Outcome) -> dict[str, Any]:
    details: dict[str, Any] = {"index": index, "type": test.type, "status": outcome.status}
    if outcome.message:
        details["message"] = outcome.message
    if outcome.run is not None:
        details.update(_run_details(outcome.run))
    details.update(outcome.shown or {})
    return details


def _compile_details(compiled: ExecResult | None) -> dict[str, Any] | None:
    if compiled is None:
        return None
    return {"status": compiled.status, "wall_s": round(compiled.wall_s, 4), "stderr": _trim_tail(compiled.stderr)}


def _compile_error(run: ExecResult) -> bool:
    return (
        run.status == RunStatus.RE and run.exit_code == COMPILE_ERROR_EXIT and run.stderr.startswith(COMPILE_ERROR_MARK)
    )


def _outcomes(plan: ItemPlan, result: JobResult, settings: CodeSettings) -> list[_Outcome]:
    tests = plan.tests
    compiled = result.compile
    if compiled is not None and compiled.status == RunStatus.SANDBOX_ERROR:
        return [_Outcome(Verdict.SANDBOX_ERROR, f"compile step: {compiled.message}")] * len(tests)
    if compiled is not None and compiled.status != RunStatus.OK:
        # A compiler that runs out of time or memory was fed a program that does that to it: the program's fault.
        message = _trim_tail(compiled.stderr or compiled.message or compiled.status)
        return [_Outcome(Verdict.CE, message)] * len(tests)
    if len(result.runs) < len(tests) and not settings.stop_on_first_failure:
        return [_Outcome(Verdict.SANDBOX_ERROR, "the sandbox returned fewer runs than tests")] * len(tests)
    refused = next((run for run in result.runs if _compile_error(run)), None)
    if refused is not None:  # Python compiles when it starts (see sandboxes/languages.py)
        return [_Outcome(Verdict.CE, _trim_tail(refused.stderr.removeprefix(COMPILE_ERROR_MARK)))] * len(tests)
    runs: list[ExecResult | None] = [*result.runs, *([None] * (len(tests) - len(result.runs)))]
    calls = plan.calls or (None,) * len(tests)
    outcomes = [judge_run(test, run, settings, call) for test, run, call in zip(tests, runs, calls, strict=True)]
    return _stop_after_first_failure(outcomes) if settings.stop_on_first_failure else outcomes


def _details(plan: ItemPlan, outcomes: list[_Outcome], result: JobResult) -> dict[str, Any]:
    statuses = [outcome.status for outcome in outcomes]
    return {
        "verdict": next((status for status in statuses if status != Verdict.AC), Verdict.AC),
        "language": plan.spec.name,
        "passed": statuses.count(Verdict.AC),
        "total": len(plan.tests),
        "compile": _compile_details(result.compile),
        "tests": [_outcome_details(index, *pair) for index, pair in enumerate(zip(plan.tests, outcomes, strict=True))],
        "code": _trim(plan.code, _CODE_CHARS),
    }


def _item_result(plan: ItemPlan, outcomes: list[_Outcome], result: JobResult, mode: ScoreMode) -> CheckResult:
    statuses = [outcome.status for outcome in outcomes]
    compile_error = Verdict.CE in statuses
    details = _details(plan, outcomes, result)
    passed = 0 if compile_error else details["passed"]
    return CheckResult(
        score=score(mode, passed, len(plan.tests), compile_error=compile_error), status=Status.OK, details=details
    )


def _infrastructure_failure(outcomes: list[_Outcome]) -> str | None:
    """Why the sandbox failed under this job, or None when every test got a verdict of the program's own."""
    return next((outcome.message for outcome in outcomes if outcome.status == Verdict.SANDBOX_ERROR), None)


def _broke_sandbox(plan: ItemPlan, reason: str, mode: ScoreMode) -> CheckResult:
    """The sandbox failed under this program twice, on two instances: the program is the cause. It scores what
    failing every test scores, not a mask, so that breaking the judge never pays."""
    details = {
        "verdict": Verdict.BROKE_SANDBOX,
        "language": plan.spec.name,
        "passed": 0,
        "total": len(plan.tests),
        "reason": _trim_tail(reason),
        "code": _trim(plan.code, _CODE_CHARS),
    }
    return CheckResult(score=score(mode, 0, len(plan.tests)), status=Status.OK, details=details)


# ---------------------------------------------------------------------------------------------------- check


def _invalid(exc: InvalidItem) -> CheckResult:
    return CheckResult.unjudgeable(Status.INVALID_ITEM, FailureKind.INVALID_ITEM, str(exc), field=exc.field)


def _resolve(sample: Sample, settings: CodeSettings) -> LanguageSpec:
    name = sample.language or settings.default_language
    try:
        return resolve_language(name)
    except UnknownLanguage as exc:
        raise InvalidItem("language", str(exc)) from None


def plan_item(sample: Sample, settings: CodeSettings) -> ItemPlan | CheckResult:
    """The job for an item, or its final result when there is nothing to run (invalid item, no code)."""
    try:
        spec = _resolve(sample, settings)
        tests = validate_tests(sample.tests)
        _check_supported(tests, spec)
    except InvalidItem as exc:
        return _invalid(exc)
    code = extract_code(sample.completion, language_tags(spec), settings.extract)
    if code is None:
        details = {"verdict": "no_code", "language": spec.name, "total": len(tests)}
        reason = f"no {spec.name} code block found" if settings.extract == "last_block" else "empty answer"
        return CheckResult(
            score=no_code_score(settings.mode), status=Status.NO_ANSWER, details=details | {"reason": reason}
        )
    return plan_job(code, spec, tests, settings)


def judge(plan: ItemPlan, result: JobResult, settings: CodeSettings) -> CheckResult:
    """The item's result from the sandbox's results for its job (a SANDBOX_ERROR test masks it)."""
    return _judge_safely(plan, result, settings)[0]


def _judge_safely(plan: ItemPlan, result: JobResult, settings: CodeSettings) -> tuple[CheckResult, str | None]:
    """(the item's result, why the sandbox failed under it or None). Runs in a worker thread: judging reads up to
    the output caps of every test, and must never hold the event loop."""
    try:
        outcomes = _outcomes(plan, result, settings)
    except InvalidItem as exc:
        return _invalid(exc), None
    reason = _infrastructure_failure(outcomes)
    if reason is not None:
        details = _details(plan, outcomes, result)
        masked = CheckResult.unjudgeable(Status.ERROR, FailureKind.SANDBOX_ERROR, f"sandbox error: {reason}", **details)
        return masked, reason
    return _item_result(plan, outcomes, result, settings.mode), None


@dataclass(frozen=True)
class _Failure:
    """Why the sandbox failed under a job: ``lost`` when it was taken away from outside (``SandboxLost``: an engine
    restart, a container killed), which is never the program's to pay for."""

    reason: str
    lost: bool = False


async def _attempt(sandbox: Sandbox, plan: ItemPlan, settings: CodeSettings) -> tuple[CheckResult, _Failure | None]:
    """One try of the job: (its result, why the sandbox failed under the job, or None)."""
    try:
        result = await sandbox.run(plan.job)
    except SandboxOverloaded:
        raise
    except SandboxUnavailable as exc:
        return CheckResult.unjudgeable(Status.NO_SANDBOX, FailureKind.NO_SANDBOX, f"no sandbox: {exc}"), None
    except UnknownLanguage as exc:
        return CheckResult.unjudgeable(Status.INVALID_ITEM, FailureKind.INVALID_ITEM, str(exc), field="language"), None
    except SandboxJobFailed as exc:
        masked = CheckResult.unjudgeable(Status.ERROR, FailureKind.SANDBOX_ERROR, f"sandbox error: {exc}")
        return masked, _Failure(str(exc))
    except SandboxLost as exc:  # taken away from outside (engine restart, container killed): retried, never blamed
        masked = CheckResult.unjudgeable(Status.ERROR, FailureKind.SANDBOX_ERROR, f"sandbox lost: {exc}")
        return masked, _Failure(str(exc), lost=True)
    except SandboxError as exc:  # the pool itself is closed or dead: ours, and no retry can help
        return CheckResult.unjudgeable(Status.ERROR, FailureKind.SANDBOX_ERROR, f"sandbox error: {exc}"), None
    try:
        judged, reason = await asyncio.to_thread(_judge_safely, plan, result, settings)
        return judged, (_Failure(reason) if reason is not None else None)
    except Exception as exc:  # a bug of ours while judging: this item's status, never its batch's
        reason = f"judging failed: {type(exc).__name__}: {_trim(str(exc), 200)}"
        return CheckResult.unjudgeable(Status.ERROR, FailureKind.INTERNAL_ERROR, reason), None


async def check(sample: Sample, settings: CodeSettings, sandbox: Sandbox) -> CheckResult:
    """Run the completion's program against the item's tests in ``sandbox`` and score it.

    When the sandbox fails under the job (its instance died, hung or answered garbage), the job runs once more
    on a fresh instance; a failure that reproduces is the program's doing and scores as failing every test."""
    plan = plan_item(sample, settings)
    if isinstance(plan, CheckResult):
        return plan
    result, failure = await _attempt(sandbox, plan, settings)
    if failure is None:
        return result
    retried, failure_again = await _attempt(sandbox, plan, settings)
    if failure_again is None:
        return retried
    if failure.lost or failure_again.lost:  # ours to mask, not the program's to pay for
        return retried
    reason = f"the sandbox failed twice under this program: {failure.reason}; then: {failure_again.reason}"
    return _broke_sandbox(plan, reason, settings.mode)


def work_key(sample: Sample, settings: CodeSettings) -> str:
    """Equal keys, equal results: the extracted program, the language and the tests (cheap, no sandbox)."""
    name = sample.language or settings.default_language
    try:
        spec = resolve_language(name)
        code = extract_code(sample.completion, language_tags(spec), settings.extract)
        name = spec.name
    except UnknownLanguage:
        code = sample.completion
    payload = json.dumps([name, code, sample.tests], sort_keys=True, default=repr)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


CHECKER = Checker(
    name="code",
    description="Runs the completion's last code block against the item's tests (stdin/stdout, function calls or "
    "asserts) in a sandbox; scores pass rate, all-or-nothing or Codeforces-style weighted.",
    settings_model=CodeSettings,
    sandbox_check=check,
    work_key=work_key,
    reads_tests=True,
)
