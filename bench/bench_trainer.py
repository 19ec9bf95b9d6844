"""A simulated GRPO step, scored the way open-r1 does it today and through the rlvr service, side by side.

    .venv/bin/python -m bench.bench_trainer [--prompts 128 --group 8] [--code-share 0.25] [--tests 3]
                                            [--code-timeout 2] [--sdk-items 512 --sdk-reps 3]
                                            [--overlap-steps 4 --overlap-prompts 32] [--workers N]

One step: ``--prompts`` x ``--group`` completions (1,024 by default), a quarter of the prompts code problems
(Python programs in a fenced block with ``--tests`` stdin/stdout tests each: most right, some wrong, some that
crash, a few that loop past the time limit on one test), the rest math chains of thought whose final answers
repeat within a group (2-4 per prompt) as a policy's do. Every completion is in the R1 ``<think>/<answer>``
template, bar a few (missing ``<answer>`` tags, no think block, text after ``</answer>``). TRL hands reward
functions conversational completions and the dataset's columns (``solution``, ``tests``, ``language``,
``rewards``), one value per completion.

  (a) open-r1 today: three in-process reward functions called one after the other, as TRL calls sync ones:
      accuracy (math-verify ``parse``/``verify`` per math row, open-r1's extraction settings), format (open-r1's
      regex) and code (each test of each program as ``subprocess.run([sys.executable, "-c", code])``, one after
      another, like open-r1's ``python3 -c`` script but on the host: no sandbox);
  (b) ``rlvr.trl.RewardFunction`` against ``rlvr serve`` (docker sandboxes, one CPU worker per core), spec
      math 1.0 + format 0.2, code rows overriding it with ``{"math": null, "code": {...}}`` from the ``rewards``
      column; per-component scores read back through TRL's ``log_extra`` hook.

Then, against the same service: the SDK's cost per item (``RewardClient.score`` against a plain ``httpx.post`` of
the same body and against a kept-open ``httpx.Client``, on math-only batches that no earlier batch put in the
service's cache (it keys math by reference and extracted answer, so each batch gets answers of its own), on a
batch the cache holds, and client side alone against a transport that replays a recorded answer), and how much
scoring time ``RewardClient.submit`` hides behind the generation of the next step (a ``time.sleep`` as long as one
step's scoring; each step a batch of its own). Prints markdown tables; no assertion on timing (the machine is
shared and noisy).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench._service import running_service
from bench.math_data import ANSWER_KINDS, MAX_CHARS, MIN_CHARS, _reasoning
from rlvr import RewardClient, Timeouts
from rlvr.trl import RewardFunction

SPEC: dict[str, dict[str, Any]] = {"math": {"weight": 1.0}, "format": {"weight": 0.2}}
WEIGHTS = {"math": 1.0, "format": 0.2, "code": 1.0}  # TRL's reward_weights for (a), in the order called
COLUMNS = {"reference": "solution", "tests": "tests", "language": "language", "rewards": "rewards"}
MOD = 1_000_000_007

# -- the code problems ---------------------------------------------------------------------------------------------
# Each has tests of three shapes (cycled) and programs of several kinds; a wrong, crashing or slow program fails
# only on some shapes, as a policy's near misses do. A "timeout" program is exponential: instant on the small
# shapes, hopeless on the third.

SUM_PROGRAMS = {
    "correct": ["n = int(input())\nvalues = list(map(int, input().split()))\nprint(sum(values))\n"],
    "wrong": [
        "n = int(input())\nprint(sum(x for x in map(int, input().split()) if x > 0))\n",
        "n = int(input())\nvalues = list(map(int, input().split()))\nprint(sum(values[:-1]))\n",
    ],
    "crash": [
        "import math\n\nn = int(input())\nvalues = list(map(int, input().split()))\n"
        "print(sum(values) + 0 * math.isqrt(min(values)))\n"
    ],
    "timeout": [
        "n = int(input())\nvalues = list(map(int, input().split()))\n\n\ndef total(i):\n    if i == n:\n"
        "        return 0\n    return (total(i + 1) + total(i + 1)) // 2 + values[i]\n\n\nprint(total(0))\n"
    ],
    "syntax_error": ["n = int(input()\nprint(sum(map(int, input().split())))\n"],
}
FIB_PROGRAMS = {
    "correct": [
        "n = int(input())\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, (a + b) % 1000000007\nprint(a)\n",
        "n = int(input())\nf = [0, 1]\nfor i in range(2, n + 1):\n    f.append((f[-1] + f[-2]) % 1000000007)\n"
        "print(f[n])\n",
    ],
    "wrong": [
        "n = int(input())\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, a + b\nprint(a)\n",
        "n = int(input())\na, b = 1, 1\nfor _ in range(n):\n    a, b = b, (a + b) % 1000000007\nprint(a)\n",
    ],
    "crash": [
        "n = int(input())\nf = [0] * n\nf[1] = 1\nfor i in range(2, n):\n"
        "    f[i] = (f[i - 1] + f[i - 2]) % 1000000007\nprint((f[n - 1] + f[n - 2]) % 1000000007)\n"
    ],
    "timeout": [
        "def fib(k):\n    return k if k < 2 else fib(k - 1) + fib(k - 2)\n\n\nprint(fib(int(input())) % 1000000007)\n"
    ],
    "syntax_error": ["n = int(input())\na, b = 0, 1\nfor _ in range(n)\n    a, b = b, a + b\nprint(a)\n"],
}
REVERSE_PROGRAMS = {
    "correct": [
        'print(" ".join(input().split()[::-1]))\n',
        "words = input().split()\nwords.reverse()\nprint(*words)\n",
    ],
    "wrong": [
        'print(" ".join(sorted(input().split(), reverse=True)))\n',
        'words = input().split()\nprint(" ".join(words[:1] + words[1:][::-1]))\n',
        "print(input()[::-1])\n",
    ],
    "crash": ['first, second, *rest = input().split()\nprint(" ".join([*rest[::-1], second, first]))\n'],
    "timeout": [
        "from itertools import permutations\n\nwords = input().split()\nfor candidate in permutations(words):\n"
        '    if list(candidate) == words[::-1]:\n        print(" ".join(candidate))\n        break\n'
    ],
    "syntax_error": ['print(" ".join(input().split()[::-1])\n'],
}
PRIMES_PROGRAMS = {
    "correct": [
        "n = int(input())\nsieve = bytearray([1]) * (n + 1)\nsieve[:2] = bytes(min(2, n + 1))\n"
        "for i in range(2, int(n ** 0.5) + 1):\n    if sieve[i]:\n"
        "        sieve[i * i :: i] = bytes(len(range(i * i, n + 1, i)))\nprint(sum(sieve))\n"
    ],
    "wrong": [
        "n = int(input())\nsieve = bytearray([1]) * (n + 1)\nsieve[0] = 0\nfor i in range(2, int(n ** 0.5) + 1):\n"
        "    if sieve[i]:\n        sieve[i * i :: i] = bytes(len(range(i * i, n + 1, i)))\nprint(sum(sieve))\n",
    ],
    "crash": [
        "n = int(input())\nsieve = [True] * n\nsieve[0] = sieve[1] = False\nfor i in range(2, n):\n"
        "    if sieve[i]:\n        for j in range(i * i, n, i):\n            sieve[j] = False\n"
        "print(sum(sieve) + (1 if n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1)) else 0))\n"
    ],
    "timeout": [
        "n = int(input())\nprint(sum(1 for p in range(2, n + 1) if all(p % d for d in range(2, p))))\n",
    ],
    "syntax_error": ["n = int(input())\nprint(len([p for p in range(2, n + 1) if all(p % d for d in range(2, p)]))\n"],
}


def _sum_test(rng: random.Random, shape: int) -> tuple[str, str]:
    size = rng.randint(2, 8) if shape < 2 else rng.randint(40, 60)
    low = 0 if shape == 0 else -1000
    values = [rng.randint(low, 1000) for _ in range(size)]
    if shape > 0 and min(values) >= 0:
        values[0] = -rng.randint(1, 1000)
    return f"{size}\n{' '.join(map(str, values))}\n", f"{sum(values)}\n"


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, (a + b) % MOD
    return a


def _fib_test(rng: random.Random, shape: int) -> tuple[str, str]:
    n = [rng.randint(3, 12), rng.randint(0, 1), rng.randint(60, 90)][shape]
    return f"{n}\n", f"{_fib(n)}\n"


_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "lambda", "rho", "tau", "phi")


def _reverse_test(rng: random.Random, shape: int) -> tuple[str, str]:
    words = rng.sample(_WORDS, [rng.randint(3, 6), 1, rng.randint(11, 12)][shape])
    line = "  ".join(words) if shape == 2 else " ".join(words)
    return f"{line}\n", f"{' '.join(reversed(words))}\n"


@functools.cache
def _prime_counts(limit: int = 200_000) -> list[int]:
    """pi(n) for every n up to ``limit``, from one sieve."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[:2] = b"\x00\x00"
    for i in range(2, math.isqrt(limit) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit + 1, i)))
    counts, count = [], 0
    for n in range(limit + 1):
        count += sieve[n]
        counts.append(count)
    return counts


