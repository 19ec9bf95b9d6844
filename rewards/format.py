"""Format checker: does the completion follow the reasoning template?

The default template is DeepSeek-R1's::

    <think>
    ...reasoning...
    </think>
    <answer>
    ...answer...
    </answer>

with nothing after ``</answer>`` (open-r1 matches with ``re.MULTILINE``, so its ``$`` accepts text after the
closing tag; we do not). With ``answer_tag=None`` the template is think-only, like TRL's
``^<think>(?!.*<think>)(.*?)</think>.*$``: one think block at the start, anything after it.

Modes:

- ``strict``: 1.0 when the whole completion follows the template (each tag exactly once, in order, with the
  newlines), else 0.0 with the reasons in ``details["reasons"]``.
- ``partial``: open-r1's tag count, generalised to the configured tags: an equal share of 1.0 for each marker
  (``<think>\\n``, ``\\n</think>\\n``, ``\\n<answer>\\n``, ``\\n</answer>`` by default) found exactly once.

Chat templates that end the prompt with ``<think>`` make the model start inside the think block; a strict check
of the bare completion would then always fail (trl #6966). ``prefilled_think`` puts the prompt's opening tag
back in front of the completion before checking.

Everything here is ``str.count`` / ``str.find`` / ``startswith``: linear scans, no backtracking regex, so a
1 MB completion costs about a millisecond.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rewards.checker import Checker, CheckerSettings
from rewards.result import CheckResult, Sample, Status

__all__ = ["CHECKER", "FormatSettings", "check", "work_key"]


class FormatSettings(CheckerSettings):
    mode: Literal["strict", "partial"] = Field(
        default="strict",
        description="strict: 1 if the completion follows the template exactly, else 0. "
        "partial: an equal share of 1 for each tag marker found exactly once (open-r1's tag count).",
    )
    think_tag: str = Field(
        default="think", min_length=1, description="Name of the reasoning tag, without angle brackets."
    )
    answer_tag: str | None = Field(
        default="answer",
        min_length=1,
        description="Name of the answer tag; null for a think-only template (anything may follow the think block).",
    )
    require_newlines: bool = Field(
        default=True,
        description="Require a newline after each opening tag, before each closing tag and between the blocks, "
        "as in the R1 template.",
    )
    prefilled_think: bool | Literal["auto"] = Field(
        default="auto",
        description="Whether the prompt already ends with the opening think tag (chat templates that prefill it). "
        "auto: yes when the prompt ends with the tag, whitespace aside. When prefilled and the completion does not "
        "start with the tag, the tag is put back in front of it before checking.",
    )
    allow_outer_whitespace: bool = Field(
        default=True,
        description="Ignore whitespace before the opening tag and after the final closing tag.",
    )


def _open(name: str) -> str:
    return f"<{name}>"


def _close(name: str) -> str:
    return f"</{name}>"


def _prompt_prefill(prompt: str | None, settings: FormatSettings) -> str | None:
    """The opening tag (plus the whitespace after it) that the prompt already holds, or None."""
    tag = _open(settings.think_tag)
    if settings.prefilled_think is False:
        return None
    if prompt is None:
        return tag + "\n" if settings.prefilled_think is True else None
    stripped = prompt.rstrip()
    if stripped.endswith(tag):
        return tag + prompt[len(stripped) :]
    return tag + "\n" if settings.prefilled_think is True else None


def _reconstruct(sample: Sample, settings: FormatSettings) -> tuple[str, bool]:
    """The text to judge: the completion, with a prefilled opening tag put back when it is missing."""
    prefill = _prompt_prefill(sample.prompt, settings)
    if prefill is None:
        return sample.completion, False
    if sample.completion.lstrip().startswith(_open(settings.think_tag)):
        return sample.completion, True
    return prefill + sample.completion, True


def _markers(settings: FormatSettings) -> tuple[str, ...]:
    nl = "\n" if settings.require_newlines else ""
    think_open, think_close = _open(settings.think_tag), _close(settings.think_tag)
    if settings.answer_tag is None:
        return (think_open + nl, nl + think_close)
    answer_open, answer_close = _open(settings.answer_tag), _close(settings.answer_tag)
    return (think_open + nl, nl + think_close + nl, nl + answer_open + nl, nl + answer_close)


def _tags(settings: FormatSettings) -> tuple[str, ...]:
    names = [settings.think_tag] if settings.answer_tag is None else [settings.think_tag, settings.answer_tag]
    return tuple(tag for name in names for tag in (_open(name), _close(name)))


def _tag_count_reasons(text: str, tags: tuple[str, ...]) -> tuple[dict[str, int], list[str]]:
    counts = {tag: text.count(tag) for tag in tags}
    reasons = [f"{tag} appears {n} times, expected once" for tag, n in counts.items() if n != 1]
    return counts, reasons


def _layout_reasons(text: str, settings: FormatSettings) -> list[str]:
    """Why a text whose tags each appear once does not follow the template (empty when it does)."""
    nl = "\n" if settings.require_newlines else ""
    think_open, think_close = _open(settings.think_tag), _close(settings.think_tag)
    reasons = []
    if not text.startswith(think_open + nl):
        reasons.append(f"does not start with {(think_open + nl)!r}")
    if text.find(nl + think_close) < len(think_open + nl):
        reasons.append(f"no {(nl + think_close)!r} closing the reasoning")
    if settings.answer_tag is not None:
        reasons.extend(_answer_reasons(text, think_close, settings.answer_tag, nl))
    return reasons


def _answer_reasons(text: str, think_close: str, answer_tag: str, nl: str) -> list[str]:
    answer_open, answer_close = _open(answer_tag), _close(answer_tag)
    reasons = []
    if think_close + nl + answer_open + nl not in text:
        reasons.append(f"{think_close} is not followed by {(nl + answer_open + nl)!r}")
    if not text.endswith(answer_close):
        reasons.append(f"text after {answer_close}")
    elif not text.endswith(nl + answer_close):
        reasons.append(f"no newline before {answer_close}")
    elif text.find(answer_open) + len(answer_open + nl) > len(text) - len(nl + answer_close):
        reasons.append(f"{answer_close} comes before the answer")
    return reasons


def _strict(text: str, settings: FormatSettings) -> tuple[float, dict[str, object]]:
    counts, reasons = _tag_count_reasons(text, _tags(settings))
    if not reasons:
        reasons = _layout_reasons(text, settings)
    found = [tag for tag, n in counts.items() if n > 0]
    missing = [tag for tag, n in counts.items() if n == 0]
    return (0.0 if reasons else 1.0), {"tags": counts, "found": found, "missing": missing, "reasons": reasons}


def _partial(text: str, settings: FormatSettings) -> tuple[float, dict[str, object]]:
    counts = {marker: text.count(marker) for marker in _markers(settings)}
    credited = [marker for marker, n in counts.items() if n == 1]
    score = len(credited) / len(counts)
    missing = [marker for marker, n in counts.items() if n == 0]
    repeated = [marker for marker, n in counts.items() if n > 1]
    return score, {"markers": counts, "found": credited, "missing": missing, "repeated": repeated}


def check(sample: Sample, settings: FormatSettings) -> CheckResult:
    """Score the completion's layout against the configured template."""
    text, prefilled = _reconstruct(sample, settings)
    if settings.allow_outer_whitespace:
        text = text.strip()
    score, details = _strict(text, settings) if settings.mode == "strict" else _partial(text, settings)
    details = {"mode": settings.mode, "prefilled_think": prefilled, **details}
    if not sample.completion.strip():
        details["reasons"] = ["empty completion"]
    return CheckResult(score=score, status=Status.OK, details=details)


def work_key(sample: Sample, settings: FormatSettings) -> str:
    """The judged text: the completion plus the prefilled tag the prompt contributes, if any."""
    prefill = _prompt_prefill(sample.prompt, settings)
    return f"{prefill or ''}\x00{sample.completion}"


CHECKER = Checker(
    name="format",
    description="R1 reasoning template (<think>/<answer>, configurable tags): strict 0/1 or partial tag-count credit.",
    settings_model=FormatSettings,
    check=check,
    work_key=work_key,
    warm=None,
)
