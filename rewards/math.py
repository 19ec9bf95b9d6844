"""Math answers: is the completion's final answer equal to the reference?

Two stages, so that the service can de-duplicate before any sympy work:

1. ``extract_answer`` (cheap, linear, no sympy; ``work_key`` calls it in the service's event loop) picks the
   region after the last ``</think>``, then the answer text inside it: the last ``<answer>...</answer>``, the
   last run of ``\\boxed{}`` (with what follows it), or the tail of the region; or, in the GSM8K and DAPO
   modes, the last ``#### 42`` / ``Answer: ...``. Only that text, capped in length, ever reaches math-verify.
2. ``check`` (in a worker process's main thread) parses the reference and that text with math-verify and
   calls ``verify(reference, answer)`` in that order, all under one SIGALRM soft time-out of our own
   (math-verify's own alarms are switched off: they would cancel ours). Anything that would block in C where
   no signal reaches is left to the worker pool's hard deadline, ``settings.deadline_s()``; none of the known
   hangs (power towers, huge factorials, math-verify issue 65) does, see tests/rewards/test_math.py.

Outcomes: correct 1.0 ``ok``; wrong 0.0 ``ok``; nothing to extract 0.0 ``no_answer``; the completion's own
expression too slow 0.0 ``timeout`` (its fault, not masked); no reference, or a reference that math-verify
cannot parse, is masked (``invalid_item``, ``bad_reference``).

Errors: this module raises nothing for bad input; ``_SoftTimeout`` is internal and never escapes ``check``.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from types import FrameType
from typing import Any, Literal, TypeVar

from pydantic import Field

from rewards.checker import Checker, CheckerSettings
from rewards.result import CheckResult, FailureKind, Sample, Status

__all__ = ["CHECKER", "Extraction", "MathSettings", "check", "extract_answer", "work_key", "warm"]

ExtractTarget = Literal["latex", "expr", "string"]
AnswerSource = Literal["answer_tag", "boxed", "text"]
T = TypeVar("T")

_RENDER_BUDGET_S = 0.5
_RENDER_CHARS = 200
_BRACE = re.compile(r"[{}]")
_MATH_OPENERS = ("$", "\\(", "\\[")
# \$ is a dollar sign (\$18.90 in MATH answers); \\$ is a line break and then math.
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)(?:\\\\)*\$")
_BOX = re.compile(r"\\(?:boxed|fbox)")
# What wraps a choice in LaTeX or prose ((B), \text{B}, $B$): math-verify's string target reads bare words only.
_CHOICE_MARKUP = re.compile(r"\\(?:text(?:bf|rm|it)?|math(?:rm|bf)|boxed|fbox)|\\[()\[\]]|[$(){}\[\]]")
# A number as people write it (7,425,000  1 000  1000,99  .4  -5  12%): math-verify's own number rules apply.
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:[ ,]\d{3})+|\d+)?(?:[.,]\d+)?\s*%?")
_RUN_SEPARATOR = re.compile(r"\b(?:and|or)\b|[,;]")
_GSM8K_ANSWER = re.compile(r"####[ \t]*([-+]?\$?[0-9][0-9,]*(?:\.[0-9]+)?)")
_DAPO_ANSWER = re.compile(r"(?i:answer)\s*:\s*([^\n]+)")


class MathSettings(CheckerSettings):
    """How to find the final answer and how math-verify compares it with the reference."""

    extract: tuple[ExtractTarget, ...] = Field(
        ("latex", "expr"),
        min_length=1,
        description="math-verify extraction targets, applied to both the reference and the answer, in order.",
    )
    boxed_priority: int = Field(
        50,
        ge=-1,
        description="math-verify's boxed_match_priority: 0 prefers \\boxed{} over 'final answer is', -1 disables it.",
    )
    choices: tuple[str, ...] = Field(
        ("A", "B", "C", "D"), min_length=1, description="Literal answers for the 'string' target (multiple choice)."
    )
    float_rounding: int = Field(6, ge=0, le=20, description="Decimal places floats are rounded to before comparing.")
    numeric_precision: int = Field(15, ge=1, le=100, description="Significant digits of numeric evaluation.")
    strict: bool = Field(True, description="Variables must match and sets are not tuples (math-verify's strict).")
    allow_set_relation_comp: bool = Field(
        False, description="Let an interval in the reference equal a relation in the answer (1 < x < 2 vs (1, 2))."
    )
    answer_mode: Literal["auto", "gsm8k", "dapo"] = Field(
        "auto",
        description=(
            "auto: answer_sources in order; gsm8k: the last '#### <number>', commas stripped (also applied to a "
            "reference that has one); dapo: the last 'Answer: ...' line within the last 300 characters."
        ),
    )
    answer_region: Literal["after_think", "whole"] = Field(
        "after_think",
        description="after_think: only text after the last </think> (all of it when there is none); whole: all.",
    )
    answer_sources: tuple[AnswerSource, ...] = Field(
        ("answer_tag", "boxed", "text"),
        min_length=1,
        description=(
            "Where the answer is looked for in auto mode, first hit wins: the last <answer>...</answer>, the last "
            "run of \\boxed{} and what follows it, or the tail of the region (math-verify finds the answer there)."
        ),
    )
    max_answer_chars: int = Field(
        2000,
        ge=16,
        le=20000,
        description="Longest answer text handed to math-verify; a longer <answer> or \\boxed{} scores 0.",
    )
    max_reference_chars: int = Field(
        8000, ge=16, le=100000, description="Longest reference accepted; a longer one is a bad reference (masked)."
    )
    timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description=(
            "Soft time-out shared by parsing the reference, parsing the answer and comparing them, in that order. "
            "Running out on the reference masks the item (bad_reference); on the answer it scores 0 (timeout)."
        ),
    )

    def deadline_s(self) -> float:
        """The soft time-out of one item plus the time to render its details."""
        return self.timeout_s + _RENDER_BUDGET_S


@dataclass(frozen=True)
class Extraction:
    """The answer text a completion offers, and where it came from (``source`` is None when there is none)."""

    text: str
    source: str | None
    too_long: bool = False


# ---------------------------------------------------------------- extraction (cheap, linear, no sympy)


def _answer_region(completion: str, settings: MathSettings) -> str:
    if settings.answer_region == "whole":
        return completion
    _, closed, after = completion.rpartition("</think>")
    return after if closed else completion


def extract_answer(completion: str, settings: MathSettings) -> Extraction:
    """The answer text of a completion: linear in its length, so it may run in the service's event loop."""
    region = _answer_region(completion, settings)
    if settings.answer_mode == "gsm8k":
        return _found(_last_gsm8k_number(region), "gsm8k")
    if settings.answer_mode == "dapo":
        return _found(_last_dapo_answer(region), "dapo")
    for source in settings.answer_sources:
        extraction = _AUTO_SOURCES[source](region, settings.max_answer_chars)
        if extraction is not None:
            return extraction
    return Extraction(text="", source=None)