def _primes_test(rng: random.Random, shape: int) -> tuple[str, str]:
    n = [rng.randint(10, 100), rng.randint(0, 2), rng.randint(150_000, 200_000)][shape]
    return f"{n}\n", f"{_prime_counts()[n]}\n"


@dataclass(frozen=True)
class Problem:
    statement: str
    programs: dict[str, list[str]]
    test: Callable[[random.Random, int], tuple[str, str]]


PROBLEMS = (
    Problem("Read n, then n integers; print their sum.", SUM_PROGRAMS, _sum_test),
    Problem("Read n; print the n-th Fibonacci number modulo 10^9+7.", FIB_PROGRAMS, _fib_test),
    Problem(
        "Read a line of words; print the words in reverse order, one space apart.", REVERSE_PROGRAMS, _reverse_test
    ),
    Problem("Read n; print how many primes are at most n.", PRIMES_PROGRAMS, _primes_test),
)
PROGRAM_KINDS = {"correct": 0.45, "wrong": 0.33, "crash": 0.14, "syntax_error": 0.05, "timeout": 0.03}
FORMAT_SHAPES = {"template": 0.88, "no_answer_tags": 0.05, "no_think": 0.04, "trailing_text": 0.03}
_ENDINGS = ("Therefore, the final answer is $\\boxed{{{answer}}}$.", "$\\boxed{{{answer}}}$", "\\boxed{{{answer}}}")

