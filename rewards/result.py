"""What every checker receives and returns.

A checker never raises for a wrong or malformed completion: it returns a ``CheckResult``.
The split that matters to a trainer:

- the completion is wrong or malformed -> a real ``score`` and ``failure_kind is None``;
- we could not judge it (bad reference, sandbox down, our own machinery failed) -> ``score is None`` and a
  stable ``failure_kind``; the service masks such items.

``not_applicable`` (e.g. a pure-math chain of thought for the language checker) has ``score is None`` but is
not a failure: the component simply does not count for that item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["CheckResult", "Sample", "Status", "FailureKind"]


class Status:
    """Stable status strings of a component result."""

    OK: Final = "ok"
    NO_ANSWER: Final = "no_answer"
    TIMEOUT: Final = "timeout"
    NOT_APPLICABLE: Final = "not_applicable"
    BAD_REFERENCE: Final = "bad_reference"
    INVALID_ITEM: Final = "invalid_item"
    ERROR: Final = "error"
    NO_SANDBOX: Final = "no_sandbox"


class FailureKind:
    """Stable labels for results we could not judge (the item is masked)."""

    BAD_REFERENCE: Final = "bad_reference"
    INVALID_ITEM: Final = "invalid_item"
    INTERNAL_TIMEOUT: Final = "internal_timeout"
    INTERNAL_ERROR: Final = "internal_error"
    NO_SANDBOX: Final = "no_sandbox"
    SANDBOX_ERROR: Final = "sandbox_error"
    OVERLOADED: Final = "overloaded"


@dataclass(frozen=True)
class Sample:
    """One completion and what the checkers may need to judge it."""

    completion: str
    prompt: str | None = None
    reference: str | None = None
    language: str | None = None
    tests: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True)
class CheckResult:
    score: float | None
    status: str
    details: dict[str, Any] = field(default_factory=dict)
    failure_kind: str | None = None
    failure_reason: str | None = None

    @property
    def masked(self) -> bool:
        return self.failure_kind is not None

    @classmethod
    def unjudgeable(cls, status: str, kind: str, reason: str, **details: Any) -> CheckResult:
        return cls(score=None, status=status, details=details, failure_kind=kind, failure_reason=reason)
