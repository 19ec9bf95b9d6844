"""Code: does the completion's program pass the item's tests, run in a sandbox it is given?

The path of one item:

1. ``extract_code`` takes the answer region (after the last ``</think>``; nothing when a ``<think>`` is never
   closed) and the last fenced block tagged with the item's language (any alias of it), else the last untagged
   block; or, with ``extract="whole"``, the whole region.
2. ``validate_tests`` turns ``sample.tests`` into frozen models, told apart by ``type``: ``stdin_stdout``
   (program reads ``input``, must print ``output``), ``call`` (LeetCode/APPS: ``fn_name(*args)`` must return
   ``expected``) and ``assert`` (HumanEval/MBPP: ``code`` runs after the program, ``check(entry_point)`` is
   called when both exist).
3. The program becomes ONE ``Job`` whose runs are the tests: compiled once, then each run under the limits.
   Python and JavaScript run through a small judge harness (the job's source; the program is a file beside
   it): it compiles the program (a syntax error is a compile error, as for C++), runs stdin tests as the main
   module, and for call/assert tests sends the program's own stdout to stderr and writes one verdict line on the
   real stdout: ``<nonce> <json>``. The nonce is random per run, travels in a per-run file that the harness
   deletes before the program starts, and the verdict is written only after the call returned / the asserts
   finished. A program that exits early (``sys.exit(0)``, ``os._exit(0)``, ``process.exit(0)``) or prints a
   made-up marker has no verdict and fails. The asserts run with the builtins as they were before the program
   ran, so patching ``abs`` or ``exec`` does not help either. Java runs class ``Main``; a program whose public
   class has another name gets a ``Main`` that calls it (``java_entry``).
4. Each run is judged: the sandbox's TLE/MLE/OLE/RE/SANDBOX_ERROR carry over; an OK run is AC or WA by the
   comparator (stdin tests) or by the verdict (call/assert tests, whose result is compared on the host, so the
   expected value never enters the sandbox).
5. The score by ``mode``: ``pass_rate``, ``all_or_nothing`` or ``weighted`` (1[all pass] + 0.1 x pass rate,
   compile error -0.1, no code -1). A TLE is one failed test, never the whole sample.

Unjudgeable items are masked: malformed tests or an unknown language (``invalid_item``), our sandbox failing
(``sandbox_error``) or absent (``no_sandbox``). ``SandboxOverloaded`` propagates: the service answers 429/503.

Known limit: the harness shares a process with the program, so a program that inspects the harness's frames
could find the nonce; and an assert test cannot tell an object whose ``__eq__`` always says yes from a right
answer (call tests can: their result is JSON).

Exceptions::

    ValueError
    └── InvalidItem     the item's tests or language cannot be judged as given: .field (e.g. "tests[2].fn_name")
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from rewards.checker import Checker, CheckerSettings
from rewards.result import CheckResult, FailureKind, Sample, Status
from sandboxes.base import (
    ExecResult,
    Job,
    JobResult,
    Limits,
    Run,
    RunStatus,
    Sandbox,
    SandboxError,
    SandboxOverloaded,
    SandboxUnavailable,
)
from sandboxes.languages import LanguageSpec, UnknownLanguage, resolve_language

__all__ = [
    "CHECKER",
    "COMPARATORS",
    "AssertTest",
    "CallTest",
    "CodeSettings",
    "InvalidItem",
    "ItemPlan",
    "StdinStdoutTest",
    "TestCase",
    "Verdict",
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
Comparator = Callable[[str, str, float], str | None]

_TRIM_CHARS = 300
_CODE_CHARS = 4000
_CASE_FILE = "rlvr_case.txt"
_IDENTIFIER = r"^[A-Za-z_$][A-Za-z0-9_$]*$"
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"([+-]?)0*(\d+)")
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
    output_limit_bytes: int = Field(1 << 20, ge=1024, description="Cap on each of stdout and stderr; more is OLE.")
    max_tests: int = Field(256, ge=1, description="Items with more tests are invalid (masked), never truncated.")
    stop_on_first_failure: bool = Field(
        False, description="Stop at the first failing test; the tests after it count as failed."
    )

    def deadline_s(self) -> float:
        return self.compile_timeout_s + self.max_tests * (self.timeout_s + 0.5) + 10.0


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


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _integer_key(token: str) -> tuple[str, str] | None:
    matched = _INTEGER.fullmatch(token)
    if matched is None:
        return None
    sign, digits = matched.groups()
    return ("" if digits == "0" else sign.replace("+", ""), digits)


def tokens_equal(got: str, want: str, tolerance: float) -> bool:
    """Equal text, equal integers (exactly, any size), or numbers within ``tolerance`` (absolute or relative)."""
    if got == want:
        return True
    if not (_NUMBER.fullmatch(got) and _NUMBER.fullmatch(want)):
        return False
    got_int, want_int = _integer_key(got), _integer_key(want)
    if got_int is not None and want_int is not None:
        return got_int == want_int
    return math.isclose(float(got), float(want), rel_tol=tolerance, abs_tol=tolerance)


def _token_lists_equal(got: list[str], want: list[str], tolerance: float) -> bool:
    return len(got) == len(want) and all(tokens_equal(g, w, tolerance) for g, w in zip(got, want, strict=True))


def _first_difference(got: list[str], want: list[str], same: Callable[[str, str], bool], unit: str) -> str | None:
    for index, (g, w) in enumerate(zip(got, want, strict=False)):  # the lengths are compared below
        if not same(g, w):
            return f"{unit} {index + 1}: expected {_trim(w, 80)!r}, got {_trim(g, 80)!r}"
    if len(got) != len(want):
        return f"expected {len(want)} {unit}s, got {len(got)}"
    return None


def compare_lines_float(output: str, expected: str, tolerance: float) -> str | None:
    def same(g: str, w: str) -> bool:
        return g == w or _token_lists_equal(g.split(), w.split(), tolerance)

    return _first_difference(_lines(output), _lines(expected), same, "line")


def compare_lines(output: str, expected: str, tolerance: float) -> str | None:
    return _first_difference(_lines(output), _lines(expected), str.__eq__, "line")


def compare_tokens_float(output: str, expected: str, tolerance: float) -> str | None:
    return _first_difference(output.split(), expected.split(), lambda g, w: tokens_equal(g, w, tolerance), "token")


def compare_exact(output: str, expected: str, tolerance: float) -> str | None:
    return None if output == expected else "output differs from the expected text byte for byte"


COMPARATORS: dict[str, Comparator] = {
    "lines_float": compare_lines_float,
    "lines": compare_lines,
    "tokens_float": compare_tokens_float,
    "exact": compare_exact,
}


def json_equal(got: Any, want: Any, tolerance: float) -> bool:
    """JSON values equal; numbers within ``tolerance``, booleans never equal to numbers."""
    if isinstance(got, bool) or isinstance(want, bool):
        return type(got) is type(want) and got == want
    if isinstance(got, int | float) and isinstance(want, int | float):
        return _numbers_equal(got, want, tolerance)
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(json_equal(g, w, tolerance) for g, w in zip(got, want, strict=True))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(json_equal(got[key], want[key], tolerance) for key in want)
    return type(got) is type(want) and bool(got == want)


def _numbers_equal(got: float, want: float, tolerance: float) -> bool:
    if isinstance(got, int) and isinstance(want, int):
        return got == want
    try:
        return math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance)
    except OverflowError:
        return False


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

_PYTHON_HARNESS = r'''"""rlvr judge harness: runs rlvr_solution.py against the test in rlvr_case.txt."""
import builtins
import posix  # not os: python3 -S has not imported os yet, and importing it costs more than a small program
import sys


def _read_case():
    with open("rlvr_case.txt", encoding="utf-8") as handle:
        nonce, kind, payload = handle.read().split("\n", 2)
    posix.remove("rlvr_case.txt")
    return nonce, kind, payload


def _describe(exc, where=False):
    import traceback

    lines = traceback.format_exception(exc) if where else traceback.format_exception_only(type(exc), exc)
    return "".join(lines)[-2000:]


def _module(name):
    module = type(sys)(name)
    module.__file__ = posix.getcwd() + "/rlvr_solution.py"
    sys.modules[name] = module
    return module


def _function(module, name):
    target = getattr(module, name, None)
    solution = getattr(module, "Solution", None)
    if target is None and isinstance(solution, type):
        target = getattr(solution(), name, None)
    if not callable(target):
        raise NameError("the solution defines no function " + repr(name))
    return target


def main():
    nonce, kind, payload = _read_case()
    out, write, run, is_callable = posix.dup(1), posix.write, exec, callable

    def say(line):
        data = (nonce + " " + line + "\n").encode()
        while data:
            data = data[write(out, data):]

    if not hasattr(builtins, "exit"):  # python3 -S skips site, which defines exit() and quit()
        builtins.exit = builtins.quit = sys.exit
    try:
        with open("rlvr_solution.py", encoding="utf-8") as handle:
            program = compile(handle.read(), "solution.py", "exec")
    except (SyntaxError, ValueError) as exc:
        import json

        say(json.dumps({"compile_error": _describe(exc)}))
        return
    if kind == "stdin_stdout":
        posix.close(out)
        run(program, _module("__main__").__dict__)
        return
    import json
    import linecache
    import traceback  # noqa: F401  (imported before the program can break the import machinery)

    dumps, case, pristine = json.dumps, json.loads(payload), dict(builtins.__dict__)
    try:
        tests = compile(case["code"], "test.py", "exec") if kind == "assert" else None
    except (SyntaxError, ValueError) as exc:
        say(dumps({"bad_test": _describe(exc)}))
        return
    if tests is not None:  # so that a failed assert shows its own line
        linecache.cache["test.py"] = (len(case["code"]), None, case["code"].splitlines(True), "test.py")
    posix.dup2(2, 1)
    module = _module("solution")
    run(program, module.__dict__)
    if kind == "call":
        line = dumps({"result": _function(module, case["fn_name"])(*case["args"])}, default=repr)
    else:
        scope = dict(module.__dict__, __builtins__=pristine)
        try:
            run(tests, scope)
            entry = case.get("entry_point")
            if entry and is_callable(scope.get("check")):
                scope["check"](scope[entry])
            line = '{"passed": true}'
        except AssertionError as exc:
            line = dumps({"failed": _describe(exc, where=True)})
    sys.stdout.flush()
    say(line)


main()
'''

_JAVASCRIPT_HARNESS = r"""'use strict';
// rlvr judge harness: runs rlvr_solution.js against the test in rlvr_case.txt (nonce, type, JSON).
const fs = require('fs');
const vm = require('vm');
const assert = require('assert');

