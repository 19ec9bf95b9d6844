"""The math checker: math-verify's own suite, real model outputs, and inputs that hang naive checkers."""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rewards.checker import load_checker
from rewards.math import CHECKER, MathSettings, check, extract_answer, warm, work_key
from rewards.result import CheckResult, Sample

SUITE = Path(__file__).parent.parent / "data" / "math-verify-suite.jsonl"


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    # What a worker does at start: the first parse imports the ANTLR grammar, which must not eat a time-out.
    warm()


# ---------------------------------------------------------------- 1. math-verify's own suite


def suite_settings(case: dict[str, Any]) -> MathSettings:
    if case["match_types"] == ["default"]:
        return MathSettings()
    return MathSettings(
        extract=case["match_types"],
        boxed_priority=0,
        float_rounding=case["precision"],
        strict=case["strict"],
        allow_set_relation_comp=case["allow_set_relation_comp"],
    )


def suite_cases() -> list[Any]:
    cases = [json.loads(line) for line in SUITE.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen: Counter[str] = Counter()
    params = []
    for case in cases:
        seen[case["nodeid"]] += 1
        suffix = f"#{seen[case['nodeid']]}" if seen[case["nodeid"]] > 1 else ""
        params.append(pytest.param(case, id=case["nodeid"] + suffix))
    return params


def test_suite_has_every_case() -> None:
    assert len(suite_cases()) == 270


@pytest.mark.parametrize("case", suite_cases())
def test_math_verify_suite(case: dict[str, Any]) -> None:
    result = check(Sample(completion=case["pred"], reference=case["gold"]), suite_settings(case))
    assert result.score == float(case["expected"]), result.details
    assert result.status in ("ok", "no_answer") and not result.masked


# ---------------------------------------------------------------- 2. real model outputs

COT = (
    "<think>\nOkay, so I need to find the sum of the roots of $x^2 - 5x + 6 = 0$. Factoring gives $(x-2)(x-3) = 0$, "
    "so the roots are $2$ and $3$. Wait, let me double-check with Vieta: the sum is $-b/a = 5$. Hmm, what if I had "
    "misread the sign? If it were $x^2 + 5x + 6$ the answer would be $\\boxed{-5}$, but it is not.\n"
    + "Let me re-verify each step carefully. " * 40
    + "\n</think>\n\n"
)
DEFAULT: dict[str, Any] = {}
GSM8K = {"answer_mode": "gsm8k"}
DAPO = {"answer_mode": "dapo"}


@pytest.mark.parametrize(
    ("completion", "reference", "settings", "score", "status"),
    [
        pytest.param(COT + "The sum of the roots is $\\boxed{5}$.", "5", DEFAULT, 1.0, "ok", id="r1_cot_boxed"),
        pytest.param(COT + "The sum of the roots is $\\boxed{-5}$.", "5", DEFAULT, 0.0, "ok", id="r1_cot_wrong"),
        pytest.param(
            "<think>maybe \\boxed{3}?</think>\nSo the answer is \\boxed{5}.",
            "3",
            DEFAULT,
            0.0,
            "ok",
            id="boxed_in_think_ignored",
        ),
        pytest.param(
            "<think>maybe \\boxed{3}?</think>\nSo the answer is \\boxed{5}.",
            "5",
            DEFAULT,
            1.0,
            "ok",
            id="boxed_after_think_wins",
        ),
        pytest.param(
            "<think>it is \\boxed{3}</think>\nI am not sure.",
            "3",
            DEFAULT,
            0.0,
            "no_answer",
            id="answer_only_in_think",
        ),
        pytest.param(
            "<think>it is \\boxed{3}</think>\nI am not sure.",
            "3",
            {"answer_region": "whole"},
            1.0,
            "ok",
            id="answer_only_in_think_region_whole",
        ),
        pytest.param(
            "<think>Let me think about this for a long time " + "hmm " * 500,
            "5",
            DEFAULT,
            0.0,
            "no_answer",
            id="truncated_in_think",
        ),
        pytest.param(COT + "<answer>\n\\frac{3}{4}\n</answer>", "0.75", DEFAULT, 1.0, "ok", id="answer_tag_fraction"),
        pytest.param(COT + "<answer>2\\sqrt{3}</answer>", "\\sqrt{12}", DEFAULT, 1.0, "ok", id="answer_tag_bare_latex"),
        pytest.param(COT + "<answer>2\\sqrt{3}</answer>", "2", DEFAULT, 0.0, "ok", id="answer_tag_not_read_as_2"),
        pytest.param(
            COT + "<answer>The answer is $\\boxed{7}$</answer>", "7", DEFAULT, 1.0, "ok", id="answer_tag_with_boxed"
        ),
        pytest.param(
            "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 1,234",
            "Natalia sold 48/2 = 24 clips in May.\n#### 1234",
            GSM8K,
            1.0,
            "ok",
            id="gsm8k_commas_and_solution_reference",
        ),
        pytest.param("#### 5\nno, wait\n#### 7", "7", GSM8K, 1.0, "ok", id="gsm8k_last_match"),
        pytest.param("so it is \\boxed{7}", "7", GSM8K, 0.0, "no_answer", id="gsm8k_needs_hashes"),
        pytest.param("We compute it step by step.\nAnswer: 42", "42", DAPO, 1.0, "ok", id="dapo_answer_line"),
        pytest.param("Answer: \\frac{1}{2}", "0.5", DAPO, 1.0, "ok", id="dapo_bare_latex"),
        pytest.param("Answer: 42\n" + "and some more words " * 20, "42", DAPO, 0.0, "no_answer", id="dapo_last_300"),
        pytest.param("\\boxed{\\dfrac{3}{4}}", "0.75", DEFAULT, 1.0, "ok", id="dfrac_vs_decimal"),
        pytest.param("$\\boxed{\\frac{1}{2}}$", "\\frac12", DEFAULT, 1.0, "ok", id="bare_latex_reference"),
        pytest.param("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", DEFAULT, 1.0, "ok", id="radical"),
        pytest.param("\\boxed{(-\\infty, 2]}", "(-\\infty,2]", DEFAULT, 1.0, "ok", id="interval"),
        pytest.param("\\boxed{(-\\infty, 2]}", "(-\\infty,2)", DEFAULT, 0.0, "ok", id="interval_wrong_bracket"),
        pytest.param("$\\boxed{\\{1,2,3\\}}$", "\\{3,2,1\\}", DEFAULT, 1.0, "ok", id="set_any_order"),
        pytest.param("$\\boxed{(1, -2)}$", "(1,-2)", DEFAULT, 1.0, "ok", id="tuple"),
        pytest.param("$\\boxed{(-2, 1)}$", "(1,-2)", DEFAULT, 0.0, "ok", id="tuple_order_matters"),
        pytest.param(
            "$\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}}$",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
            DEFAULT,
            1.0,
            "ok",
            id="matrix",
        ),
        pytest.param(
            "$\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}}$",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
            DEFAULT,
            0.0,
            "ok",
            id="matrix_wrong_entry",
        ),
        pytest.param("\\boxed{25\\%}", "25\\%", DEFAULT, 1.0, "ok", id="percent"),
        pytest.param("\\boxed{25\\%}", "0.25", DEFAULT, 1.0, "ok", id="percent_vs_fraction"),
        pytest.param("\\boxed{12\\text{ cm}}", "12", DEFAULT, 1.0, "ok", id="units"),
        pytest.param("\\boxed{30^\\circ}", "30", DEFAULT, 1.0, "ok", id="degrees"),
        pytest.param("\\boxed{y = 2x + 1}", "y=2x+1", DEFAULT, 1.0, "ok", id="equation"),
        pytest.param("\\boxed{x = 5}", "5", DEFAULT, 1.0, "ok", id="assignment_vs_number"),
        pytest.param("\\boxed{4i + 3}", "3+4i", DEFAULT, 1.0, "ok", id="complex"),
        pytest.param("\\boxed{3 - 4i}", "3+4i", DEFAULT, 0.0, "ok", id="complex_conjugate"),
        pytest.param("so $x = \\boxed{2}$ or $x = \\boxed{3}$", "2, 3", DEFAULT, 1.0, "ok", id="two_boxed_answers"),
        pytest.param(
            "The final answer is $\\frac{1}{2}$. I hope it is correct.",
            "1/2",
            DEFAULT,
            1.0,
            "ok",
            id="final_answer_text",
        ),
        pytest.param("I don't know.", "5", DEFAULT, 0.0, "no_answer", id="no_answer"),
        pytest.param("So the answer is \\boxed{}.", "5", DEFAULT, 0.0, "no_answer", id="empty_boxed"),
        pytest.param("The answer is C.", "C", {"extract": ["string"]}, 1.0, "ok", id="multiple_choice"),
    ],
)
def test_model_outputs(completion: str, reference: str, settings: dict[str, Any], score: float, status: str) -> None:
    result = check(Sample(completion=completion, reference=reference), MathSettings(**settings))
    assert (result.score, result.status, result.masked) == (score, status, False), result.details


@pytest.mark.parametrize(
    ("reference", "status"),
    [
        pytest.param("???", "bad_reference", id="unparseable"),
        pytest.param("x" * 9000, "bad_reference", id="too_long"),
        pytest.param(None, "invalid_item", id="missing"),
        pytest.param("   ", "invalid_item", id="blank"),
        # A line break and then an unclosed $: math-verify finds nothing in it either.
        pytest.param("\\\\$18.90", "bad_reference", id="line_break_then_dollar"),
    ],
)
def test_reference_we_cannot_judge_is_masked(reference: str | None, status: str) -> None:
    result = check(Sample(completion="\\boxed{5}", reference=reference), MathSettings())
    assert (result.score, result.status, result.failure_kind) == (None, status, status)
    assert result.masked and result.failure_reason


@pytest.mark.parametrize(
    ("reference", "completion", "score"),
    [
        pytest.param("\\$18.90", "The total is $\\boxed{18.90}$.", 1.0, id="escaped_dollar_vs_number"),
        pytest.param("\\$18.90", "\\boxed{\\$18.90}", 1.0, id="escaped_dollar_vs_boxed_dollar"),
        pytest.param("\\$18.90", "\\boxed{18.9}", 1.0, id="escaped_dollar_vs_trailing_zero_dropped"),
        pytest.param("\\$18.90", "\\boxed{\\$19.80}", 0.0, id="escaped_dollar_wrong_amount"),
        pytest.param("\\$18.90", "<answer>\\$18.90</answer>", 1.0, id="escaped_dollar_in_answer_tag"),
        pytest.param("\\$32,\\!348", "\\boxed{32348}", 1.0, id="escaped_dollar_thousands"),
        pytest.param("$\\$18.90$", "\\boxed{18.90}", 1.0, id="escaped_dollar_inside_math"),
        pytest.param("$18.90", "\\boxed{18.90}", 1.0, id="bare_dollar_reference"),
        pytest.param("5", "\\boxed{\\$5}", 1.0, id="dollar_in_completion_only"),
        pytest.param("5", "<answer>\\$5</answer>", 1.0, id="dollar_in_answer_tag_only"),
    ],
)
def test_currency_answers(reference: str, completion: str, score: float) -> None:
    result = check(Sample(completion=completion, reference=reference), MathSettings())
    assert (result.score, result.status) == (score, "ok"), result.details


@pytest.mark.parametrize(
    ("reference", "in_math"),
    [
        pytest.param("\\$18.90", "$\\$18.90$", id="escaped_dollar"),
        pytest.param("\\$32,\\!348", "$\\$32,\\!348$", id="escaped_dollar_thousands"),
        pytest.param("$18.90", "$18.90", id="bare_dollar"),
    ],
)
def test_dollar_reference_parses_as_math_verify_reads_it_in_math(reference: str, in_math: str) -> None:
    from math_verify import parse

    result = check(Sample(completion="\\boxed{0}", reference=reference), MathSettings())
    assert result.details["reference_parsed"] == [str(value) for value in parse(in_math, parsing_timeout=None)]


CHOICE = {"extract": ["string"]}


@pytest.mark.parametrize(
    ("completion", "reference", "settings", "score", "status"),
    [
        pytest.param("\\boxed{B}", "B", CHOICE, 1.0, "ok", id="boxed"),
        pytest.param("\\boxed{B}", "C", CHOICE, 0.0, "ok", id="boxed_wrong"),
        pytest.param("The answer is $\\boxed{B}$.", "B", CHOICE, 1.0, "ok", id="boxed_in_math"),
        pytest.param("\\boxed{\\text{(B)}}", "B", CHOICE, 1.0, "ok", id="boxed_text_in_parentheses"),
        pytest.param("$\\boxed{B}$, since A is wrong.", "B", CHOICE, 1.0, "ok", id="boxed_then_other_choice"),
        pytest.param("<think>A or C?</think>\\boxed{B}", "C", CHOICE, 0.0, "ok", id="boxed_after_think"),
        pytest.param("<answer>B</answer>", "B", CHOICE, 1.0, "ok", id="answer_tag"),
        pytest.param("<answer>B</answer>", "C", CHOICE, 0.0, "ok", id="answer_tag_wrong"),
        pytest.param("<answer>(B)</answer>", "B", CHOICE, 1.0, "ok", id="answer_tag_in_parentheses"),
        pytest.param("The answer is (B)", "B", CHOICE, 1.0, "ok", id="parentheses"),
        pytest.param("The answer is (B)", "C", CHOICE, 0.0, "ok", id="parentheses_wrong"),
        pytest.param(
            "The answer is (B)",
            "(B)",
            {"extract": ["string"], "choices": ["(A)", "(B)"]},
            1.0,
            "ok",
            id="choices_with_parentheses",
        ),
        pytest.param("I cannot tell.", "B", CHOICE, 0.0, "no_answer", id="no_choice"),
    ],
)
def test_multiple_choice(completion: str, reference: str, settings: dict[str, Any], score: float, status: str) -> None:
    result = check(Sample(completion=completion, reference=reference), MathSettings(**settings))
    assert (result.score, result.status, result.masked) == (score, status, False), result.details


def test_details_say_what_was_compared() -> None:
    result = check(Sample(completion=COT + "So it is $\\boxed{\\frac{10}{2}}$.", reference="5"), MathSettings())
    assert result.score == 1.0
    assert result.details["source"] == "boxed"
    assert result.details["extracted"] == "$\\boxed{\\frac{10}{2}}$."
    assert result.details["reference_parsed"][0] == "5"
    assert result.details["answer_parsed"][0] == "5"


def test_checker_is_registered() -> None:
    checker = load_checker("math")
    assert checker is CHECKER
    assert (checker.settings_model, checker.runs_in, checker.work_key, checker.warm) == (
        MathSettings,
        "cpu",
        work_key,
        warm,
    )


def test_works_outside_the_main_thread() -> None:
    # No SIGALRM there: the check still answers (the pool's hard deadline is the only guard).
    results: list[CheckResult] = []
    thread = threading.Thread(target=lambda: results.append(check(Sample("\\boxed{2}", reference="2"), MathSettings())))
    thread.start()
    thread.join(30)
    assert results[0].score == 1.0


def test_a_timer_set_by_the_caller_survives() -> None:
    # A worker pool may hold its own SIGALRM timer around an item; our soft time-outs must not cancel it.
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    try:
        assert check(Sample("\\boxed{2}", reference="2"), MathSettings()).score == 1.0
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left < 30.0 and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- settings


def test_settings_reject_unknown_keys_and_values() -> None:
    with pytest.raises(ValidationError):
        MathSettings(precision=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        MathSettings(extract=["latex", "regex"])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        MathSettings(answer_mode="minerva")  # type: ignore[arg-type]


def test_settings_are_hashable_and_cache_tokens_ignore_weight() -> None:
    assert len({MathSettings(), MathSettings(extract=["latex", "expr"])}) == 1
    assert MathSettings(weight=2.0).cache_token == MathSettings().cache_token
    assert MathSettings(strict=False).cache_token != MathSettings().cache_token


def test_deadline_covers_the_soft_time_out() -> None:
    assert MathSettings(timeout_s=2.0).deadline_s() > 2.0
    assert MathSettings().deadline_s() <= 10.0


# ---------------------------------------------------------------- work_key: what the service de-duplicates on


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        pytest.param(
            COT + "So $\\boxed{5}$.", "<think>short</think>So $\\boxed{5}$.", True, id="same_answer_other_cot"
        ),
        pytest.param(COT + "So $\\boxed{5}$.", COT + "So $\\boxed{6}$.", False, id="other_answer"),
        pytest.param("nothing here", "<think>x</think>nor here", False, id="different_text_tails"),
        pytest.param("<think>\\boxed{1}</think>", "<think>\\boxed{2}</think>", True, id="both_without_answer"),
        pytest.param("#### 1,000", "#### 1000", True, id="gsm8k_commas"),
    ],
)
def test_work_key(first: str, second: str, same: bool) -> None:
    settings = MathSettings(answer_mode="gsm8k") if first.startswith("####") else MathSettings()
    first_key, second_key = work_key(Sample(first), settings), work_key(Sample(second), settings)
    assert (first_key == second_key) is same
    if same:
        results = [check(Sample(text, reference="5"), settings) for text in (first, second)]
        assert results[0] == results[1]


