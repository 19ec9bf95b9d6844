"""veRL's `sandbox_fusion` access pattern: one `POST /run_code` per test case, the same program sent once per test.

    .venv/bin/python -m bench.bench_run_code [--programs 100] [--tests 10] [--concurrency 8] [--backend docker]

100 programs x 10 stdin/stdout tests = 1,000 requests, 20% C++ and the rest Python, a mix of right and wrong
answers (some wrong programs fail only some tests), sent program after program by `--concurrency` clients, so the
tests of one program arrive together, as veRL sends them. Four methods, side by side in one run:

  (a) host      the same programs as bare host subprocesses, no isolation: each C++ program compiled once with g++
                (the sandboxes' flags), each test run as a process, `--concurrency` in flight;
  (b) cached    `/run_code` against `rlvr serve` (started here as a subprocess), the compile cache on (default);
  (c) uncached  the same with `--sandbox-compile-cache-mb 0` (RLVR_SANDBOX_COMPILE_CACHE_MB=0): every request
                compiles its C++ program afresh;
  (d) score     the same tests as one `POST /v1/score` batch: one code item per program, its 10 tests in one job.

Each method gets its own copy of the sources (a tag in a comment), so no cache carries over from one to the next.
Prints the wall time of each, the ratios (b)/(a), (c)/(b) and (d)/(a), and the mean latency of a C++ request
against a Python one with and without the cache. No assertion on timing: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._service import running_service
from sandboxes.languages import LANGUAGES

CPP_FLAGS = LANGUAGES["cpp"].compile[1:-3] if LANGUAGES["cpp"].compile else ()  # the sandboxes' own flags
HOST_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

# The problem: read n, then n integers; print their sum (which may pass 2^31). Wrong programs fail some tests.
PYTHON = {
    "correct": "n = int(input())\nprint(sum(map(int, input().split())))  # {tag}\n",
    "drops_negatives": "n = int(input())\nprint(sum(x for x in map(int, input().split()) if x > 0))  # {tag}\n",
    "drops_last": "n = int(input())\nprint(sum(list(map(int, input().split()))[:-1]))  # {tag}\n",
    "crashes_on_one": "n = int(input())\nvalues = list(map(int, input().split()))\n"
    "print(sum(values) if n > 1 else values[1])  # {tag}\n",
}
CPP = {
    "correct": "#include <iostream>\nint main() { int n; std::cin >> n; long long s = 0, x;\n"
    ' for (int i = 0; i < n; ++i) { std::cin >> x; s += x; } std::cout << s << "\\n"; } // {tag}\n',
    "int_overflow": "#include <iostream>\nint main() { int n; std::cin >> n; int s = 0, x;\n"
    ' for (int i = 0; i < n; ++i) { std::cin >> x; s += x; } std::cout << s << "\\n"; } // {tag}\n',
    "drops_negatives": "#include <iostream>\nint main() { int n; std::cin >> n; long long s = 0, x;\n"
    ' for (int i = 0; i < n; ++i) { std::cin >> x; if (x > 0) s += x; } std::cout << s << "\\n"; } // {tag}\n',
}


@dataclass(frozen=True)
class Program:
    index: int
    language: str  # cpp | python
    kind: str
    template: str

    def source(self, phase: str) -> str:
        return self.template.replace("{tag}", f"program {self.index}, {phase}")


@dataclass
class Outcome:
    seconds: float = 0.0
    passed: list[bool] = field(default_factory=list)  # per request, in request order
    latency: dict[str, list[float]] = field(default_factory=lambda: {"cpp": [], "python": []})
    errors: int = 0


def make_programs(count: int, cpp_share: float, seed: int) -> list[Program]:
    rng = random.Random(seed)
    cpp = set(rng.sample(range(count), round(count * cpp_share)))  # exactly the share asked for
    out = []
    for index in range(count):
        language = "cpp" if index in cpp else "python"
        table = CPP if language == "cpp" else PYTHON
        kind = "correct" if rng.random() < 0.5 else rng.choice([name for name in table if name != "correct"])
        out.append(Program(index, language, kind, table[kind]))
    return out


def make_tests(count: int, seed: int) -> list[tuple[str, str]]:
    """Stdin and expected stdout: small sums, sums with negatives, sums past 2^31, a single value."""
    rng = random.Random(seed)
    tests = []
    for index in range(count):
        shape = index % 4
        if shape == 3:
            values = [rng.randint(1, 100)]
        else:
            size = rng.randint(2, 50)
            low, high = {0: (0, 1000), 1: (-1000, 1000), 2: (10**8, 10**9)}[shape]
            values = [rng.randint(low, high) for _ in range(size)]
        tests.append((f"{len(values)}\n{' '.join(map(str, values))}\n", f"{sum(values)}\n"))
    return tests


def requests(programs: Sequence[Program], tests: Sequence[tuple[str, str]]) -> list[tuple[Program, int]]:
    """Program after program, each with all its tests: veRL sends one sample's tests together."""
    return [(program, test) for program in programs for test in range(len(tests))]


