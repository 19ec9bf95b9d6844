"""The body of a CPU worker process.

A worker loads the CPU checkers once, warms them, says ``ready`` and then serves chunks: it receives a list
of tasks, and sends back one ``(task_id, CheckResult)`` per task as soon as that task is done, so the pool always
knows which item a worker is on (and which one to blame when it has to kill it). Checkers run in this process's
main thread, where math-verify's ``signal.alarm`` time-outs work.
"""

from __future__ import annotations

import importlib
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing.connection import Connection

from rewards import CHECKERS, Checker, CheckerSettings, CheckResult, FailureKind, Sample, Status, load_checker
from service.logs import LogSetup, configure_logging

__all__ = ["Task", "cpu_registry", "run_task", "serve"]

log = logging.getLogger("rlvr.worker")


@dataclass(frozen=True)
class Task:
    task_id: int
    checker: str
    settings_json: str
    sample: Sample


@lru_cache(maxsize=1024)
def _settings(checker: Checker, settings_json: str) -> CheckerSettings:
    return checker.settings_model.model_validate_json(settings_json)


def run_task(task: Task, checkers: Mapping[str, Checker]) -> CheckResult:
    try:
        checker = checkers[task.checker]
        assert checker.check is not None, f"{task.checker} does not run in a worker"
        result = checker.check(task.sample, _settings(checker, task.settings_json))
    except Exception as exc:  # our bug, not the completion's: mask it and keep serving
        log.exception("checker %s failed", task.checker)
        return CheckResult.unjudgeable(
            Status.ERROR, FailureKind.INTERNAL_ERROR, f"{task.checker} checker failed: {type(exc).__name__}"
        )
    return result


def cpu_registry() -> dict[str, str]:
    """The registry entries of the checkers that run in worker processes."""
    return {name: target for name, target in CHECKERS.items() if load_checker(name).runs_in == "cpu"}


def _load(registry: Mapping[str, str]) -> dict[str, Checker]:
    checkers = {}
    for name, target in registry.items():
        module_name, _, attr = target.partition(":")
        checkers[name] = getattr(importlib.import_module(module_name), attr)
    return checkers


def serve(conn: Connection, registry: Mapping[str, str], log_setup: LogSetup | None = None) -> None:
    """Entry point of a worker process: load and warm the checkers, then serve chunks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    if log_setup is not None:  # log as the service does (one JSON object a line, say), not Python's bare default
        configure_logging(*log_setup)
    checkers = _load(registry)
    for checker in checkers.values():
        if checker.warm is not None:
            checker.warm()
    conn.send(("ready", None))
    while True:
        try:
            tasks: list[Task] | None = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if tasks is None:
            return
        for task in tasks:
            conn.send((task.task_id, run_task(task, checkers)))