def test_equal_keys_give_equal_results_across_a_batch() -> None:
    rng = random.Random(7)
    endings = ["$\\boxed{5}$.", "$\\boxed{\\frac{10}{2}}$.", "<answer>5</answer>", "no idea", "$\\boxed{6}$."]
    samples = [
        Sample(f"<think>{'x' * rng.randrange(50)}</think>{rng.choice(endings)}", reference="5") for _ in range(40)
    ]
    by_key: dict[str, CheckResult] = {}
    for sample in samples:
        result = check(sample, MathSettings())
        assert by_key.setdefault(work_key(sample, MathSettings()), result) == result


def test_extraction_finds_boxed_run_with_its_math_opener() -> None:
    extraction = extract_answer("so $x = \\boxed{2}$ or $x = \\boxed{3}$", MathSettings())
    assert (extraction.source, extraction.text) == ("boxed", "$x = \\boxed{2}$ or $x = \\boxed{3}$")


# ---------------------------------------------------------------- 3. inputs that hang naive checkers

RNG = random.Random(1234)
GARBAGE = "".join(chr(RNG.randrange(32, 127)) for _ in range(1_000_000))
# Every case below returns by itself: its slow part is Python code that our SIGALRM interrupts. No case was found
# to block in C beyond the soft time-outs; a case that did would be marked here and left to the pool's hard kill.
HANGS = [
    pytest.param("\\boxed{9^{9^{9}}}", "9^{9^{9}}+1", {"timeout", "ok"}, id="power_tower_9"),
    pytest.param("\\boxed{(10^{7})!}", "10", {"timeout", "ok"}, id="factorial_10_7"),
    pytest.param("\\boxed{2^{2^{2^{2^{2^{2}}}}}}", "65536", {"timeout", "ok"}, id="power_tower_2"),
    pytest.param("\\boxed{" + "+".join(["1"] * 20001) + "}", "20001", {"no_answer"}, id="sum_20001_terms"),
    pytest.param("\\boxed{" + "(" * 300 + "1" + ")" * 300 + "}", "1", {"timeout", "ok"}, id="nested_parens_300"),
    pytest.param("\\boxed{" + "7" * 100_000 + "}", "7", {"no_answer"}, id="integer_100k_digits"),
    pytest.param("the quick brown fox jumps over the lazy dog " * 4700, "3", {"no_answer"}, id="text_200kb"),
    pytest.param("1 " * 20000, "1", {"ok"}, id="ones_20000"),
    pytest.param(
        "\\boxed{\\dfrac{5^{(5^{(5^{(5^5)})} - 4)} - 5}{16}}",
        "\\frac{5^{3121}-5}{16}",
        {"timeout", "ok"},
        id="math_verify_issue_65",
    ),
    pytest.param("the answer is \\boxed{\\frac{1}{2" + " and so on" * 50, "\\frac12", {"ok"}, id="unclosed_boxed"),
    pytest.param(GARBAGE, "1", {"ok", "no_answer"}, id="garbage_1mb"),
    pytest.param("the answer is \\boxed{\ud800 3 \udfff}", "3", {"ok"}, id="lone_surrogates"),
]


