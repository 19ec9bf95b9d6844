"""Deterministic benchmark items for the math checker (standard library only, no network).

``distinct_items(n)``: n long chains of thought whose final ``\\boxed{}`` answers are all different, across the
answer kinds that real math datasets have, about 60% of them correct (the reference is then an equivalent but
differently written form, so that the comparison is real work, not string equality).

``grpo_batch(prompts, group)``: what a GRPO trainer sends in one step: ``group`` completions per prompt whose
final answers repeat (2 to 4 distinct answers per prompt), so that de-duplication by extracted answer pays off.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["ANSWER_KINDS", "distinct_items", "grpo_batch"]

MIN_CHARS = 200
MAX_CHARS = 30_000


@dataclass(frozen=True)
class Answer:
    """A final answer as a model writes it, the reference it should match, and a reference it must not match."""

    written: str
    reference: str
    wrong_reference: str


def _fraction(k: int) -> Answer:
    return Answer(f"\\frac{{{k}}}{{{k + 1}}}", f"\\frac{{{2 * k}}}{{{2 * k + 2}}}", f"\\frac{{{k}}}{{{k + 2}}}")


def _radical(k: int) -> Answer:
    return Answer(f"{k}\\sqrt{{2}}", f"\\sqrt{{{2 * k * k}}}", f"{k}\\sqrt{{3}}")


def _interval(k: int) -> Answer:
    return Answer(f"(-{k}, {k + 3}]", f"(-{k},{k + 3}]", f"[-{k}, {k + 3}]")


def _set(k: int) -> Answer:
    return Answer(f"\\{{{k}, {k + 1}, {k + 3}\\}}", f"\\{{{k + 3},{k},{k + 1}\\}}", f"\\{{{k}, {k + 1}\\}}")


def _tuple(k: int) -> Answer:
    return Answer(f"({k}, -{2 * k})", f"({k},-{2 * k})", f"(-{2 * k}, {k})")


def _matrix(k: int) -> Answer:
    def matrix(corner: int) -> str:
        return f"\\begin{{pmatrix}} {k} & 1 \\\\ 0 & {corner} \\end{{pmatrix}}"

    return Answer(matrix(k), matrix(k).replace(" ", ""), matrix(k + 1))


def _percentage(k: int) -> Answer:
    return Answer(f"{k}\\%", f"{Decimal(k).scaleb(-2).normalize():f}", f"{k + 1}\\%")  # exact: 12345678 -> 123456.78


def _units(k: int) -> Answer:
    return Answer(f"{k}\\text{{ cm}}", f"{k}", f"{k + 10}")


def _degrees(k: int) -> Answer:
    return Answer(f"{k}^\\circ", f"{k}", f"{k + 5}")


def _equation(k: int) -> Answer:
    return Answer(f"y = {k}x + 1", f"y={k}x+1", f"y={k}x-1")


def _complex(k: int) -> Answer:
    return Answer(f"{k} + {k + 1}i", f"{k + 1}i+{k}", f"{k} - {k + 1}i")


ANSWER_KINDS: dict[str, Callable[[int], Answer]] = {
    "fraction": _fraction,
    "radical": _radical,
    "interval": _interval,
    "set": _set,
    "tuple": _tuple,
    "matrix": _matrix,
    "percentage": _percentage,
    "units": _units,
    "degrees": _degrees,
    "equation": _equation,
    "complex": _complex,
}
_KIND_NAMES = tuple(ANSWER_KINDS)

_STEPS = (
    "Let me restate the problem to make sure I understand what is being asked.",
    "We are given that $a + b = {x}$ and $ab = {y}$, so $a^2 + b^2 = (a+b)^2 - 2ab = {z}$.",
    "Wait, let me double-check that computation: ${x}^2 = {xx}$, and subtracting $2 \\cdot {y}$ gives ${z}$.",
    "Alternatively, consider the substitution $t = x - {x}$, which turns the equation into $t^2 = {y}$.",
    "Hmm, that does not look right. Let me go back and recount the cases more carefully.",
    "By the AM-GM inequality, $\\frac{{a + b}}{{2}} \\geq \\sqrt{{ab}}$, with equality when $a = b$.",
    "The discriminant is $\\Delta = b^2 - 4ac = {xx} - {z}$, which is positive, so there are two real roots.",
    "Note that $\\sum_{{k=1}}^{{{x}}} k = \\frac{{{x}({x}+1)}}{{2}}$, a triangular number.",
    "So far we have $f({x}) = {y}$; plugging this back into the original equation is consistent.",
    "Let me verify with a small case: for $n = 2$ the formula gives ${y}$, which matches a direct count.",
    "Okay, so the key observation is that the expression factors as $(x - {x})(x + {y})$.",
    "Multiplying both sides by ${x}$ and rearranging, we get a linear equation in the remaining variable.",
)
_ENDINGS = (
    "Therefore, the final answer is $\\boxed{{{answer}}}$.",
    "So the answer is $\\boxed{{{answer}}}$.",
    "Putting everything together, we get $\\boxed{{{answer}}}$.",
)


def _step(rng: random.Random) -> str:
    x, y = rng.randrange(2, 60), rng.randrange(2, 90)
    return rng.choice(_STEPS).format(x=x, y=y, xx=x * x, z=x * x - 2 * y)


def _reasoning(rng: random.Random, length: int) -> str:
    """Sentences of plausible working, about ``length`` characters, in paragraphs."""
    parts: list[str] = []
    size = 0
    while size < length:
        sentence = _step(rng) + ("\n\n" if rng.random() < 0.2 else " ")
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)


def _completion(rng: random.Random, answer: str) -> str:
    ending = rng.choice(_ENDINGS).format(answer=answer)
    # Log-uniform lengths: most completions are a few thousand characters, a few reach the maximum.
    length = int(math.exp(rng.uniform(math.log(MIN_CHARS), math.log(MAX_CHARS))))
    body = _reasoning(rng, max(MIN_CHARS, length - len(ending) - 40))
    text = f"<think>\n{body.strip()}\n</think>\n\n{ending}" if rng.random() < 0.7 else f"{body.strip()}\n\n{ending}"
    return text if len(text) <= MAX_CHARS else text[-MAX_CHARS:]


def _answer(index: int) -> Answer:
    """The index-th answer: every index gives a different written answer."""
    kind = _KIND_NAMES[index % len(_KIND_NAMES)]
    return ANSWER_KINDS[kind](index // len(_KIND_NAMES) + 2)


def distinct_items(n: int, seed: int = 0, correct_share: float = 0.6) -> list[tuple[str, str]]:
    """``n`` (completion, reference) pairs, every final answer different, about ``correct_share`` correct."""
    rng = random.Random(seed)
    items = []
    for index in range(n):
        answer = _answer(index)
        reference = answer.reference if rng.random() < correct_share else answer.wrong_reference
        items.append((_completion(rng, answer.written), reference))
    return items


def grpo_batch(prompts: int = 64, group: int = 16, seed: int = 0) -> list[tuple[str, str, str]]:
    """(group_id, completion, reference) for ``prompts`` x ``group`` completions; 2-4 final answers per prompt."""
    rng = random.Random(seed)
    batch = []
    for prompt in range(prompts):
        kind = ANSWER_KINDS[_KIND_NAMES[prompt % len(_KIND_NAMES)]]
        right = kind(prompt + 2)
        # Wrong answers of the same kind, as a policy's near misses are.
        candidates = [right.written, *(kind(prompt + 2 + 1000 * j).written for j in range(1, rng.randint(2, 4)))]
        weights = [3.0, *(1.0 for _ in candidates[1:])]
        for _ in range(group):
            written = rng.choices(candidates, weights=weights)[0]
            batch.append((f"prompt-{prompt}", _completion(rng, written), right.reference))
    return batch