# -- a step's batch --------------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """One GRPO step as TRL hands it to reward functions: one entry per completion, each prompt repeated."""

    prompts: list[str] = field(default_factory=list)
    completions: list[list[dict[str, str]]] = field(default_factory=list)  # conversational, as open-r1's data
    solution: list[str | None] = field(default_factory=list)
    tests: list[list[dict[str, str]] | None] = field(default_factory=list)
    language: list[str | None] = field(default_factory=list)
    rewards: list[dict[str, Any] | None] = field(default_factory=list)
    shape: list[str] = field(default_factory=list)  # the completion's format shape
    kind: list[str] = field(default_factory=list)  # "math", or the kind of program

    def __len__(self) -> int:
        return len(self.prompts)

    def columns(self) -> dict[str, list[Any]]:
        return {"solution": self.solution, "tests": self.tests, "language": self.language, "rewards": self.rewards}

    def items(self) -> list[dict[str, Any]]:
        """The items `RewardFunction` sends for this batch (with its columns mapping), for the client-level runs."""
        items, group, previous = [], -1, None
        for index, prompt in enumerate(self.prompts):
            group += prompt != previous
            previous = prompt
            item: dict[str, Any] = {"id": str(index), "group": f"p{group}", "prompt": prompt}
            item["completion"] = self.completions[index][0]["content"]
            fields = {"reference": self.solution, "tests": self.tests, "language": self.language}
            for name, column in (*fields.items(), ("rewards", self.rewards)):
                if column[index] is not None:
                    item[name] = column[index]
            items.append(item)
        return items


def _quota(rng: random.Random, weights: dict[str, float], count: int) -> list[str]:
    """``count`` labels in the proportions of ``weights`` (largest remainder), shuffled: every step the same mix."""
    exact = {label: weight / sum(weights.values()) * count for label, weight in weights.items()}
    counts = {label: int(value) for label, value in exact.items()}
    for label in sorted(exact, key=lambda label: counts[label] - exact[label])[: count - sum(counts.values())]:
        counts[label] += 1
    labels = [label for label, n in counts.items() for _ in range(n)]
    rng.shuffle(labels)
    return labels


