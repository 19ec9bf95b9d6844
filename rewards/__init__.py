"""Pure checkers: math, format, language and code (via a sandbox it is given)."""

from rewards.checker import CHECKERS, Checker, CheckerSettings, UnknownChecker, load_checker
from rewards.result import CheckResult, FailureKind, Sample, Status

__all__ = [
    "CHECKERS",
    "CheckResult",
    "Checker",
    "CheckerSettings",
    "FailureKind",
    "Sample",
    "Status",
    "UnknownChecker",
    "load_checker",
]