def _found(text: str | None, source: str) -> Extraction:
    return Extraction(text=text, source=source) if text else Extraction(text="", source=None)


def _last_gsm8k_number(region: str) -> str | None:
    found = _GSM8K_ANSWER.findall(region)
    return found[-1].replace(",", "").replace("$", "") if found else None


def _last_dapo_answer(region: str) -> str | None:
    found = _DAPO_ANSWER.findall(region[-300:])
    return found[-1].strip() if found else None


def _from_answer_tag(region: str, cap: int) -> Extraction | None:
    start = region.rfind("<answer>")
    if start < 0:
        return None
    end = region.find("</answer>", start)
    content = region[start + len("<answer>") : end if end >= 0 else len(region)].strip()
    if not content:
        return None
    return Extraction(text=content[:cap], source="answer_tag", too_long=len(content) > cap)


def _from_boxed(region: str, cap: int) -> Extraction | None:
    last = _previous_box(region, len(region))
    if last < 0:
        return None
    run_start, run_end = _last_box_run(region, last, cap)
    start = _math_opener_before(region, run_start)
    return Extraction(text=region[start : start + cap], source="boxed", too_long=run_end - start > cap)


def _from_text_tail(region: str, cap: int) -> Extraction | None:
    tail = region[-cap:]
    if len(region) > cap:
        # Start at a line break when there is one, so that no $...$ pair is cut in half.
        newline = tail.find("\n")
        tail = tail[newline + 1 :] if 0 <= newline < cap // 2 else tail
    tail = tail.strip()
    return Extraction(text=tail, source="text") if tail else None