def _right(stdout: str | None, expected: str) -> bool:
    return (stdout or "").strip() == expected.strip()


# -- (a) bare host subprocesses ---------------------------------------------------------------------------------


async def host(programs: Sequence[Program], tests: Sequence[tuple[str, str]], concurrency: int, work: str) -> Outcome:
    outcome = Outcome()
    compiled: dict[int, asyncio.Task[list[str]]] = {}

    async def build(program: Program) -> list[str]:
        directory = Path(work, f"p{program.index}")
        directory.mkdir()
        if program.language == "python":
            (directory / "main.py").write_text(program.source("host"))
            return [HOST_PYTHON, "-S", str(directory / "main.py")]
        (directory / "main.cpp").write_text(program.source("host"))
        argv = ["g++", *CPP_FLAGS, "-o", str(directory / "main"), str(directory / "main.cpp")]
        process = await asyncio.create_subprocess_exec(*argv)
        await process.wait()
        return [str(directory / "main")]

    async def one(program: Program, test: int) -> bool:
        started = time.perf_counter()
        if program.index not in compiled:  # compiled once, by the first of its tests to arrive
            compiled[program.index] = asyncio.ensure_future(build(program))
        argv = await compiled[program.index]
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        stdout, _ = await process.communicate(tests[test][0].encode())
        outcome.latency[program.language].append(time.perf_counter() - started)
        return _right(stdout.decode(errors="replace"), tests[test][1])

    outcome.seconds, outcome.passed = await _drive(requests(programs, tests), concurrency, one)
    return outcome


async def _drive(work: list[tuple[Program, int]], concurrency: int, one: Any) -> tuple[float, list[bool]]:
    """Run ``one(program, test)`` over the work list in order with ``concurrency`` workers."""
    results: list[bool] = [False] * len(work)
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < len(work):
            index = position
            position += 1
            results[index] = await one(*work[index])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, results


# -- (b), (c) POST /run_code --------------------------------------------------------------------------------------


async def run_code(
    url: str, programs: Sequence[Program], tests: Sequence[tuple[str, str]], concurrency: int, phase: str
) -> Outcome:
    outcome = Outcome()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def one(program: Program, test: int) -> bool:
            body = {
                "code": program.source(phase),
                "language": program.language,
                "stdin": tests[test][0],
                "compile_timeout": 10,
                "run_timeout": 10,
            }
            started = time.perf_counter()
            response = await client.post("/run_code", json=body)
            outcome.latency[program.language].append(time.perf_counter() - started)
            answer = response.json()
            if response.status_code != 200 or answer["status"] == "SandboxError":
                outcome.errors += 1
                return False
            return answer["status"] == "Success" and _right((answer["run_result"] or {}).get("stdout"), tests[test][1])

        outcome.seconds, outcome.passed = await _drive(requests(programs, tests), concurrency, one)
    return outcome


# -- (d) one POST /v1/score batch ----------------------------------------------------------------------------------


def score(url: str, programs: Sequence[Program], tests: Sequence[tuple[str, str]]) -> Outcome:
    cases = [{"type": "stdin_stdout", "input": stdin, "output": out} for stdin, out in tests]
    items = [
        {
            "id": str(program.index),
            "language": program.language,
            "completion": f"```{program.language}\n{program.source('score')}```\n",
            "tests": cases,
        }
        for program in programs
    ]
    outcome = Outcome()
    started = time.perf_counter()
    response = httpx.post(f"{url}/v1/score", json={"rewards": {"code": {}}, "items": items}, timeout=1800)
    outcome.seconds = time.perf_counter() - started
    response.raise_for_status()
    for result in response.json()["results"]:
        if result["mask"]:
            outcome.errors += 1
            outcome.passed += [False] * len(tests)
            continue
        details = result["components"]["code"]["details"]
        outcome.passed += [test["status"] == "AC" for test in details["tests"]]
    return outcome