function describe(err) {
  return String(err && err.stack ? err.stack : err).slice(-2000);
}

function readCase() {
  const text = fs.readFileSync('rlvr_case.txt', 'utf8');
  fs.unlinkSync('rlvr_case.txt');
  const first = text.indexOf('\n');
  const second = text.indexOf('\n', first + 1);
  return [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
}

function main() {
  const [nonce, kind, payload] = readCase();
  const writeSync = fs.writeSync;
  const stringify = JSON.stringify;
  const report = (value) => writeSync(1, nonce + ' ' + stringify(value) + '\n');
  const source = fs.readFileSync('rlvr_solution.js', 'utf8');
  if (kind === 'stdin_stdout') {
    let program;
    try {
      program = vm.compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname'],
        { filename: 'solution.js' });
    } catch (err) {
      report({ compile_error: describe(err) });
      return;
    }
    const mod = { exports: {} };
    program.call(mod.exports, mod.exports, require, mod, 'solution.js', process.cwd());
    return;
  }
  const testCase = JSON.parse(payload);
  let program, tests;
  try {
    program = new vm.Script(source, { filename: 'solution.js' });
  } catch (err) {
    report({ compile_error: describe(err) });
    return;
  }
  try {
    tests = kind === 'assert' ? new vm.Script(testCase.code, { filename: 'test.js' }) : null;
  } catch (err) {
    report({ bad_test: describe(err) });
    return;
  }
  process.stdout.write = process.stderr.write.bind(process.stderr);
  globalThis.require = require;
  globalThis.module = { exports: {} };
  globalThis.exports = globalThis.module.exports;
  program.runInThisContext();
  if (kind === 'call') {
    const name = testCase.fn_name;
    const fn = vm.runInThisContext('typeof ' + name + " === 'undefined' ? module.exports." + name + ' : ' + name);
    if (typeof fn !== 'function') throw new Error('the solution defines no function ' + name);
    const result = fn(...testCase.args);
    report({ result: result === undefined ? null : result });
    return;
  }
  console.assert = (condition, ...message) => {
    if (!condition) throw new assert.AssertionError({ message: message.join(' ') || 'console.assert failed' });
  };
  try {
    tests.runInThisContext();
    const entry = testCase.entry_point;
    if (entry && vm.runInThisContext("typeof check === 'function'")) {
      vm.runInThisContext('check(' + entry + ')');
    }
  } catch (err) {
    if (err && err.code === 'ERR_ASSERTION') {
      report({ failed: describe(err) });
      return;
    }
    throw err;
  }
  report({ passed: true });
}