_AUTO_SOURCES: dict[str, Callable[[str, int], Extraction | None]] = {
    "answer_tag": _from_answer_tag,
    "boxed": _from_boxed,
    "text": _from_text_tail,
}


def _previous_box(region: str, before: int, after: int = 0) -> int:
    return max(region.rfind("\\boxed", after, before), region.rfind("\\fbox", after, before))


def _closing_brace(text: str, start: int, limit: int) -> int:
    """Index just past the brace that closes the first '{' after ``start``, or ``limit`` when unclosed."""
    depth = 0
    for brace in _BRACE.finditer(text, start, limit):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return brace.end()
    return limit


def _last_box_run(region: str, last: int, cap: int) -> tuple[int, int]:
    """Span of the last box with the boxes just before it that math-verify reads as one answer (1, 2 and 3).

    Walks back from the end and stops once the run is longer than ``cap`` (it is too long then anyway), so a
    megabyte of boxes costs no more than ``cap`` characters of Python work.
    """
    run_start, run_end = last, _closing_brace(region, last, min(len(region), last + cap + 1))
    while run_end - run_start <= cap:
        # A box that could still join the run starts within cap + 70 characters of it.
        start = _previous_box(region, run_start, max(0, run_start - cap - 80))
        if start < 0:
            break
        between = region[_closing_brace(region, start, min(run_start, start + cap + 1)) : run_start]
        if len(between) >= 70 or (len(between) >= 10 and not _RUN_SEPARATOR.search(between)):
            break
        run_start = start
    return run_start, run_end


def _math_opener_before(region: str, box_start: int) -> int:
    """Back up to the $, $$, \\( or \\[ that opens the math around a box, if it is close by."""
    window_start = max(0, box_start - 80)
    paragraph = region.rfind("\n\n", window_start, box_start)
    window_start = paragraph + 2 if paragraph >= 0 else window_start
    opener = max(region.rfind(token, window_start, box_start) for token in _MATH_OPENERS)
    if opener < 0:
        return box_start
    for _ in range(3):  # $$, \($ and the like: take the outermost of openers written back to back
        before = next((token for token in _MATH_OPENERS if region.endswith(token, window_start, opener)), None)
        if before is None:
            break
        opener -= len(before)
    return opener


def _gsm8k_reference(reference: str) -> str:
    """A GSM8K reference is either the number itself or a full solution ending in '#### <number>'."""
    return _last_gsm8k_number(reference) or reference.strip()


def work_key(sample: Sample, settings: MathSettings) -> str:
    """Equal keys (under equal settings and reference) give equal results: check() sees only this text."""
    extraction = extract_answer(sample.completion, settings)
    return f"{extraction.source}\x1f{int(extraction.too_long)}\x1f{extraction.text}"


# ---------------------------------------------------------------- soft time-outs


class _SoftTimeout(BaseException):
    """Raised by our SIGALRM handler; a BaseException so that math-verify's ``except Exception`` lets it through."""


def _raise_soft_timeout(signum: int, frame: FrameType | None) -> None:
    raise _SoftTimeout