# -- the run ------------------------------------------------------------------------------------------------------


def _warm_up(url: str) -> None:
    """First compile, page cache, the workers: not part of any measurement."""
    for language, source in (("cpp", CPP["correct"]), ("python", PYTHON["correct"])):
        body = {"code": source.replace("{tag}", "warm-up"), "language": language, "stdin": "1\n5\n"}
        httpx.post(f"{url}/run_code", json=body, timeout=600).raise_for_status()


def _mean_ms(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values) * 1000:,.1f}" if values else "-"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=100)
    parser.add_argument("--tests", type=int, default=10, help="tests per program (one request each)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cpp-share", type=float, default=0.2)
    parser.add_argument("--backend", default="docker", choices=["docker", "bubblewrap"])
    parser.add_argument("--pool-size", type=int, default=len(os.sched_getaffinity(0)), help="warm sandboxes")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    programs = make_programs(args.programs, args.cpp_share, args.seed)
    tests = make_tests(args.tests, args.seed)
    cpp = sum(program.language == "cpp" for program in programs)
    print(
        f"cores: {len(os.sched_getaffinity(0))}; {len(programs)} programs ({cpp} C++) x {len(tests)} tests = "
        f"{len(programs) * len(tests)} requests at concurrency {args.concurrency}; {args.backend}, pool "
        f"{args.pool_size}; correct programs: {sum(program.kind == 'correct' for program in programs)}"
    )
    with tempfile.TemporaryDirectory(prefix="rlvr-bench-run-code-") as work:
        a = asyncio.run(host(programs, tests, args.concurrency, work))
    flags = ("--sandbox-backend", args.backend, "--sandbox-pool-size", str(args.pool_size))
    with running_service(*flags) as (url, _):
        _warm_up(url)
        b = asyncio.run(run_code(url, programs, tests, args.concurrency, "cached"))
        d = score(url, programs, tests)
        stats = httpx.get(f"{url}/readyz").json()
    with running_service(*flags, "--sandbox-compile-cache-mb", "0") as (url, _):
        _warm_up(url)
        c = asyncio.run(run_code(url, programs, tests, args.concurrency, "uncached"))

    count = len(programs) * len(tests)
    rows = [
        ("(a) bare host subprocesses, no isolation", a),
        ("(b) `/run_code`, compile cache on", b),
        ("(c) `/run_code`, compile cache off", c),
        (f"(d) one `/v1/score` batch ({len(programs)} items x {len(tests)} tests)", d),
    ]
    print()
    print("| method | wall s | tests/s | tests passed | errors |")
    print("|---|---:|---:|---:|---:|")
    for name, outcome in rows:
        print(
            f"| {name} | {outcome.seconds:,.2f} | {count / outcome.seconds:,.1f} | {sum(outcome.passed)} | "
            f"{outcome.errors} |"
        )
    print()
    print(
        f"time ratios: (b)/(a) {b.seconds / a.seconds:.2f}x, (c)/(b) {c.seconds / b.seconds:.2f}x, "
        f"(d)/(a) {d.seconds / a.seconds:.2f}x"
    )
    print()
    print("| request latency, mean ms (client side, queueing included) | (a) host | (b) cache on | (c) cache off |")
    print("|---|---:|---:|---:|")
    for language in ("cpp", "python"):
        print(
            f"| {language} | {_mean_ms(a.latency[language])} | {_mean_ms(b.latency[language])} | "
            f"{_mean_ms(c.latency[language])} |"
        )
    print()
    agree = sum(x == y == z for x, y, z in zip(a.passed, b.passed, c.passed, strict=True))
    agree_d = sum(x == y for x, y in zip(a.passed, d.passed, strict=True))
    print(f"verdicts agree with (a): (b) and (c) {agree}/{count}, (d) {agree_d}/{count}")
    print(f"service (cache on) after (b) and (d): {_cache_line(stats)}")


def _cache_line(ready: dict[str, Any]) -> str:
    found = _find_stats(ready)
    if found is None:
        return "no compile cache counters in /readyz"
    keys = ("compile_cache_hits", "compile_cache_misses", "compile_cache_waits", "compile_cache_entries")
    return ", ".join(f"{key.removeprefix('compile_cache_')} {found[key]}" for key in keys)


def _find_stats(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        if "compile_cache_hits" in value:
            return value
        for inner in value.values():
            found = _find_stats(inner)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    main()