def _wrap(shape: str, reasoning: str, answer: str) -> str:
    if shape == "no_answer_tags":
        return f"<think>\n{reasoning}\n</think>\n\n{answer}"
    if shape == "no_think":
        return f"{reasoning}\n\n<answer>\n{answer}\n</answer>"
    text = f"<think>\n{reasoning}\n</think>\n<answer>\n{answer}\n</answer>"
    return text + "\n\nI hope this helps!" if shape == "trailing_text" else text


def _length(rng: random.Random, low: int, high: int) -> int:
    """Log-uniform, as bench.math_data: most chains of thought a few thousand characters, a few near the top."""
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def make_batch(
    prompts: int, group: int, *, code_share: float, tests: int, code_timeout: float, step: int, seed: int = 0
) -> Batch:
    """A step's batch; each ``step`` has answers and references of its own (so no earlier step's cache entry
    applies) and programs of its own (a tag comment: a policy's programs are seldom byte-identical)."""
    rng = random.Random(seed * 1_000_003 + step)
    code_prompts = set(rng.sample(range(prompts), round(prompts * code_share)))
    override = {"math": None, "code": {"weight": 1.0, "timeout_s": code_timeout}}
    kinds = list(ANSWER_KINDS.values())
    programs = iter(_quota(rng, PROGRAM_KINDS, len(code_prompts) * group))
    shapes = iter(_quota(rng, FORMAT_SHAPES, prompts * group))
    batch = Batch()
    for prompt in range(prompts):
        if prompt in code_prompts:
            problem = PROBLEMS[prompt % len(PROBLEMS)]
            cases = [problem.test(rng, index % 3) for index in range(tests)]
            text = f"{problem.statement} (step {step}, problem {prompt})"
            for sample in range(group):
                kind = next(programs)
                source = f"# step {step}, problem {prompt}, sample {sample}\n{rng.choice(problem.programs[kind])}"
                shape = next(shapes)
                reasoning = _reasoning(rng, _length(rng, 300, 6_000)).strip()
                answer = f"Here is my solution:\n\n```python\n{source}```"
                batch.prompts.append(text)
                batch.completions.append([{"role": "assistant", "content": _wrap(shape, reasoning, answer)}])
                batch.solution.append(None)
                batch.tests.append([{"type": "stdin_stdout", "input": i, "output": o} for i, o in cases])
                batch.language.append("python")
                batch.rewards.append(override)
                batch.shape.append(shape)
                batch.kind.append(kind)
            continue
        kind_of = kinds[prompt % len(kinds)]
        # Answers of their own per step (the service caches by reference and answer); steps stay below ~900, where
        # math_data's percentages (printed with 6 significant digits) stay exact.
        k = 2 + prompt + 1024 * step
        right = kind_of(k)
        candidates = [right.written, *(kind_of(k + 1000 * j).written for j in range(1, rng.randint(2, 4)))]
        weights = [3.0, *(1.0 for _ in candidates[1:])]
        text = f"Solve the problem and put the final answer in \\boxed{{}}. (step {step}, problem {prompt})"
        for _ in range(group):
            written = rng.choices(candidates, weights=weights)[0]
            ending = rng.choice(_ENDINGS).format(answer=written)
            shape = next(shapes)
            reasoning = _reasoning(rng, _length(rng, MIN_CHARS, MAX_CHARS - 200)).strip()
            batch.prompts.append(text)
            batch.completions.append([{"role": "assistant", "content": _wrap(shape, reasoning, ending)}])
            batch.solution.append(f"${right.reference}$")
            batch.tests.append(None)
            batch.language.append(None)
            batch.rewards.append(None)
            batch.shape.append(shape)
            batch.kind.append("math")
    return batch


# -- (a) open-r1's reward functions, in-process ---------------------------------------------------------------------

_FORMAT = re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", re.DOTALL | re.MULTILINE)
_PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _content(completion: list[dict[str, str]]) -> str:
    return completion[0]["content"]