@contextmanager
def _time_box(seconds: float) -> Iterator[None]:
    """Interrupt the body after ``seconds`` (main thread only: elsewhere the pool's hard deadline is all there is).

    The alarm repeats every 50 ms until the body is left, so code that swallows one interruption
    (a bare ``except:`` somewhere in a library) still gets the next. A timer that was running before is
    re-armed with what was left of it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_soft_timeout)
    started = time.monotonic()
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
            if outer_delay > 0:
                left = outer_delay - (time.monotonic() - started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), outer_interval)


@dataclass(frozen=True)
class _TimedOut:
    seconds: float


def _within(seconds: float, work: Callable[[], T]) -> T | _TimedOut:
    if seconds <= 0:
        return _TimedOut(seconds)
    try:
        with _time_box(seconds):
            return work()
    except _SoftTimeout:
        return _TimedOut(seconds)


@dataclass(frozen=True)
class _Budget:
    """What is left of one item's soft time-out."""

    ends_at: float

    def left(self) -> float:
        return self.ends_at - time.monotonic()


# ---------------------------------------------------------------- math-verify


@lru_cache(maxsize=64)
def _extraction_targets(extract: tuple[str, ...], boxed_priority: int, choices: tuple[str, ...]) -> tuple[Any, ...]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig

    targets = {
        "latex": LatexExtractionConfig(boxed_match_priority=boxed_priority),
        "expr": ExprExtractionConfig(),
        "string": StringExtractionConfig(strings=choices),
    }
    return tuple(targets[name] for name in dict.fromkeys(extract))


def _parse_answer_text(text: str, settings: MathSettings) -> list[Any]:
    """Parse a reference, or an answer already cut out of a completion (tag content, '####', 'Answer:').

    Such text often is bare LaTeX with no $...$ around it, where math-verify finds nothing or, worse, a piece
    of it (``2\\sqrt{3}`` and ``3+4i`` read as 2 and 3): unless it is a plain number, read it as display math
    first, and as written when that finds nothing mathematical.
    """
    if _has_math_delimiter(text):
        return _parse(text, settings)
    plain_number = len(text) <= 64 and _PLAIN_NUMBER.fullmatch(text.strip()) is not None
    if plain_number:
        as_is = _parse(text, settings)
        return as_is if _has_math_object(as_is) else _first_math(_parse(f"\\[{text}\\]", settings), as_is)
    as_display = _parse(f"\\[{text}\\]", settings)
    return as_display if _has_math_object(as_display) else _parse(text, settings)


@lru_cache(maxsize=4096)
def _parse_reference(reference: str, settings: MathSettings) -> list[Any]:
    """A worker sees each reference many times (every completion of a prompt): parse it once.

    Only finished parses are cached (a soft time-out raises through the cache); sympy objects are immutable.
    The settings are part of the key, and the weight is the only field that does not change the parse.
    """
    return _parse_answer_text(reference, settings)


def _parse_answer(extraction: Extraction, settings: MathSettings) -> list[Any]:
    if set(settings.extract) == {"string"}:
        # As written too, for choices that carry the markup themselves ("(B)").
        return _parse(_choice_text(extraction), settings) or _parse(extraction.text, settings)
    parse_text = _parse if extraction.source in ("boxed", "text") else _parse_answer_text
    return parse_text(extraction.text, settings)


def _choice_text(extraction: Extraction) -> str:
    """The answer as math-verify's string target can read it: bare words, with (B), \\text{B} and $B$ unwrapped.

    Of a boxed answer only what is in the boxes counts: the words after them (``\\boxed{B}, since A is wrong``)
    would otherwise be read as the choice.
    """
    text = extraction.text
    if extraction.source == "boxed":
        text = ", ".join(_box_contents(text))
    return _CHOICE_MARKUP.sub(" ", text)


def _box_contents(text: str) -> Iterator[str]:
    for box in _BOX.finditer(text):
        yield text[box.end() : _closing_brace(text, box.end(), len(text))]


def _first_math(candidate: list[Any], fallback: list[Any]) -> list[Any]:
    # A string-only result of the display form is our own wrapping failing: it never beats the text as written.
    return candidate if _has_math_object(candidate) else fallback


def _has_math_delimiter(text: str) -> bool:
    opened = any(token in text for token in ("\\(", "\\[", "\\boxed", "\\fbox"))
    return opened or _UNESCAPED_DOLLAR.search(text) is not None