main();
"""


@dataclass(frozen=True)
class Harness:
    source: str  # becomes the job's source: the language's entry file
    solution_file: str  # where the program goes, beside it


HARNESSES: dict[str, Harness] = {
    "python": Harness(source=_PYTHON_HARNESS, solution_file="rlvr_solution.py"),
    "javascript": Harness(source=_JAVASCRIPT_HARNESS, solution_file="rlvr_solution.js"),
}


# ----------------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ItemPlan:
    """What ``check`` sends to the sandbox for one item, and what it needs to judge the results."""

    code: str
    spec: LanguageSpec
    tests: list[TestCase]
    job: Job
    nonces: tuple[str | None, ...]  # per run; None when the program runs bare


def _check_supported(tests: list[TestCase], spec: LanguageSpec) -> None:
    for index, test in enumerate(tests):
        if not isinstance(test, StdinStdoutTest) and spec.name not in HARNESSES:
            raise InvalidItem(
                f"tests[{index}].type",
                f"{test.type} tests run only in {', '.join(HARNESSES)}; this item's language is {spec.name}",
            )


def _case_file(test: TestCase, nonce: str) -> str:
    """What the harness needs for one run: nonce, type, JSON; never the expected output (judged on the host)."""
    case = test.model_dump(mode="json", exclude={"type", "input", "output", "expected"})
    return f"{nonce}\n{test.type}\n{json.dumps(case)}"


def _limits(settings: CodeSettings) -> Limits:
    return Limits(
        timeout_s=settings.timeout_s,
        compile_timeout_s=settings.compile_timeout_s,
        memory_mb=settings.memory_mb,
        output_bytes=settings.output_limit_bytes,
    )


def _stdin(test: TestCase) -> str:
    return test.input if isinstance(test, StdinStdoutTest) else ""


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


def plan_job(code: str, spec: LanguageSpec, tests: list[TestCase], settings: CodeSettings) -> ItemPlan:
    """One job for the item: the program compiled once, one run per test."""
    harness = HARNESSES.get(spec.name)
    limits = _limits(settings)
    stop = settings.stop_on_first_failure
    if harness is None:
        runs = [Run(stdin=_stdin(test)) for test in tests]
        source = SOURCE_ADAPTERS.get(spec.name, str)(code)
        job = Job(language=spec.name, source=source, runs=runs, limits=limits, stop_on_first_failure=stop)
        return ItemPlan(code=code, spec=spec, tests=tests, job=job, nonces=(None,) * len(tests))
    nonces = tuple(secrets.token_hex(16) for _ in tests)
    # The harness travels with every run too: a run's work dir is a fresh copy of the job's build dir, which an
    # earlier run's program could have rewritten; a per-run file is written over the copy.
    runs = [
        Run(stdin=_stdin(test), files={_CASE_FILE: _case_file(test, nonce), spec.source_file: harness.source})
        for test, nonce in zip(tests, nonces, strict=True)
    ]
    job = Job(
        language=spec.name,
        source=harness.source,
        runs=runs,
        limits=limits,
        files={harness.solution_file: code},
        stop_on_first_failure=stop,
    )
    return ItemPlan(code=code, spec=spec, tests=tests, job=job, nonces=nonces)


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


def _verdict_payload(stdout: str, nonce: str | None) -> dict[str, Any] | None:
    """The harness's verdict, found only by this run's nonce (a program cannot forge it without the nonce)."""
    if nonce is None:
        return None
    start = stdout.rfind(nonce + " ")
    if start < 0:
        return None
    line = stdout[start + len(nonce) + 1 :].split("\n", 1)[0]
    try:
        payload = json.loads(line)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


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


def _judge_call(test: CallTest, run: ExecResult, payload: dict[str, Any], settings: CodeSettings) -> _Outcome:
    result = payload.get("result")
    shown = {"result": _trim(json.dumps(result)), "expected": _trim(json.dumps(test.expected))}
    if json_equal(result, test.expected, settings.float_tolerance):
        return _Outcome(Verdict.AC, "", run, shown)
    return _Outcome(Verdict.WA, "the call returned a different value", run, shown)


def _judge_assert(run: ExecResult, payload: dict[str, Any]) -> _Outcome:
    if payload.get("passed") is True:
        return _Outcome(Verdict.AC, "", run)
    return _Outcome(Verdict.WA, _trim_tail(str(payload.get("failed", "assertion failed"))), run)


def judge_run(test: TestCase, run: ExecResult | None, nonce: str | None, settings: CodeSettings) -> _Outcome:
    """One test's outcome from its run (None: the sandbox skipped it)."""
    if run is None:
        return _Outcome(Verdict.SKIPPED, "not run: an earlier test failed")
    payload = _verdict_payload(run.stdout, nonce)
    if payload is not None and "compile_error" in payload:
        return _Outcome(Verdict.CE, _trim_tail(str(payload["compile_error"])), run)
    if payload is not None and "bad_test" in payload:
        raise InvalidItem("tests", f"test code does not compile: {_trim_tail(str(payload['bad_test']))}")
    if run.status != RunStatus.OK:
        return _failed_run(run)
    if isinstance(test, StdinStdoutTest):
        return _judge_stdin(test, run, settings)
    if payload is None:
        return _Outcome(Verdict.WA, "no verdict: the program exited before the test finished", run)
    return _judge_call(test, run, payload, settings) if isinstance(test, CallTest) else _judge_assert(run, payload)