def accuracy_reward(completions: Sequence[Any], solution: Sequence[str | None], **_: Any) -> list[float | None]:
    """open-r1's accuracy: the gold parsed as written, the completion with its LaTeX settings (``equations``, which
    math-verify 0.9 deprecates, left out); None where the gold does not parse or verify raises."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    normalization = NormalizationConfig(
        nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
    )
    config = [
        LatexExtractionConfig(
            normalization_config=normalization, boxed_match_priority=0, try_extract_without_anchor=False
        )
    ]
    rewards: list[float | None] = []
    for completion, gold_text in zip(completions, solution, strict=True):
        if gold_text is None:  # not a math row
            rewards.append(None)
            continue
        gold = parse(gold_text, extraction_mode="first_match")
        if not gold:
            rewards.append(None)
            continue
        answer = parse(_content(completion), extraction_config=config, extraction_mode="first_match")
        try:
            rewards.append(float(verify(gold, answer)))
        except Exception:
            rewards.append(None)
    return rewards


def format_reward(completions: Sequence[Any], **_: Any) -> list[float]:
    return [1.0 if _FORMAT.match(_content(completion)) else 0.0 for completion in completions]


def _passes(code: str, stdin: str, expected: str, timeout_s: float) -> bool:
    try:
        run = subprocess.run(
            [sys.executable, "-c", code], input=stdin, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False
    if run.returncode != 0:
        return False
    # Every line, stripped (open-r1 zips the lines, so its missing or extra lines pass).
    return [line.strip() for line in run.stdout.strip().split("\n")] == [
        line.strip() for line in expected.strip().split("\n")
    ]


def code_reward(
    completions: Sequence[Any], tests: Sequence[list[dict[str, str]] | None], timeout_s: float, **_: Any
) -> list[float | None]:
    """The last python block against each test in a host subprocess, one after another; the pass fraction. A
    time-out fails that test (open-r1's script lets TimeoutExpired escape and zeroes the whole sample)."""
    rewards: list[float | None] = []
    for completion, cases in zip(completions, tests, strict=True):
        if not cases:
            rewards.append(None)
            continue
        blocks = _PYTHON_BLOCK.findall(_content(completion))
        code = blocks[-1] if blocks else ""
        passed = sum(_passes(code, case["input"], case["output"], timeout_s) for case in cases)
        rewards.append(passed / len(cases))
    return rewards


def in_process(batch: Batch, code_timeout: float) -> tuple[dict[str, float], dict[str, list[float | None]]]:
    """TRL's sync path: each reward function on the whole batch, one after the other; seconds per function."""
    functions: dict[str, Callable[..., list[Any]]] = {
        "math": accuracy_reward,
        "format": format_reward,
        "code": functools.partial(code_reward, timeout_s=code_timeout),
    }
    seconds: dict[str, float] = {}
    scores: dict[str, list[float | None]] = {}
    for name, function in functions.items():
        started = time.perf_counter()
        scores[name] = function(prompts=batch.prompts, completions=batch.completions, **batch.columns())
        seconds[name] = time.perf_counter() - started
    return seconds, scores


def _warm_in_process(code_timeout: float) -> None:
    """Imports, math-verify's first parse and the first interpreter start: not part of the measurement."""
    warm = make_batch(4, 2, code_share=0.5, tests=1, code_timeout=code_timeout, step=1)
    in_process(warm, code_timeout)


# -- (b) the service through RewardFunction ------------------------------------------------------------------------


def via_reward_function(
    function: RewardFunction, batch: Batch
) -> tuple[float, list[float | None], dict[str, list[Any]], dict[str, float]]:
    """TRL's call: prompts, completions, the dataset's columns and its logging hooks."""
    extra: dict[str, list[Any]] = {}
    metrics: dict[str, float] = {}
    started = time.perf_counter()
    rewards = function(
        prompts=batch.prompts,
        completions=batch.completions,
        completion_ids=None,
        **batch.columns(),
        trainer_state=None,
        log_extra=extra.__setitem__,
        log_metric=metrics.__setitem__,
    )
    return time.perf_counter() - started, rewards, extra, metrics


def _combined(scores: dict[str, list[float | None]], index: int) -> float | None:
    """TRL's sum of weighted rewards, NaN (None) rewards left out; None when every function gave None."""
    values = [WEIGHTS[name] * s for name, column in scores.items() if (s := column[index]) is not None]
    return sum(values) if values else None


def agreement(
    batch: Batch, a: dict[str, list[float | None]], b: dict[str, list[Any]], b_rewards: Sequence[float | None]
) -> None:
    print("| verdict | both judged | agree | disagree | judged by (a) only | judged by (b) only |")
    print("|---|---:|---:|---:|---:|---:|")
    why: Counter[str] = Counter()
    for name in ("math", "format", "code"):
        ours = b.get(f"rlvr_{name}", [None] * len(batch))
        both = agree = only_a = only_b = 0
        for index, (x, y) in enumerate(zip(a[name], ours, strict=True)):
            if x is None or y is None:
                only_a += x is not None
                only_b += y is not None
                continue
            both += 1
            if abs(x - y) < 1e-9:
                agree += 1
            else:
                why[f"{name}: {batch.shape[index] if name == 'format' else batch.kind[index]}"] += 1
        print(f"| {name} | {both} | {agree} | {both - agree} | {only_a} | {only_b} |")
    pairs = [(_combined(a, i), r) for i, r in enumerate(b_rewards)]
    judged = [(x, y) for x, y in pairs if x is not None and y is not None]
    same = sum(abs(x - y) < 1e-9 for x, y in judged)
    print(
        f"| combined reward (1.0 math + 0.2 format + 1.0 code) | {len(judged)} | {same} | {len(judged) - same} | "
        f"{sum(x is not None and y is None for x, y in pairs)} | {sum(x is None and y is not None for x, y in pairs)} |"
    )
    if why:
        print()
        print("disagreements by component and item kind: " + ", ".join(f"{k} {n}" for k, n in sorted(why.items())))


# -- the SDK's cost per item ---------------------------------------------------------------------------------------


def math_items(count: int, step: int, group: int) -> tuple[list[dict[str, Any]], bytes]:
    """``count`` math-only items (a step of its own) and the `/v1/score` body the SDK would send for them."""
    batch = make_batch(math.ceil(count / group), group, code_share=0.0, tests=1, code_timeout=1.0, step=step, seed=1)
    items = batch.items()[:count]
    return items, httpx.Request("POST", "/", json={"rewards": {"math": {}}, "items": items}).content


def _sdk(client: RewardClient, items: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    result = client.score(items)
    assert len(result.rewards) == len(items)
    return time.perf_counter() - started


def _plain(url: str, items: list[dict[str, Any]], post: Callable[..., httpx.Response] = httpx.post) -> float:
    started = time.perf_counter()
    response = post(f"{url}/v1/score", json={"rewards": {"math": {}}, "items": items}, timeout=600)
    response.raise_for_status()
    rewards = [result["reward"] for result in response.json()["results"]]
    assert len(rewards) == len(items)
    return time.perf_counter() - started


def sdk_overhead(url: str, count: int, reps: int, group: int) -> tuple[list[tuple[str, dict[str, float]]], float]:
    """Per workload, us/item of ``RewardClient.score``, of ``httpx.post`` and of a kept-open ``httpx.Client``'s
    ``post`` (medians, the order rotated each round); and the ms ``httpx.post`` spends making its client."""
    options: dict[str, Any] = {"rewards": {"math": {}}, "batch_size": count, "timeouts": Timeouts(request=600)}
    rows: list[tuple[str, dict[str, float]]] = []

    def rounds(measure: dict[str, Callable[[list[dict[str, Any]]], float]], times: int, batch: Any) -> dict[str, float]:
        seconds: dict[str, list[float]] = {name: [] for name in measure}
        for round_ in range(times):
            names = list(measure)[round_ % len(measure) :] + list(measure)[: round_ % len(measure)]
            for position, name in enumerate(names):
                seconds[name].append(measure[name](batch(round_, position)))
        return {name: statistics.median(values) / count * 1e6 for name, values in seconds.items()}

    with RewardClient(url, **options) as client, httpx.Client() as kept:
        measure = {
            "sdk": functools.partial(_sdk, client),
            "post": functools.partial(_plain, url),
            "client": functools.partial(_plain, url, post=kept.post),
        }
        # Every batch new to the service (answers and references of its own): each side pays the same checking.
        new = rounds(measure, reps, lambda r, p: math_items(count, 100 + 3 * r + p, group)[0])
        rows.append(("math items new to the service", new))
        items, body = math_items(count, 99, group)
        headers = {"content-type": "application/json"}
        recorded = httpx.post(f"{url}/v1/score", content=body, timeout=600, headers=headers)
        recorded.raise_for_status()
        # The same batch again and again: every item a cache hit, little left but the HTTP path.
        rows.append(("the same math items again (cache hits)", rounds(measure, max(reps, 10), lambda r, p: items)))

    def replay(request: httpx.Request) -> httpx.Response:
        request.read()
        return httpx.Response(200, content=recorded.content, headers=headers)

    transport = httpx.MockTransport(replay)
    with (
        httpx.Client(transport=transport) as raw,
        RewardClient(url, http=httpx.Client(transport=transport), **options) as mocked,
    ):
        measure = {"sdk": functools.partial(_sdk, mocked), "client": functools.partial(_plain, url, post=raw.post)}
        row = rounds(measure, max(reps, 10), lambda r, p: items)
        rows.append(("client side only (a transport replaying the recorded answer)", {**row, "post": math.nan}))
    started = time.perf_counter()
    for _ in range(5):
        httpx.Client().close()
    return rows, (time.perf_counter() - started) / 5 * 1000


# -- scoring behind generation ---------------------------------------------------------------------------------------


def overlap(url: str, batches: Sequence[list[dict[str, Any]]], generation_s: float) -> dict[str, Any]:
    """Half the batches as (generate step k, then score it), the other half as (submit step k, generate step k+1,
    collect k): the wall times, each step's scoring time, and how long the overlapped run still waited."""
    half = len(batches) // 2
    serial_batches, overlapped_batches = batches[:half], batches[half:]
    with RewardClient(url, rewards=SPEC, timeouts=Timeouts(request=600)) as client:
        scoring = []
        started = time.perf_counter()
        for items in serial_batches:
            time.sleep(generation_s)  # generate step k
            begun = time.perf_counter()
            client.score(items)
            scoring.append(time.perf_counter() - begun)
        serial = time.perf_counter() - started

        waits: list[float] = []
        durations: list[float] = []
        started = time.perf_counter()
        time.sleep(generation_s)  # generate step 0
        for k, items in enumerate(overlapped_batches):
            submitted = time.perf_counter()
            future = client.submit(items)
            future.add_done_callback(lambda _, t=submitted: durations.append(time.perf_counter() - t))
            if k + 1 < len(overlapped_batches):
                time.sleep(generation_s)  # generate step k + 1 while step k is scored
            begun = time.perf_counter()
            future.result()
            waits.append(time.perf_counter() - begun)
        overlapped = time.perf_counter() - started
    return {"serial": serial, "overlapped": overlapped, "scoring": scoring, "waits": waits, "durations": durations}


# -- the run -------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--group", type=int, default=8, help="completions per prompt")
    parser.add_argument("--code-share", type=float, default=0.25, help="share of the prompts that are code problems")
    parser.add_argument("--tests", type=int, default=3, help="stdin/stdout tests per code problem")
    parser.add_argument("--code-timeout", type=float, default=2.0, help="seconds per test, (a) and (b) alike")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="service CPU workers")
    parser.add_argument("--sdk-items", type=int, default=512, help="items per batch of the SDK cost measurement")
    parser.add_argument("--sdk-reps", type=int, default=3)
    parser.add_argument("--overlap-steps", type=int, default=4)
    parser.add_argument("--overlap-prompts", type=int, default=32, help="prompts per step of the overlap runs")
    parser.add_argument(
        "--generation-s",
        type=float,
        default=None,
        help="simulated generation time per step (default: the measured scoring time of one overlap step)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shape = {"code_share": args.code_share, "tests": args.tests, "code_timeout": args.code_timeout}
    batch = make_batch(args.prompts, args.group, **shape, step=0, seed=args.seed)
    kinds = Counter(batch.kind)
    programs = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()) if kind != "math")
    print(
        f"cores: {len(os.sched_getaffinity(0))}; one step: {args.prompts} prompts x {args.group} = {len(batch)} "
        f"completions, {len(batch) - kinds['math']} code ({programs}) "
        f"with {args.tests} tests each, {kinds['math']} math; mean completion "
        f"{statistics.fmean(len(c[0]['content']) for c in batch.completions):,.0f} chars; "
        f"format shapes: {', '.join(f'{k} {n}' for k, n in sorted(Counter(batch.shape).items()))}"
    )

    _warm_in_process(args.code_timeout)
    a_parts, a_scores = in_process(batch, args.code_timeout)
    a_seconds = sum(a_parts.values())

    flags = ("--sandbox-backend", "docker", "--workers", str(args.workers))
    with running_service(*flags) as (url, _):
        function = RewardFunction(url, rewards=SPEC, columns=COLUMNS, timeouts=Timeouts(request=600))
        warm = make_batch(8, args.group, **shape, step=2, seed=args.seed)
        via_reward_function(function, warm)  # workers' imports, warm sandboxes: not part of the measurement
        b_seconds, b_rewards, b_extra, b_metrics = via_reward_function(function, batch)

        sdk_rows, client_ms = sdk_overhead(url, args.sdk_items, args.sdk_reps, args.group)

        steps = [
            make_batch(args.overlap_prompts, args.group, **shape, step=10 + k, seed=args.seed).items()
            for k in range(2 * args.overlap_steps + 1)
        ]
        generation_s = args.generation_s
        if generation_s is None:
            with RewardClient(url, rewards=SPEC, timeouts=Timeouts(request=600)) as client:
                started = time.perf_counter()
                client.score(steps[0])
                generation_s = time.perf_counter() - started
        run = overlap(url, steps[1:], generation_s)

    print()
    print("| one GRPO step, scored | wall s | items/s |")
    print("|---|---:|---:|")
    print(
        f"| (a) open-r1 in-process: accuracy, format, code (host subprocesses), one after another | "
        f"{a_seconds:,.2f} | {len(batch) / a_seconds:,.1f} |"
    )
    print(
        f"| (b) `rlvr.trl.RewardFunction` -> `rlvr serve` (docker sandboxes, {args.workers} workers) | "
        f"{b_seconds:,.2f} | {len(batch) / b_seconds:,.1f} |"
    )
    print()
    print(f"(a)/(b): {a_seconds / b_seconds:.2f}x; masked by (b): {b_metrics.get('rlvr/masked_frac', 0.0):.1%}")
    timeouts = kinds["timeout"] * args.code_timeout * (args.tests // 3)  # the third shape of test
    print(
        f"(a) by function: accuracy {a_parts['math']:.2f} s, format {a_parts['format']:.2f} s, code "
        f"{a_parts['code']:.2f} s (of which about {timeouts:.0f} s waiting out time-outs)"
    )
    print()
    agreement(batch, a_scores, b_extra, b_rewards)

    print()
    print(
        f"| SDK cost, {args.sdk_items}-item math batches, us/item (median) | `RewardClient.score` | `httpx.post` | "
        "kept-open `httpx.Client().post` | SDK - `httpx.post` | SDK / `httpx.post` | SDK / kept-open client |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, us in sdk_rows:
        post = "-" if math.isnan(us["post"]) else f"{us['post']:,.1f}"
        minus = "-" if math.isnan(us["post"]) else f"{us['sdk'] - us['post']:,.1f}"
        ratio = "-" if math.isnan(us["post"]) else f"{us['sdk'] / us['post']:.2f}x"
        print(
            f"| {name} | {us['sdk']:,.1f} | {post} | {us['client']:,.1f} | {minus} | {ratio} | "
            f"{us['sdk'] / us['client']:.2f}x |"
        )
    print()
    print(f"`httpx.post` makes (and closes) a client per call: {client_ms:.1f} ms each")

    n = args.overlap_steps
    hidden_wall = (run["serial"] - run["overlapped"]) / sum(run["scoring"])
    hidden_waits = 1 - sum(run["waits"]) / sum(run["durations"])
    print()
    print(
        f"| {n} steps of {args.overlap_prompts} x {args.group} items, generation {generation_s:.2f} s per step | "
        "wall s | scoring s per step |"
    )
    print("|---|---:|---|")
    print(f"| generate, then score (serial) | {run['serial']:,.2f} | {', '.join(f'{s:.2f}' for s in run['scoring'])} |")
    print(
        f"| `submit` step k, generate step k+1, collect k (overlapped) | {run['overlapped']:,.2f} | "
        f"{', '.join(f'{s:.2f}' for s in run['durations'])} |"
    )
    print()
    print(
        f"scoring time hidden behind generation: {hidden_wall:.0%} by wall time ((serial - overlapped) / serial "
        f"scoring), {hidden_waits:.0%} by waits (1 - waited {sum(run['waits']):.2f} s / scored "
        f"{sum(run['durations']):.2f} s); at most {(n - 1) / n:.0%}: the last step has no next generation"
    )


if __name__ == "__main__":
    main()