def _has_math_object(parsed: list[Any]) -> bool:
    return any(not isinstance(value, str) for value in parsed)


def _parse(text: str, settings: MathSettings) -> list[Any]:
    from math_verify import parse

    targets = _extraction_targets(settings.extract, settings.boxed_priority, settings.choices)
    # parsing_timeout=None: math-verify's own alarm would cancel ours; _time_box bounds the call instead.
    parsed: list[Any] = parse(text, extraction_config=targets, parsing_timeout=None)
    return parsed


def _verify(reference: list[Any], answer: list[Any], settings: MathSettings) -> bool:
    from math_verify import verify

    matched: bool = verify(
        reference,
        answer,
        float_rounding=settings.float_rounding,
        numeric_precision=settings.numeric_precision,
        strict=settings.strict,
        allow_set_relation_comp=settings.allow_set_relation_comp,
        timeout_seconds=None,
    )
    return matched


def _render_all(values: Sequence[Any]) -> list[str]:
    """Short strings for the details; huge sympy objects can take forever to print, hence the time box."""
    rendered: list[str] = []

    def render() -> list[str]:
        for value in values:
            rendered.append(_render_one(value))
        return rendered

    outcome = _within(_RENDER_BUDGET_S / 2, render)
    return rendered + ["<too large to print>"] if isinstance(outcome, _TimedOut) else rendered


def _render_one(value: Any) -> str:
    try:
        text = value if isinstance(value, str) else str(value)
    except (ValueError, RecursionError, MemoryError, TypeError):
        return "<too large to print>"
    return _printable(text)


def _printable(text: str) -> str:
    """Capped, and valid UTF-8 (a completion may carry lone surrogates that no JSON encoder accepts)."""
    capped = text if len(text) <= _RENDER_CHARS else text[: _RENDER_CHARS - 1] + "…"
    return capped.encode("utf-8", "replace").decode("utf-8")


# ---------------------------------------------------------------- check


def check(sample: Sample, settings: MathSettings) -> CheckResult:
    """Score one completion against its reference; never raises for bad input."""
    try:
        with warnings.catch_warnings():
            # sympy and latex2sympy warn on some inputs; the outcome must not depend on the warning filters.
            warnings.simplefilter("ignore")
            return _check(sample, settings)
    except Exception as exc:  # our own failure: masked, never a fake zero
        return CheckResult.unjudgeable(
            status=Status.ERROR, kind=FailureKind.INTERNAL_ERROR, reason=f"math checker failed: {type(exc).__name__}"
        )


def _check(sample: Sample, settings: MathSettings) -> CheckResult:
    import math_verify  # noqa: F401  (imported outside the time boxes: an interrupted import would stay broken)

    reference = _reference_text(sample.reference, settings)
    if reference is None:
        return CheckResult.unjudgeable(
            status=Status.INVALID_ITEM, kind=FailureKind.INVALID_ITEM, reason="the item has no reference answer"
        )
    if len(reference) > settings.max_reference_chars:
        return _bad_reference(f"the reference is longer than {settings.max_reference_chars} characters")
    budget = _Budget(time.monotonic() + settings.timeout_s)
    reference_parsed = _within(budget.left(), lambda: _parse_reference(reference, settings))
    if isinstance(reference_parsed, _TimedOut):
        return _bad_reference(f"parsing the reference took longer than {settings.timeout_s} s")
    if not reference_parsed:
        return _bad_reference("math-verify found no answer in the reference")
    extraction = extract_answer(sample.completion, settings)
    return _judge_answer(reference_parsed, extraction, settings, budget)


def _reference_text(reference: object, settings: MathSettings) -> str | None:
    if reference is None or isinstance(reference, bool):
        return None
    text = reference if isinstance(reference, str) else str(reference)
    if not text.strip():
        return None
    return _gsm8k_reference(text) if settings.answer_mode == "gsm8k" else text


def _bad_reference(reason: str) -> CheckResult:
    return CheckResult.unjudgeable(status=Status.BAD_REFERENCE, kind=FailureKind.BAD_REFERENCE, reason=reason)