def _stop_after_first_failure(outcomes: list[_Outcome]) -> list[_Outcome]:
    first = next((index for index, outcome in enumerate(outcomes) if outcome.status != Verdict.AC), None)
    if first is None:
        return outcomes
    skipped = _Outcome(Verdict.SKIPPED, f"not counted: stop_on_first_failure after test {first}")
    return [*outcomes[: first + 1], *(skipped for _ in outcomes[first + 1 :])]


def _run_details(run: ExecResult) -> dict[str, Any]:
    return {
        "wall_s": round(run.wall_s, 4),
        "cpu_s": round(run.cpu_s, 4),
        "peak_memory_kb": run.peak_memory_kb,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "stdout": _trim(run.stdout),
        "stderr": _trim_tail(run.stderr),
    }


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
    runs: list[ExecResult | None] = [*result.runs, *([None] * (len(tests) - len(result.runs)))]
    outcomes = [
        judge_run(test, run, nonce, settings) for test, run, nonce in zip(tests, runs, plan.nonces, strict=True)
    ]
    return _stop_after_first_failure(outcomes) if settings.stop_on_first_failure else outcomes


def _item_result(plan: ItemPlan, outcomes: list[_Outcome], result: JobResult, mode: ScoreMode) -> CheckResult:
    tests = plan.tests
    statuses = [outcome.status for outcome in outcomes]
    passed = statuses.count(Verdict.AC)
    compile_error = Verdict.CE in statuses
    details = {
        "verdict": next((status for status in statuses if status != Verdict.AC), Verdict.AC),
        "language": plan.spec.name,
        "passed": passed,
        "total": len(tests),
        "compile": _compile_details(result.compile),
        "tests": [_outcome_details(index, *pair) for index, pair in enumerate(zip(tests, outcomes, strict=True))],
        "code": _trim(plan.code, _CODE_CHARS),
    }
    if Verdict.SANDBOX_ERROR in statuses:
        reason = next(outcome.message for outcome in outcomes if outcome.status == Verdict.SANDBOX_ERROR)
        return CheckResult.unjudgeable(Status.ERROR, FailureKind.SANDBOX_ERROR, f"sandbox error: {reason}", **details)
    points = score(mode, 0 if compile_error else passed, len(tests), compile_error=compile_error)
    return CheckResult(score=points, status=Status.OK, details=details)


