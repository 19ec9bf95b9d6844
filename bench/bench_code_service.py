"""A 512-program GRPO-style code batch through `POST /v1/score`, against bare host subprocesses, side by side.

    python -m bench.bench_code_service [--programs 512] [--backend docker]

(a) host: each program's tests run as bare `python3 -S` / compiled subprocesses on the host, no isolation, with
    as many in flight as there are cores (the floor: what an unsafe in-process reward function costs);
(b) rlvr: the same programs as `code` items through a running service (`rlvr serve`, warm sandboxes).
The batch mixes correct and wrong solutions (wrong answers, runtime errors, C++ ones too); every program is
distinct, so no de-duplication helps. Prints programs per second, the ratio, and the service's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._service import running_service, tree_peak_mb
from rlvr import RewardClient
from sandboxes.languages import LANGUAGES

CPP_FLAGS = LANGUAGES["cpp"].compile[1:-3] if LANGUAGES["cpp"].compile else ()  # the sandboxes' own flags

# The system interpreter, as the sandboxes use: a `python3` found on PATH may be a slow shim (pyenv).
HOST_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
TESTS = [(f"{a} {b}\n", f"{a + b}\n") for a, b in [(1, 2), (5, 7), (-3, 3), (10**12, 1), (0, 0)]]
PYTHON = {
    "correct": "a, b = map(int, input().split())\nprint(a + b)  # {tag}\n",
    "wrong": "a, b = map(int, input().split())\nprint(a - b)  # {tag}\n",
    "crash": "a, b = map(int, input().split())\nprint(a // 0)  # {tag}\n",
}
CPP = {
    "correct": '#include <iostream>\nint main(){{long long a,b;std::cin>>a>>b;std::cout<<a+b<<"\\n";}} // {tag}\n',
    "wrong": '#include <iostream>\nint main(){{long long a,b;std::cin>>a>>b;std::cout<<a*b<<"\\n";}} // {tag}\n',
}


def programs(n: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """(language, kind, source): 85% Python, 15% C++; about 60% correct."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        language = "cpp" if rng.random() < 0.15 else "python"
        table = CPP if language == "cpp" else PYTHON
        kind = "correct" if rng.random() < 0.6 else rng.choice([k for k in table if k != "correct"])
        out.append((language, kind, table[kind].format(tag=f"program {i}")))
    return out


async def _host_one(language: str, source: str, semaphore: asyncio.Semaphore) -> float:
    async with semaphore:
        with tempfile.TemporaryDirectory() as work:
            if language == "cpp":
                Path(work, "main.cpp").write_text(source)
                compile_ = await asyncio.create_subprocess_exec(
                    "g++", "-std=c++17", "-O2", "-o", f"{work}/main", f"{work}/main.cpp"
                )
                await compile_.wait()
                argv = [f"{work}/main"]
            else:
                Path(work, "main.py").write_text(source)
                argv = [HOST_PYTHON, "-S", f"{work}/main.py"]
            passed = 0
            for stdin, expected in TESTS:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                out, _ = await proc.communicate(stdin.encode())
                passed += out.decode().rstrip() == expected.rstrip()
            return passed / len(TESTS)


async def host(batch: Sequence[tuple[str, str, str]]) -> tuple[float, list[float]]:
    semaphore = asyncio.Semaphore(len(os.sched_getaffinity(0)))
    started = time.perf_counter()
    scores = await asyncio.gather(*(_host_one(language, source, semaphore) for language, _, source in batch))
    return time.perf_counter() - started, list(scores)


def items(batch: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    tests = [{"type": "stdin_stdout", "input": stdin, "output": out} for stdin, out in TESTS]
    return [
        {
            "id": str(i),
            "group": str(i // 16),
            "language": language,
            "completion": f"Here is my solution.\n```{language}\n{source}```\n",
            "tests": tests,
        }
        for i, (language, _, source) in enumerate(batch)
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=512)
    parser.add_argument("--backend", default="docker", choices=["docker", "bubblewrap"])
    args = parser.parse_args(argv)
    batch = programs(args.programs)
    print(
        f"cores: {len(os.sched_getaffinity(0))}; programs: {len(batch)} x {len(TESTS)} stdin tests; "
        f"C++: {sum(1 for b in batch if b[0] == 'cpp')}; correct: {sum(1 for b in batch if b[1] == 'correct')}"
    )
    a_seconds, a_scores = asyncio.run(host(batch))
    with running_service("--sandbox-backend", args.backend) as (url, pid), RewardClient(url, timeout_s=3600) as client:
        client.score(items(programs(8, seed=1)), rewards={"code": {}})  # warm-up: first compile, page cache
        started = time.perf_counter()
        result = client.score(items(batch), rewards={"code": {}})
        b_seconds = time.perf_counter() - started
        peak = tree_peak_mb(pid)
    agree = sum(1 for a, b in zip(a_scores, result.rewards, strict=True) if b is not None and abs(a - b) < 1e-9)
    print()
    print("| method | programs/s | ratio to (a) |")
    print("|---|---:|---:|")
    print(f"| (a) bare host subprocesses, no isolation | {len(batch) / a_seconds:,.1f} | 1.00x |")
    print(
        f"| (b) rlvr `/v1/score`, {args.backend} sandboxes | {len(batch) / b_seconds:,.1f} | "
        f"{a_seconds / b_seconds:.2f}x |"
    )
    print()
    print(f"scores agree on {agree}/{len(batch)} programs; masked: {sum(r.mask for r in result.results)}")
    print(f"service peak memory (server + CPU workers, VmHWM): {peak:.0f} MB")


if __name__ == "__main__":
    main()
