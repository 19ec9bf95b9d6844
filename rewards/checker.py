"""The shape every checker module has, and the registry that names them.

A CPU checker module defines ``Settings`` (a ``CheckerSettings``), ``check(sample, settings)``, a cheap
``work_key(sample, settings)`` and optionally ``warm()``, and exposes them as ``CHECKER = Checker(...)``.
``check`` runs inside a worker process; ``work_key`` runs in the service process and must be cheap
(linear in the input, no sympy): two samples with equal keys under equal settings get equal results, which is
what lets the service de-duplicate and cache.

A sandbox checker (``code``) has an async ``sandbox_check(sample, settings, sandbox)`` instead of ``check`` and
runs in the service's event loop against a sandbox pool. ``runs_in`` follows from which of the two a checker has:
it names the executor that runs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rewards.result import CheckResult, Sample
from sandboxes.base import Sandbox

__all__ = ["CHECKERS", "Checker", "CheckerSettings", "load_checker", "UnknownChecker"]

CHECKERS: dict[str, str] = {
    "math": "rewards.math:CHECKER",
    "format": "rewards.format:CHECKER",
    "language": "rewards.language:CHECKER",
    "code": "rewards.code:CHECKER",
}


class UnknownChecker(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
        self.valid = sorted(CHECKERS)


class CheckerSettings(BaseModel):
    """Base for every checker's settings: unknown keys are errors, numbers are finite, instances are hashable."""

    # No NaN or infinity in any float setting (JSON bodies may carry them as literals): a NaN weight makes every
    # reward NaN, an infinite tolerance makes every number equal, and neither survives the JSON sent to a worker.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    weight: float = Field(default=1.0, description="Weight of this component in the item's reward.")

    def deadline_s(self) -> float:
        """Wall-clock seconds one item may take in a worker before the pool kills it."""
        return 10.0

    @cached_property
    def cache_token(self) -> str:
        """Settings that change the score, as a stable string (the weight does not); computed once."""
        return self.model_dump_json(exclude={"weight"})


@dataclass(frozen=True)
class Checker:
    name: str
    description: str
    settings_model: type[CheckerSettings]
    work_key: Callable[[Sample, Any], str]
    check: Callable[[Sample, Any], CheckResult] | None = None
    sandbox_check: Callable[[Sample, Any, Sandbox], Awaitable[CheckResult]] | None = None
    warm: Callable[[], None] | None = None
    # Score given when the pool gives up on an item: it hung a worker past its hard deadline, or it killed two
    # workers in a row (a crash that reproduces). A number means that is the completion's fault (math: an absurd
    # expression); None means it is ours and the item is masked.
    hang_score: float | None = None
    reads_tests: bool = False  # the item's tests are its input: the service's test limit applies to it

    def __post_init__(self) -> None:
        if (self.check is None) == (self.sandbox_check is None):
            raise TypeError(f"checker {self.name!r} needs exactly one of check and sandbox_check")

    @property
    def runs_in(self) -> Literal["cpu", "sandbox"]:
        return "cpu" if self.check is not None else "sandbox"


def load_checker(name: str) -> Checker:
    try:
        target = CHECKERS[name]
    except KeyError:
        raise UnknownChecker(name) from None
    module_name, _, attr = target.partition(":")
    checker: Checker = getattr(importlib.import_module(module_name), attr)
    return checker