# ---------------------------------------------------------------------------------------------------- check


def _invalid(exc: InvalidItem) -> CheckResult:
    return CheckResult.unjudgeable(Status.INVALID_ITEM, FailureKind.INVALID_ITEM, str(exc), field=exc.field)


def _resolve(sample: Sample, settings: CodeSettings) -> LanguageSpec:
    name = sample.language or settings.default_language
    try:
        return resolve_language(name)
    except UnknownLanguage as exc:
        raise InvalidItem("language", str(exc)) from None


async def _run_job(sandbox: Sandbox, job: Job) -> JobResult | CheckResult:
    try:
        return await sandbox.run(job)
    except SandboxOverloaded:
        raise
    except SandboxUnavailable as exc:
        return CheckResult.unjudgeable(Status.NO_SANDBOX, FailureKind.NO_SANDBOX, f"no sandbox: {exc}")
    except UnknownLanguage as exc:
        return CheckResult.unjudgeable(Status.INVALID_ITEM, FailureKind.INVALID_ITEM, str(exc), field="language")
    except SandboxError as exc:
        return CheckResult.unjudgeable(Status.ERROR, FailureKind.SANDBOX_ERROR, f"sandbox error: {exc}")


def plan_item(sample: Sample, settings: CodeSettings) -> ItemPlan | CheckResult:
    """The job for an item, or its final result when there is nothing to run (invalid item, no code)."""
    try:
        spec = _resolve(sample, settings)
        tests = validate_tests(sample.tests, max_tests=settings.max_tests)
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
    """The item's result from the sandbox's results for its job."""
    try:
        outcomes = _outcomes(plan, result, settings)
    except InvalidItem as exc:
        return _invalid(exc)
    return _item_result(plan, outcomes, result, settings.mode)


async def check(sample: Sample, settings: CodeSettings, sandbox: Sandbox) -> CheckResult:
    """Run the completion's program against the item's tests in ``sandbox`` and score it."""
    plan = plan_item(sample, settings)
    if isinstance(plan, CheckResult):
        return plan
    result = await _run_job(sandbox, plan.job)
    return result if isinstance(result, CheckResult) else judge(plan, result, settings)


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
    check=check,
    work_key=work_key,
    runs_in="sandbox",
)