def _time_check(completion: str, reference: str, results: Any) -> None:
    settings = MathSettings()
    sample = Sample(completion, reference=reference)
    started = time.perf_counter()
    key = work_key(sample, settings)
    key_s = time.perf_counter() - started
    started = time.perf_counter()
    result = check(sample, settings)
    results.send((key_s, time.perf_counter() - started, len(key), result))


@pytest.mark.slow
@pytest.mark.parametrize(("completion", "reference", "statuses"), HANGS)
def test_hang_returns_within_deadline(completion: str, reference: str, statuses: set[str]) -> None:
    deadline = MathSettings().deadline_s()
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    worker = multiprocessing.get_context("fork").Process(target=_time_check, args=(completion, reference, sender))
    worker.start()
    answered = receiver.poll(deadline + 2 + 5)  # + 5 s for the process to start on a loaded machine
    if not answered:
        worker.kill()
    worker.join()
    assert answered, f"check() blocked past {deadline + 2} s: only a hard kill stops it"
    key_s, check_s, _, result = receiver.recv()
    assert key_s < 1.0, "work_key runs in the event loop"
    assert check_s < deadline + 2
    assert result.status in statuses and not result.masked, result
    assert result.score == 0.0 or result.status == "ok"
    json.dumps(result.details, ensure_ascii=False).encode("utf-8")  # surrogates would make the HTTP reply fail
