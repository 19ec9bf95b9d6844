"""Format checker throughput: completions per second on one core, in-process.

Run: ``.venv/bin/python -m bench.bench_format`` (pins itself to one core; a few seconds).

Completions are realistic R1-style outputs of 1-10 kB (well-formed, text after ``</answer>``, a missing tag,
two think blocks, prefilled think), checked in strict and partial mode. Printed next to a baseline: open-r1's
regex, ``re.match(r"^<think>\\n.*?\\n</think>\\n<answer>\\n.*?\\n</answer>$", text, re.DOTALL | re.MULTILINE)``,
which is what users run today (and which wrongly accepts text after ``</answer>``).
"""

from __future__ import annotations

import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewards.format import FormatSettings, check  # noqa: E402
from rewards.result import Sample  # noqa: E402

STEPS = [
    "We need to find the number of positive divisors of 360.",
    "First factor it: 360 = 2^3 * 3^2 * 5.",
    "Each divisor picks an exponent for every prime independently.",
    "So there are (3+1)(2+1)(1+1) = 24 choices in total.",
    "Wait, let me double-check the exponent of 3: 360 / 9 = 40, and 40 is not divisible by 3, so it is 2.",
    "Let me also verify with a smaller case, 12 = 2^2 * 3, which has (2+1)(1+1) = 6 divisors: 1, 2, 3, 4, 6, 12.",
    "That matches, so the formula is applied correctly.",
]
PROMPT_PREFILLED = "<|im_start|>user\nHow many divisors does 360 have?<|im_end|>\n<|im_start|>assistant\n<think>\n"
OPEN_R1 = re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", re.DOTALL | re.MULTILINE)


def reasoning(rng: random.Random) -> str:
    size = rng.randint(1_000, 10_000)
    lines: list[str] = []
    while sum(map(len, lines)) < size:
        lines.append(rng.choice(STEPS))
    return "\n".join(lines)


def samples(count: int) -> list[Sample]:
    rng = random.Random(0)
    shapes: list[Callable[[str], Sample]] = [
        lambda r: Sample(f"<think>\n{r}\n</think>\n<answer>\n24\n</answer>"),
        lambda r: Sample(f"<think>\n{r}\n</think>\n<answer>\n24\n</answer>\nI hope this helps."),
        lambda r: Sample(f"<think>\n{r}\n</think>\nThe answer is 24."),
        lambda r: Sample(f"<think>\n{r[:500]}\n</think>\n<think>\n{r}\n</think>\n<answer>\n24\n</answer>"),
        lambda r: Sample(f"{r}\n</think>\n<answer>\n24\n</answer>", prompt=PROMPT_PREFILLED),
    ]
    return [shapes[i % len(shapes)](reasoning(rng)) for i in range(count)]


def per_second(label: str, items: list[Sample], run: Callable[[Sample], object]) -> float:
    rounds = []
    for _ in range(5):
        started = time.process_time()
        for sample in items:
            run(sample)
        rounds.append(len(items) / (time.process_time() - started))
    rate = statistics.median(rounds)
    print(f"| {label} | {rate:,.0f} |")
    return rate


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    items = samples(2_000)
    mean_kb = statistics.fmean(len(s.completion) for s in items) / 1000
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{len(items)} completions, mean {mean_kb:.1f} kB, one core, CPU time, median of 5 rounds")
    print(f"load average {load} on {os.cpu_count()} CPUs\n")
    print("| checker | completions / s |")
    print("|---|---|")
    strict, partial = FormatSettings(mode="strict"), FormatSettings(mode="partial")
    baseline = per_second("open-r1 regex (baseline)", items, lambda s: OPEN_R1.match(s.completion))
    ours = per_second("rlvr format strict", items, lambda s: check(s, strict))
    per_second("rlvr format partial", items, lambda s: check(s, partial))
    print(f"\nstrict vs open-r1 regex: {ours / baseline:.2f}x")


if __name__ == "__main__":
    main()