def _judge_answer(
    reference_parsed: list[Any], extraction: Extraction, settings: MathSettings, budget: _Budget
) -> CheckResult:
    details: dict[str, Any] = {
        "source": extraction.source,
        "extracted": _printable(extraction.text),
        "reference_parsed": _render_all(reference_parsed),
    }
    if extraction.source is None:
        return CheckResult(score=0.0, status=Status.NO_ANSWER, details=details)
    if extraction.too_long:
        details["reason"] = f"the answer is longer than {settings.max_answer_chars} characters"
        return CheckResult(score=0.0, status=Status.NO_ANSWER, details=details)
    answer_parsed = _within(budget.left(), lambda: _parse_answer(extraction, settings))
    if isinstance(answer_parsed, _TimedOut):
        details["reason"] = f"parsing the answer ran past the {settings.timeout_s} s time-out"
        return CheckResult(score=0.0, status=Status.TIMEOUT, details=details)
    details["answer_parsed"] = _render_all(answer_parsed)
    if not answer_parsed:
        return CheckResult(score=0.0, status=Status.NO_ANSWER, details=details)
    matched = _within(budget.left(), lambda: _verify(reference_parsed, answer_parsed, settings))
    if isinstance(matched, _TimedOut):
        details["reason"] = f"comparing with the reference ran past the {settings.timeout_s} s time-out"
        return CheckResult(score=0.0, status=Status.TIMEOUT, details=details)
    return CheckResult(score=1.0 if matched else 0.0, status=Status.OK, details=details)


# One of each kind of answer: sympy imports much of itself lazily, on first use, and an import cut short by a
# soft time-out would leave a module half-built in the worker.
_WARM_PAIRS = (
    ("$\\frac{1}{2}$", "so the answer is $\\boxed{0.5}$"),
    ("$x^2 - 1$", "$\\boxed{(x-1)(x+1)}$"),
    ("$F_n = \\sum_{k=0}^{n-1} F_k$", "$\\boxed{\\int_0^1 x \\, dx}$"),
    ("$[1, 2) \\cup (3, \\infty)$", "$\\boxed{1 \\le x < 2}$"),
    ("$\\{1, 2\\}$", "$\\boxed{(1, 2)}$"),
    ("$\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}$", "$\\boxed{\\log_2 8 + \\sin^2 x + \\cos^2 x}$"),
    ("$3 + 4i$", "$\\boxed{\\binom{5}{2} + 5! + 30^\\circ + 25\\%}$"),
    ("$y = 2x + 1$", "$\\boxed{\\lim_{x \\to 0} \\frac{d}{dx} x^2 \\pm 2}$"),
)


class _OwnTimeoutsNotice(logging.Filter):
    """Drops math-verify's notice that its time-outs are off: they are off on purpose, ours replace them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


def _quiet_math_verify_notice() -> None:
    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _OwnTimeoutsNotice) for existing in logger.filters):
            logger.addFilter(_OwnTimeoutsNotice())


def warm() -> None:
    """Run one of each kind of answer through math-verify, without time-outs, before real items arrive."""
    _quiet_math_verify_notice()
    settings = MathSettings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for reference, completion in _WARM_PAIRS:
            _verify(_parse(reference, settings), _parse(completion, settings), settings)
            _verify(_parse(reference, settings), _parse(reference, settings), settings)


CHECKER = Checker(
    name="math",
    description=(
        "Final-answer correctness with math-verify: \\boxed{}, <answer>, GSM8K '####' or DAPO 'Answer:' "
        "against a LaTeX, plain or numeric reference (verify(reference, answer), never swapped)."
    ),
    settings_model=MathSettings,
    check=check,
    work_key=work_key,
    warm=warm,
    # The reference is parsed under its own soft time-out first (a slow one is masked as bad_reference), so a
    # worker the pool has to kill is stuck on the completion's answer: the completion's fault, scored 0.
    hang_score=0.0,
)
