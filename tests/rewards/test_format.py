"""The format checker against realistic completions: strict R1 template, partial tag credit, prefilled think."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from rewards.checker import load_checker
from rewards.format import CHECKER, FormatSettings, check, work_key
from rewards.result import Sample, Status

REASONING = (
    "We need the sum of the first 10 positive integers.\n"
    "Using n(n+1)/2 with n = 10 gives 10 * 11 / 2 = 55.\n"
    "Let me double-check by pairing: (1+10) + (2+9) + ... five pairs of 11, so 55."
)
GOOD = f"<think>\n{REASONING}\n</think>\n<answer>\n55\n</answer>"
QWEN_PROMPT = "<|im_start|>user\nWhat is 1+...+10?<|im_end|>\n<|im_start|>assistant\n<think>\n"
BIG_REASONING = "\n".join(
    f"Step {i}: add {i} to the running total, which is now {i * (i + 1) // 2}." for i in range(150)
)

STRICT_CASES = [
    pytest.param(GOOD, None, {}, 1.0, [], id="good_r1"),
    pytest.param(
        f"<think>\n{BIG_REASONING}\n</think>\n<answer>\n11175\n</answer>", None, {}, 1.0, [], id="good_r1_8kb"
    ),
    pytest.param(GOOD + "\n", None, {}, 1.0, [], id="trailing_newline_is_not_text"),
    pytest.param(GOOD + "\nHope this helps!", None, {}, 0.0, ["text after </answer>"], id="text_after_answer"),
    pytest.param(
        GOOD + "\nHope this helps!",
        None,
        {"allow_outer_whitespace": False},
        0.0,
        ["text after </answer>"],
        id="text_after_answer_no_strip",
    ),
    pytest.param(
        f"<think>\nfirst try\n</think>\n<think>\n{REASONING}\n</think>\n<answer>\n55\n</answer>",
        None,
        {},
        0.0,
        ["<think> appears 2 times, expected once", "</think> appears 2 times, expected once"],
        id="two_think_blocks",
    ),
    pytest.param(
        f"<think>\n{REASONING}</think>\n<answer>\n55\n</answer>",
        None,
        {},
        0.0,
        ["no '\\n</think>' closing the reasoning"],
        id="missing_newline_before_close",
    ),
    pytest.param(
        f"<think>{REASONING}\n</think>\n<answer>\n55\n</answer>",
        None,
        {},
        0.0,
        ["does not start with '<think>\\n'"],
        id="missing_newline_after_open",
    ),
    pytest.param(
        f"<think>\n{REASONING}\n</think>\n\n<answer>\n55\n</answer>",
        None,
        {},
        0.0,
        ["</think> is not followed by '\\n<answer>\\n'"],
        id="blank_line_between_blocks",
    ),
    pytest.param(
        f"<think>\n{REASONING}\n</think>\n<answer>\n55</answer>",
        None,
        {},
        0.0,
        ["no newline before </answer>"],
        id="missing_newline_before_answer_close",
    ),
    pytest.param(f"{REASONING}\n</think>\n<answer>\n55\n</answer>", None, {}, 0.0, None, id="no_open_tag_no_prefill"),
    pytest.param(f"{REASONING}\n</think>\n<answer>\n55\n</answer>", QWEN_PROMPT, {}, 1.0, [], id="prefilled_auto"),
    pytest.param(GOOD, QWEN_PROMPT, {}, 1.0, [], id="prefilled_auto_tag_repeated_in_completion"),
    pytest.param(
        f"{REASONING}\n</think>\n<answer>\n55\n</answer>",
        None,
        {"prefilled_think": True},
        1.0,
        [],
        id="prefilled_forced_without_prompt",
    ),
    pytest.param(
        f"{REASONING}\n</think>\n<answer>\n55\n</answer>",
        QWEN_PROMPT,
        {"prefilled_think": False},
        0.0,
        None,
        id="prefill_disabled",
    ),
    pytest.param(
        f"<reasoning>\n{REASONING}\n</reasoning>\n<final>\n55\n</final>",
        None,
        {"think_tag": "reasoning", "answer_tag": "final"},
        1.0,
        [],
        id="custom_tags",
    ),
    pytest.param(GOOD, None, {"think_tag": "reasoning", "answer_tag": "final"}, 0.0, None, id="custom_tags_wrong"),
    pytest.param(
        f"<think>{REASONING}</think>The sum is 55.",
        None,
        {"answer_tag": None, "require_newlines": False},
        1.0,
        [],
        id="think_only_trl",
    ),
    pytest.param(
        f"<think>a</think><think>{REASONING}</think>55",
        None,
        {"answer_tag": None, "require_newlines": False},
        0.0,
        None,
        id="think_only_two_blocks",
    ),
    pytest.param("", None, {}, 0.0, ["empty completion"], id="empty"),
    pytest.param("The answer is 55.", None, {}, 0.0, None, id="no_tags"),
]


@pytest.mark.parametrize(("completion", "prompt", "options", "score", "reasons"), STRICT_CASES)
def test_strict(completion: str, prompt: str | None, options: dict[str, Any], score: float, reasons: list[str] | None):
    result = check(Sample(completion=completion, prompt=prompt), FormatSettings(mode="strict", **options))
    assert result.status == Status.OK
    assert result.score == score
    assert not result.masked
    if reasons is not None:
        assert result.details["reasons"] == reasons
    else:
        assert result.details["reasons"]


PARTIAL_CASES = [
    pytest.param(GOOD, {}, 1.0, id="all_four"),
    pytest.param(f"<think>\n{REASONING}\n</think>\n<answer>\n55", {}, 0.75, id="no_answer_close"),
    pytest.param(f"<think>\n{REASONING}\n</think>\nThe answer is 55.", {}, 0.5, id="think_only"),
    pytest.param(f"<think>\n{REASONING}\nThe answer is 55.", {}, 0.25, id="open_only"),
    pytest.param(REASONING, {}, 0.0, id="none"),
    pytest.param(
        f"<think>\nx\n</think>\n<think>\n{REASONING}\n</think>\n<answer>\n55\n</answer>", {}, 0.5, id="repeated_think"
    ),
    pytest.param(f"<think>\n{REASONING}\n</think>\nThe sum is 55.", {"answer_tag": None}, 1.0, id="think_only_set"),
]


@pytest.mark.parametrize(("completion", "options", "score"), PARTIAL_CASES)
def test_partial(completion: str, options: dict[str, Any], score: float):
    result = check(Sample(completion=completion), FormatSettings(mode="partial", **options))
    assert result.score == score
    assert result.status == Status.OK


def test_partial_reports_missing_and_repeated_markers():
    completion = f"<think>\nx\n</think>\n<think>\n{REASONING}\n</think>\nThe answer is 55."
    details = check(Sample(completion=completion), FormatSettings(mode="partial")).details
    assert details["missing"] == ["\n<answer>\n", "\n</answer>"]
    assert details["repeated"] == ["<think>\n", "\n</think>\n"]


def test_strict_reports_found_and_missing_tags():
    details = check(Sample(completion=f"<think>\n{REASONING}\n</think>\n55"), FormatSettings()).details
    assert details["found"] == ["<think>", "</think>"]
    assert details["missing"] == ["<answer>", "</answer>"]


def test_prefilled_think_is_reported():
    result = check(Sample(f"{REASONING}\n</think>\n<answer>\n55\n</answer>", prompt=QWEN_PROMPT), FormatSettings())
    assert result.details["prefilled_think"] is True


def test_one_megabyte_of_garbage_is_fast_and_zero():
    garbage = ("<think" + "x" * 97 + "<>") * 10_000 + "<answer>\n" * 10
    started = time.perf_counter()
    strict = check(Sample(completion=garbage), FormatSettings())
    partial = check(Sample(completion=garbage), FormatSettings(mode="partial"))
    assert time.perf_counter() - started < 1.0  # linear scans: milliseconds; a backtracking regex would take minutes
    assert strict.score == 0.0
    assert partial.score == 0.0


def test_work_key_separates_prefill_and_completion():
    settings = FormatSettings()
    body = f"{REASONING}\n</think>\n<answer>\n55\n</answer>"
    assert work_key(Sample(body, prompt=QWEN_PROMPT), settings) != work_key(Sample(body), settings)
    assert work_key(Sample(body, prompt="other prompt"), settings) == work_key(Sample(body), settings)


def test_settings_reject_unknown_keys():
    with pytest.raises(ValidationError):
        FormatSettings(mode="strict", tag="think")  # type: ignore[call-arg]


def test_registered_as_format_checker():
    assert load_checker("format") is CHECKER
    assert CHECKER.runs_in == "cpu"
    assert CHECKER.settings_model is FormatSettings
