"""What the separated judge costs: today's service against a baseline commit's, side by side, same sandboxes.

    python -m bench.bench_harness [--items 96] [--backend docker] [--baseline 2864ba9]

The baseline (by default the last commit whose harness shared the program's process) is checked out into a
temporary git worktree and served by this interpreter; then this tree's service. Both score the same batches
through `POST /v1/score`, one workload after the other, on the same backend with the same pool size:

- stdin:  Python programs x 5 stdin tests (the program runs bare now; before, under the in-process harness);
- call:   Python functions x 5 call tests (now: a server in the program's process reports the value on a pipe);
- humaneval: HumanEval-shaped items, one `def check(candidate)` test of 6 `assert candidate(<literals>) ==
          <literal>` with an entry point (now: run as 6 calls in the program's process, judged on the host);
- humaneval-harness: the same with one assert that is not a literal call (`candidate(list(range(...)))[0] == 1`):
          the whole check runs under a harness in another process and uid, which drives the program over pipes;
- mbpp:   MBPP-shaped items, 3 bare `assert f(<literals>) == <literal>` tests each (now: calls).

About 60% of the programs are correct. Prints items/s for each side, the ratio, and the added wall time per
test at the pool's concurrency ((new - old) x pool size / tests), and whether the two sides' scores agree.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench._service import running_service
from rlvr import RewardClient

REPO = Path(__file__).resolve().parents[1]
PAIRS = [(1, 2), (5, 7), (-3, 3), (10**12, 1), (0, 0)]


def _stdin(i: int, correct: bool) -> dict[str, Any]:
    op = "+" if correct else "-"
    code = f"a, b = map(int, input().split())\nprint(a {op} b)  # {i}\n"
    tests = [{"type": "stdin_stdout", "input": f"{a} {b}\n", "output": f"{a + b}\n"} for a, b in PAIRS]
    return {"completion": f"```python\n{code}```", "tests": tests}


def _call(i: int, correct: bool) -> dict[str, Any]:
    op = "+" if correct else "*"
    code = f"def add(a, b):\n    # {i}\n    return a {op} b\n"
    tests = [{"type": "call", "fn_name": "add", "args": [a, b], "expected": a + b} for a, b in PAIRS]
    return {"completion": f"```python\n{code}```", "tests": tests}


HUMANEVAL_ASSERTS = (
    "    assert candidate([5, 3, 5, 2, 3, 3, 9, 0, 123]) == [0, 2, 3, 5, 9, 123]\n"
    "    assert candidate([]) == []\n    assert candidate([1]) == [1]\n    assert candidate([2, 2]) == [2]\n"
    "    assert candidate([-1, 1, -1]) == [-1, 1]\n"
)


def _humaneval(i: int, correct: bool, last: str = "    assert candidate([9, 8]) == [8, 9]\n") -> dict[str, Any]:
    body = "return sorted(set(numbers))" if correct else "return sorted(numbers)"
    code = f"from typing import List\n\n\ndef unique(numbers: List[int]) -> List[int]:\n    # {i}\n    {body}\n"
    check = "METADATA = {}\n\n\ndef check(candidate):\n" + HUMANEVAL_ASSERTS + last
    return {
        "completion": f"```python\n{code}```",
        "tests": [{"type": "assert", "code": check, "entry_point": "unique"}],
    }


def _humaneval_general(i: int, correct: bool) -> dict[str, Any]:
    """One assert that is no literal call: the whole check runs under the harness, in another process."""
    return _humaneval(i, correct, "    assert candidate(list(range(50, 0, -1)))[0] == 1\n")


def _mbpp(i: int, correct: bool) -> dict[str, Any]:
    body = "return [x for x in a if x in b]" if correct else "return list(a)"
    code = f"def common(a, b):\n    # {i}\n    {body}\n"
    asserts = [
        "assert common([1, 2, 3], [2, 3, 4]) == [2, 3]",
        "assert common([], [1]) == []",
        "assert common([5, 6], [6]) == [6]",
    ]
    return {"completion": f"```python\n{code}```", "tests": [{"type": "assert", "code": code_} for code_ in asserts]}


WORKLOADS: dict[str, Callable[[int, bool], dict[str, Any]]] = {
    "stdin": _stdin,
    "call": _call,
    "humaneval": _humaneval,
    "humaneval-harness": _humaneval_general,
    "mbpp": _mbpp,
}


def batch(kind: str, n: int, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    make = WORKLOADS[kind]
    return [{"id": str(i), "group": str(i // 8), **make(i, rng.random() < 0.6)} for i in range(n)]


def measure(url: str, items_by_kind: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[float, list[float | None]]]:
    out: dict[str, tuple[float, list[float | None]]] = {}
    with RewardClient(url, timeout_s=3600) as client:
        warm_up = batch("humaneval-harness", 4, seed=1) + batch("stdin", 4, seed=1)
        client.score(warm_up, rewards={"code": {}})
        for kind, items in items_by_kind.items():
            started = time.perf_counter()
            result = client.score(items, rewards={"code": {}})
            out[kind] = (time.perf_counter() - started, list(result.rewards))
    return out


def baseline_tree(ref: str, into: str) -> str:
    tree = os.path.join(into, "baseline")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", tree, ref], check=True, capture_output=True)
    return tree


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=96, help="items per workload")
    parser.add_argument("--backend", default="docker", choices=["docker", "bubblewrap"])
    parser.add_argument("--baseline", default="2864ba9", help="the git ref to compare with")
    parser.add_argument("--pool-size", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    items = {kind: batch(kind, args.items) for kind in WORKLOADS}
    tests = {kind: sum(len(item["tests"]) for item in items[kind]) for kind in WORKLOADS}
    flags = ("--sandbox-backend", args.backend, "--sandbox-pool-size", str(args.pool_size))
    print(f"cores: {len(os.sched_getaffinity(0))}; backend: {args.backend}, pool size {args.pool_size}")
    print(f"items per workload: {args.items}; baseline: {args.baseline}")
    with tempfile.TemporaryDirectory(prefix="rlvr-bench-") as scratch:
        tree = baseline_tree(args.baseline, scratch)
        try:
            with running_service(*flags, tree=tree) as (url, _):
                old = measure(url, items)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", tree], capture_output=True)
    with running_service(*flags) as (url, _):
        new = measure(url, items)
    print()
    print("| workload | tests | baseline items/s | separated items/s | ratio | added per test | scores agree |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in WORKLOADS:
        (t_old, r_old), (t_new, r_new) = old[kind], new[kind]
        agree = sum(1 for a, b in zip(r_old, r_new, strict=True) if a == b)
        added_ms = (t_new - t_old) * args.pool_size / tests[kind] * 1000
        print(
            f"| {kind} | {tests[kind]} | {args.items / t_old:,.1f} | {args.items / t_new:,.1f} | "
            f"{t_new / t_old:.2f}x | {added_ms:+.1f} ms | {agree}/{args.items} |"
        )


if __name__ == "__main__":
    main()
